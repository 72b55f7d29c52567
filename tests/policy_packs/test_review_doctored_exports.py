"""Hostile review: exports of the prod stack doctored the way an insider would (an alias moved to
another key, a model bucket under another account's key or the log bucket's exception, a prod log
group that forgets after a day) fail `ztai policy analyze`, whether the rules read the outputs or,
with no outputs recorded, the inputs. The untouched export passes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import ROOT
from tests.policy_packs.test_rules import NO_CONFIG, STACK, res
from tests.support.stacks import COMBINED, record_stack
from ztai.cli import _pulumi_version
from ztai.export import to_export
from ztpolicy.graph import refers_to_key
from ztpolicy.rule import Resource
from ztpolicy.rules.kms.model_key_alias_pinned import model_key_alias_pinned
from ztpolicy.rules.kms.model_key_attestation_required import attested_keys
from ztpolicy.rules.s3.s3_bucket_encrypted_with_cmk import s3_bucket_encrypted_with_cmk

Resources = dict[str, dict[str, Any]]
OTHER_ACCOUNT_KEY = "arn:aws:kms:eu-west-1:999999999999:key/11111111-2222-3333-4444-555555555555"
# Same account, same Region, no key of the stack: e.g. the AWS managed aws/s3 key given by its ARN.
UNMANAGED_KEY = "arn:aws:kms:eu-west-1:111122223333:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def ztai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ztai", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def prod_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prod as one stack (the keys and the workload): the rules here span both layers."""
    path = tmp_path_factory.mktemp("export") / "prod.json"
    document = to_export(record_stack("prod", COMBINED), _pulumi_version())
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def by_name(document: dict[str, Any]) -> Resources:
    return {r["urn"].rsplit("::", 1)[-1]: r for r in document["deployment"]["resources"]}


def set_prop(resource: dict[str, Any], where: str, **props: Any) -> None:
    """Doctor `props` into the outputs, or into the inputs of a resource with no outputs recorded
    (the rules then read the inputs)."""
    if where == "inputs":
        resource.pop("outputs", None)
    resource[where].update(props)


def violations(prod_export: Path, tmp_path: Path, doctor: Callable[[Resources], None],
               config: dict[str, Any] | None = None) -> set[tuple[str, str]]:
    document = json.loads(prod_export.read_text())
    doctor(by_name(document))
    path = tmp_path / "doctored.json"
    path.write_text(json.dumps(document))
    args = ["policy", "analyze", "--file", str(path), "--json"]
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
        args += ["--policy-config", str(tmp_path / "config.json")]
    run = ztai(*args)
    report = json.loads(run.stdout)
    assert run.returncode == (1 if report["violations"] else 0), run.stderr
    return {(v["policy"], v["urn"].rsplit("::", 1)[-1]) for v in report["violations"]}


def test_the_prod_export_passes(prod_export: Path, tmp_path: Path) -> None:
    assert violations(prod_export, tmp_path, lambda resources: None) == set()


# -- 1. the model-weights alias moved to the training-data key ------------------------------------
@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_a_model_alias_moved_to_another_key_is_caught(prod_export: Path, tmp_path: Path,
                                                      where: str) -> None:
    def doctor(resources: Resources) -> None:
        training = resources["keys-training-data"]["outputs"]
        set_prop(resources["keys-model-weights-alias"], where, targetKeyId=training["keyId"],
                 **({"targetKeyArn": training["arn"]} if where == "outputs" else {}))

    found = violations(prod_export, tmp_path, doctor)
    # The alias is reported as moved, and the key it now names is held to attestation.
    assert ("model-key-alias-pinned", "keys-model-weights-alias") in found
    assert ("model-key-attestation-required", "keys-training-data-policy") in found


def test_a_moved_alias_message_names_both_keys(prod_export: Path, tmp_path: Path) -> None:
    document = json.loads(prod_export.read_text())
    resources = by_name(document)
    training = resources["keys-training-data"]["outputs"]
    set_prop(resources["keys-model-weights-alias"], "outputs", targetKeyId=training["keyId"],
             targetKeyArn=training["arn"])
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(document))
    report = json.loads(ztai("policy", "analyze", "--file", str(path), "--json").stdout)
    [message] = [v["message"] for v in report["violations"] if v["policy"] == "model-key-alias-pinned"
                 and v["urn"].endswith("::keys-model-weights-alias")]
    assert "was moved from key keys-model-weights to key keys-training-data" in message


