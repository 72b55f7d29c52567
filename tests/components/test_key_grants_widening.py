"""Review finding: grants files that pass the key layer's checks, yet write key use or
administration the split was meant to keep from the workload's side (one passes the pack too).

The key layer checks a grants file's shape, environment, account and measurements
(components/key_grants.py); it does not check who a grant goes to beyond "a role of the account",
and the pack over the sealed key layer (as CI runs it) passes each file below. Each doctored entry
is one line a reviewer of the grants file must recognise:

- `allow_administrators_through_s3` reads as "the key administrators", but in a key layer its
  principal is the WORKLOAD deployer (`to_administrators` -> deployer_role_arns,
  components/keys.py _policy_document): naming the training-data bucket gives deploy-workload
  kms:Decrypt of every training-data object through S3 (and it holds s3:* in its policy);
- `grant_key_administration` on a key that is not two-person (training-data), with any standing
  role as `policy_writer` (here the data curator): that human role may PutKeyPolicy the key (now
  refused in a grants file: the key layer grants its own key administrators);
- `grant_key_rotation` with `create_successors: true`: the rotation function's role (workload
  owned, code deployed by deploy-workload) becomes PutKeyPolicy administrator of every
  non-two-person key, though the workload's own rotation is configured without successors.

The pack's kms-key-policy-least-privilege catches the last two (tests below pass); nothing catches
the first. Secure expectation (xfail strict today): the key layer or the pack refuses it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from components.stack_config import KeyLayerConfig, StackConfigError, parse_layer_config
from tests.conftest import PACK_DIR, ROOT
from tests.support.key_policy import Request, evaluate
from tests.support.stacks import SplitEnvironment, record_split, run_program
from ztai.export import stack_for_analysis
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztai.preview.recorder import RecordedStack
from ztai.stackfile import load_stack

ACCOUNT = "111122223333"
REGION = "eu-west-1"
DEPLOY_WORKLOAD = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-deploy-workload"
CURATOR = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-data-curator"
ROTATION_ROLE_PREFIX = f"arn:aws:iam::{ACCOUNT}:role/key-rotation-role-"
ELEVATION = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-jit-key-admin"
TRAINING_BUCKET = "arn:aws:s3:::zero-trust-ai-prod-training-data-example"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
GRANTS_KEY = "zero-trust-ai:workloadGrantsFile"


@pytest.fixture(scope="module")
def split() -> SplitEnvironment:
    return record_split("prod")


def _sealed_with(split: SplitEnvironment, extra: list[dict[str, Any]], tmp_path: Path,
                 rewrite: Any = None) -> tuple[RecordedStack, dict[str, str]]:
    ledger = json.loads(json.dumps(split.workload.stack_outputs["keyGrants"]))
    ledger["grants"] += extra
    if rewrite is not None:
        rewrite(ledger)
    path = tmp_path / "grants.json"
    path.write_text(json.dumps(ledger), encoding="utf-8")
    stack_file = load_stack(ROOT, "prod-keys")
    raw = {**stack_file.config, GRANTS_KEY: str(path)}
    assert isinstance(parse_layer_config(raw), KeyLayerConfig)  # the key layer's checks pass
    return run_program(replace(stack_file, config=raw), raw), raw


def _policy(stack: RecordedStack, purpose: str) -> str:
    return next(str(r.inputs["policy"]) for r in stack.resources
                if r.type == "aws:kms/keyPolicy:KeyPolicy" and r.name == f"keys-{purpose}-policy")


def _pack_violations(stack: RecordedStack, config: dict[str, str]) -> set[str]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment(stack.project, stack.stack, dict(config),
                                                          True)) as pack:
        result = analyze(pack, stack_for_analysis(stack),
                         user_config=None, project=stack.project, stack=stack.stack,
                         stack_config=dict(config))
    return {v.policy for v in result.mandatory_violations}


def _allowed(policy: str, principal: str, action: str, context: dict[str, str] | None = None) -> bool:
    return evaluate(policy, Request(principal, action, KEY, {"aws:PrincipalArn": principal,
                                                             **(context or {})})).effect == "allow"


def test_the_doctored_files_widen_the_key_policies(split: SplitEnvironment, tmp_path: Path) -> None:
    """The reproduction: what a doctored entry writes into the key policy. A key-administration
    entry no longer gets that far: the key layer refuses it (its identity part grants its own
    key administrators)."""
    with pytest.raises(StackConfigError, match="grant_key_administration is refused in a grants file"):
        _sealed_with(split, [{"grant": "grant_key_administration", "purpose": "training-data",
                              "role": ELEVATION, "policy_writer": CURATOR}], tmp_path)
    sealed, _ = _sealed_with(split, [], tmp_path, _successors)
    training = _policy(sealed, "training-data")
    through_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT,
                  "kms:EncryptionContext:aws:s3:arn": TRAINING_BUCKET}
    rotation = next(e["role"] for e in split.workload.stack_outputs["keyGrants"]["grants"]
                    if e["grant"] == "grant_key_rotation")
    assert rotation.startswith(ROTATION_ROLE_PREFIX)
    assert _allowed(training, rotation, "kms:PutKeyPolicy")
    # Not in the combined/undoctored key layer:
    plain = _policy(split.sealed_keys, "training-data")
    assert not _allowed(plain, DEPLOY_WORKLOAD, "kms:Decrypt", through_s3)
    assert not _allowed(plain, CURATOR, "kms:PutKeyPolicy")
    assert not _allowed(plain, rotation, "kms:PutKeyPolicy")


def _successors(ledger: dict[str, Any]) -> None:
    for entry in ledger["grants"]:
        if entry["grant"] == "grant_key_rotation":
            entry["create_successors"] = True


DOCTORED = {
    "deployer-reads-training-data": ([{"grant": "allow_administrators_through_s3",
                                       "purpose": "training-data", "bucket_arn": TRAINING_BUCKET,
                                       "sid": "TruststoreUpload"}], None),
    "curator-writes-the-policy": ([{"grant": "grant_key_administration", "purpose": "training-data",
                                    "role": ELEVATION, "policy_writer": CURATOR}], None),
    "rotation-writes-every-policy": ([], _successors),
}


def _refused(split: SplitEnvironment, tmp_path: Path, doctoring: str) -> bool:
    extra, rewrite = DOCTORED[doctoring]
    try:
        sealed, raw = _sealed_with(split, extra, tmp_path, rewrite)
    except StackConfigError:  # refused by the key layer
        return True
    return "kms-key-policy-least-privilege" in _pack_violations(sealed, raw)


@pytest.mark.parametrize("doctoring", ["curator-writes-the-policy", "rotation-writes-every-policy"])
def test_the_pack_refuses_these_doctored_files(split: SplitEnvironment, tmp_path: Path,
                                               doctoring: str) -> None:
    # Sound: kms-key-policy-least-privilege catches a standing role's PutKeyPolicy.
    assert _refused(split, tmp_path, doctoring)


def test_the_pack_or_the_key_layer_refuses_deployer_use_through_s3(split: SplitEnvironment,
                                                                    tmp_path: Path) -> None:
    assert _refused(split, tmp_path, "deployer-reads-training-data")