# -- 2. a model bucket under a key that is not the stack's ----------------------------------------
@pytest.mark.parametrize("where", ["outputs", "inputs"])
@pytest.mark.parametrize("key", [OTHER_ACCOUNT_KEY, UNMANAGED_KEY])
def test_a_bucket_under_a_key_of_no_stack_is_caught(prod_export: Path, tmp_path: Path, where: str,
                                                    key: str) -> None:
    def doctor(resources: Resources) -> None:
        encryption = resources["inference-fleet-models-encryption"]
        rules = json.loads(json.dumps(encryption[where]["rules"]))
        rules[0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] = key
        set_prop(encryption, where, rules=rules)
        policy = resources["inference-fleet-models-policy"]
        stack_key = resources["keys-inference"]["outputs"]["arn"]
        set_prop(policy, where, policy=policy[where]["policy"].replace(stack_key, key))

    assert violations(prod_export, tmp_path, doctor) == {
        ("s3-bucket-encrypted-with-cmk", "inference-fleet-models-encryption")}


@pytest.mark.parametrize("key, caught", [(UNMANAGED_KEY, False), (OTHER_ACCOUNT_KEY, True)])
def test_trusted_bucket_keys_admit_only_keys_of_the_account(prod_export: Path, tmp_path: Path,
                                                            key: str, caught: bool) -> None:
    def doctor(resources: Resources) -> None:
        encryption = resources["inference-fleet-models-encryption"]
        encryption["outputs"]["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] = key
        policy = resources["inference-fleet-models-policy"]["outputs"]
        policy["policy"] = policy["policy"].replace(resources["keys-inference"]["outputs"]["arn"], key)

    found = violations(prod_export, tmp_path, doctor,
                       {"s3-bucket-encrypted-with-cmk": {"trustedBucketKeyArns": [key]}})
    assert found == ({("s3-bucket-encrypted-with-cmk", "inference-fleet-models-encryption")}
                     if caught else set())


# -- 3. the access-log exception claimed by a bucket that is no log destination -------------------
@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_a_model_bucket_with_the_log_buckets_policy_is_caught(prod_export: Path, tmp_path: Path,
                                                             where: str) -> None:
    def doctor(resources: Resources) -> None:
        models = resources["inference-fleet-models"]
        logs = resources["inference-fleet-access-logs"]
        set_prop(resources["inference-fleet-models-encryption"], where,
                 rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}])
        log_policy = resources["inference-fleet-access-logs-policy"]["outputs"]["policy"]
        set_prop(resources["inference-fleet-models-policy"], where,
                 policy=log_policy.replace(logs["id"], models["id"]))

    found = violations(prod_export, tmp_path, doctor)
    assert ("s3-bucket-encrypted-with-cmk", "inference-fleet-models-encryption") in found
    assert ("s3-bucket-policy-tls-and-key-pinned", "inference-fleet-models-policy") in found


@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_a_log_bucket_something_else_writes_into_loses_the_exception(prod_export: Path, tmp_path: Path,
                                                                     where: str) -> None:
    def doctor(resources: Resources) -> None:
        set_prop(resources["api-truststore-bundle"], where,
                 bucket=resources["inference-fleet-access-logs"]["id"])

    found = violations(prod_export, tmp_path, doctor)
    assert ("s3-bucket-encrypted-with-cmk", "inference-fleet-access-logs-encryption") in found


def test_the_log_buckets_deny_must_cover_replication(prod_export: Path, tmp_path: Path) -> None:
    def doctor(resources: Resources) -> None:
        policy = resources["inference-fleet-access-logs-policy"]["outputs"]
        document = json.loads(policy["policy"])
        [deny] = [s for s in document["Statement"] if s["Sid"] == "DenyWritesButLogDelivery"]
        assert sorted(deny["Action"]) == ["s3:PutObject", "s3:ReplicateObject"]
        deny["Action"] = "s3:PutObject"
        policy["policy"] = json.dumps(document)

    found = violations(prod_export, tmp_path, doctor)
    assert ("s3-bucket-encrypted-with-cmk", "inference-fleet-access-logs-encryption") in found


# -- 4. a prod log group that forgets after a day --------------------------------------------------
@pytest.mark.parametrize("where", ["outputs", "inputs"])
@pytest.mark.parametrize("days, caught", [(1, True), (364, True), (365, False)])
def test_a_prod_log_group_must_keep_a_year(prod_export: Path, tmp_path: Path, where: str, days: int,
                                           caught: bool) -> None:
    def doctor(resources: Resources) -> None:
        set_prop(resources["key-rotation-logs"], where, retentionInDays=days)

    found = violations(prod_export, tmp_path, doctor)
    assert found == ({("log-group-deletion-protected", "key-rotation-logs")} if caught else set())


# -- the same rules in a real preview: unknown values are linked by their dependencies ------------
def _unknown_res(token: str, logical: str, deps: dict[str, list[str]] | None = None,
                 **props: Any) -> Resource:
    """A resource as AnalyzeStack passes it: unknown values raise when read."""
    return Resource(type=token, name=logical, urn=f"{STACK}{token}::{logical}",
                    props=unknown_checking_proxy(props),
                    property_dependencies={k: tuple(v) for k, v in (deps or {}).items()})


MODEL_KEY = res("aws:kms/key:Key", "model", id="mk", arn="arn:aws:kms:eu-west-1:111122223333:key/mk",
                tags={"ztai:key-purpose": "model-weights"})
DATA_KEY = res("aws:kms/key:Key", "data", id="dk", arn="arn:aws:kms:eu-west-1:111122223333:key/dk",
               tags={"ztai:key-purpose": "training-data"})


def _alias(value: Any, name: str = "alias/zero-trust-ai/prod/model-weights") -> Resource:
    return _unknown_res("aws:kms/alias:Alias", "weights-alias", {"targetKeyId": [MODEL_KEY.urn]},
                        name=name, targetKeyId=value)


def test_an_alias_value_not_known_yet_is_linked_by_its_dependency() -> None:
    assert model_key_alias_pinned([MODEL_KEY, DATA_KEY, _alias(UNKNOWN_STRING_VALUE)], NO_CONFIG) == []
    assert model_key_alias_pinned([MODEL_KEY, DATA_KEY, _alias("mk")], NO_CONFIG) == []
    assert model_key_alias_pinned([MODEL_KEY, DATA_KEY, _alias(MODEL_KEY.props["arn"])], NO_CONFIG) == []
    # The value decides once known, also for an alias whose name claims no model role: it was
    # computed from the model key.
    [finding] = model_key_alias_pinned([MODEL_KEY, DATA_KEY, _alias("dk", "alias/other")], NO_CONFIG)
    assert "was moved from key model to key data" in finding.message
    # The key it names now is held to attestation, as named by the model alias.
    keys = {key.name: why for key, why in
            attested_keys([MODEL_KEY, DATA_KEY, _alias("dk")], NO_CONFIG).values()}
    assert keys["data"] == "named by alias alias/zero-trust-ai/prod/model-weights"


def _encryption(key: Any, deps: list[str]) -> list[Resource]:
    bucket = res("aws:s3/bucket:Bucket", "models", id="models-bucket")
    return [bucket, MODEL_KEY, _unknown_res(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "models-encryption", {"bucket": [bucket.urn], "rules": deps}, bucket="models-bucket",
        rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key}}])]


def test_a_bucket_key_not_known_yet_must_come_from_a_key_of_the_stack() -> None:
    assert s3_bucket_encrypted_with_cmk(_encryption(UNKNOWN_STRING_VALUE, [MODEL_KEY.urn]), NO_CONFIG) == []
    [finding] = s3_bucket_encrypted_with_cmk(
        _encryption(UNKNOWN_STRING_VALUE, [f"{STACK}aws:ssm/parameter:Parameter::key-arn"]), NO_CONFIG)
    assert "computed from no KMS key of this stack" in finding.message
    assert s3_bucket_encrypted_with_cmk(_encryption(MODEL_KEY.props["arn"], []), NO_CONFIG) == []


def test_a_bare_key_id_shared_by_a_replica_is_told_apart_by_the_dependency() -> None:
    primary = res("aws:kms/key:Key", "weights", id="mrk-1",
                  arn="arn:aws:kms:eu-west-1:111122223333:key/mrk-1")
    replica = res("aws:kms/replicaKey:ReplicaKey", "weights-eu-central-1", id="mrk-1",
                  arn="arn:aws:kms:eu-central-1:111122223333:key/mrk-1")
    policy = res("aws:kms/keyPolicy:KeyPolicy", "weights-policy", {"keyId": [primary.urn]}, keyId="mrk-1")
    keys = [primary, replica]
    assert refers_to_key(policy, "keyId", primary, among=keys)
    assert not refers_to_key(policy, "keyId", replica, among=keys)
    # An ARN says which copy; a value naming another key is not linked, whatever the dependency.
    by_arn = res("aws:kms/keyPolicy:KeyPolicy", "p2", {"keyId": [primary.urn]}, keyId=replica.props["arn"])
    assert refers_to_key(by_arn, "keyId", replica) and not refers_to_key(by_arn, "keyId", primary)
    moved = res("aws:kms/keyPolicy:KeyPolicy", "p3", {"keyId": [primary.urn]}, keyId="other")
    assert not refers_to_key(moved, "keyId", primary)
