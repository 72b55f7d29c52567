"""A split deployment: the key layer writes the key policies a combined stack writes, from the
workload's reviewed grants file, and nothing the workload's deployer controls decides them."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from components.key_grants import GRANT_METHODS, LEDGER_VERSION
from components.key_layer import KeyLayerReference
from components.keys import KeyHierarchy
from components.stack_config import (
    KeyLayerConfig,
    OrganizationConfig,
    StackConfig,
    StackConfigError,
    parse_layer_config,
    placeholders,
)
from tests.conftest import ROOT
from tests.support.key_policy import Request, evaluate
from tests.support.stacks import COMBINED, SplitEnvironment, record_split, record_stack, run_program
from ztai.preview.recorder import RecordedStack
from ztai.stackfile import load_stack

KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
ADMIN = "arn:aws:iam::111122223333:role/zero-trust-ai-prod-deploy-keys"
DEPLOYER = "arn:aws:iam::111122223333:role/zero-trust-ai-prod-deploy-workload"
INSPECTOR = "arn:aws:iam::111122223333:role/zero-trust-ai-prod-ci-preview"


@pytest.fixture(scope="module")
def split() -> SplitEnvironment:
    return record_split("prod")


@pytest.fixture(scope="module")
def combined() -> RecordedStack:
    return record_stack("prod", COMBINED)


def _policies(stack: RecordedStack) -> dict[str, Any]:
    return {r.name: json.loads(r.inputs["policy"]) for r in stack.resources if r.type == KEY_POLICY}


def _statements(policy: dict[str, Any]) -> list[str]:
    """A policy's statements, sorted, each Sid without its position number."""
    return sorted(json.dumps({**statement, "Sid": statement["Sid"].rstrip("0123456789")}, sort_keys=True)
                  for statement in policy["Statement"])


def test_the_key_layer_writes_the_policies_a_combined_stack_writes(
        split: SplitEnvironment, combined: RecordedStack) -> None:
    sealed, reference = _policies(split.sealed_keys), _policies(combined)
    assert sorted(sealed) == sorted(reference) and len(sealed) == 7
    # The key layer streams its own log groups to the SIEM (components/siem_stream.py): on the logs
    # key, and only there, the statements of that second stream, which a combined stack does not
    # have: its creation by the key administrators, and its two roles' use through S3 and SQS.
    # And of its detection function (components/detection.py), which watches the same groups: its
    # role's use through S3 (the state bucket) and SQS (the failure queue).
    own_stream_roles = {r.outputs["arn"] for r in split.sealed_keys.resources
                        if r.name in ("siem-delivery-role", "siem-transform-role", "detect-function-role")}
    assert len(own_stream_roles) == 3
    for name, policy in sealed.items():
        # One difference only: what the deployer creates under a key is the workload deployer's
        # in a split, the administrators' (who deploy everything) in a combined stack.
        # The order aside: the key layer makes its identity part's grants before the ledger's.
        text = json.dumps(policy, sort_keys=True).replace(json.dumps([DEPLOYER]), json.dumps([ADMIN]))
        # The SIEM stream's roles are named after their layer (zero-trust-ai-prod-<layer>-siem-...).
        text = text.replace("-prod-workload-siem-", "-prod-combined-siem-")
        statements, expected = _statements(json.loads(text)), _statements(reference[name])
        if name == "keys-logs-policy":
            extra = list(statements)
            for statement in expected:
                extra.remove(statement)
            principals = sorted(str(json.loads(s)["Principal"]["AWS"]) for s in extra)
            detect_role = next(arn for arn in own_stream_roles if arn.endswith("-siem-detect"))
            # Each role twice (use, and grants for AWS resources); the detection role through both
            # S3 and SQS, so four times.
            assert principals == sorted([str([ADMIN])] * 2 + [*own_stream_roles] * 2
                                        + [detect_role] * 2), extra
            # (_statements strips a Sid's trailing digits: ThroughS3 reads ThroughS)
            assert {json.loads(s)["Sid"] for s in extra} == {
                "CreateFirehoseStreamsDescribe", "CreateFirehoseStreamsGrant", "ThroughS", "GrantThroughS",
                "ThroughSqs", "GrantThroughSqs"}
            continue
        assert statements == expected, name
    deployer_statements = [s for s in sealed["keys-secrets-policy"]["Statement"]
                           if s["Principal"] == {"AWS": [DEPLOYER]}]
    assert {s["Sid"].rstrip("0123456789") for s in deployer_statements} >= {
        "CreateDynamodbTablesDescribe", "CreateDynamodbTablesGrant", "CreateDynamodbTablesUse"}


def test_the_workload_declares_no_key_and_writes_no_key_policy(split: SplitEnvironment) -> None:
    assert not [r.type for r in split.workload.resources if r.type.startswith("aws:kms/")]
    assert [r.type for r in split.workload.resources if r.type.endswith("KeyLayerReference")] == [
        "zero-trust-ai:keys:KeyLayerReference"]


def test_the_workload_uses_the_key_layers_keys(split: SplitEnvironment) -> None:
    arns = split.first_keys.stack_outputs["keyArns"]
    text = json.dumps([r.inputs for r in split.workload.resources])
    used = set(re.findall(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]+", text))
    # Every key the workload names is the key layer's, and it names those of its resources.
    assert used and used <= set(arns.values())
    assert {purpose for purpose, arn in arns.items() if arn in used} >= {
        "training-data", "model-weights", "logs", "secrets", "inference", "audit"}
    assert split.workload.stack_outputs["keyArns"] == arns


def test_the_first_key_layer_admits_no_role_of_the_workload(split: SplitEnvironment) -> None:
    keys = [r for r in split.first_keys.resources if r.type == "aws:kms/key:Key"]
    assert len(keys) == 7 and not _policies(split.first_keys)
    for key in keys:
        principals = {json.dumps(s["Principal"], sort_keys=True)
                      for s in json.loads(key.inputs["policy"])["Statement"]}
        allowed = {json.dumps({"AWS": [ADMIN]}), json.dumps({"AWS": [DEPLOYER]}),
                   json.dumps({"AWS": INSPECTOR}), json.dumps({"Service": "logs.eu-west-1.amazonaws.com"}),
                   # The audit key admits its trail from creation (pinned to it by aws:SourceArn).
                   json.dumps({"Service": "cloudtrail.amazonaws.com"}),
                   # Publishing to the alarm topics only (tests/components/test_alarm_topics.py).
                   json.dumps({"Service": "cloudwatch.amazonaws.com"}),
                   json.dumps({"Service": "events.amazonaws.com"})}
        assert principals <= allowed, (key.name, principals - allowed)
    assert any("no workloadGrantsFile yet" in w for w in split.first_keys.warnings)


def test_the_ledger_names_only_roles_the_workload_declares_or_reads(split: SplitEnvironment) -> None:
    ledger = split.workload.stack_outputs["keyGrants"]
    assert ledger["version"] == LEDGER_VERSION and ledger["environment"] == "prod"
    roles = {r.outputs["arn"] for r in split.workload.resources
             if r.type in ("aws:iam/role:Role", "aws:iam/serviceLinkedRole:ServiceLinkedRole")}
    # The human and elevation roles are the key layer's, read by their names (IdentityReference).
    read = {r.outputs["arn"] for r in split.workload.reads if r.type == "aws:iam/role:Role"}
    identity = set(split.sealed_keys.stack_outputs["humanRoleArns"].values())
    assert identity <= read and not read & roles
    named = {entry[name] for entry in ledger["grants"] for name in ("role", "policy_writer")
             if name in entry}
    # Image Builder's service-linked role is created by AWS, not declared (components/ami_pipeline.py).
    assert named and {arn for arn in named if ":role/aws-service-role/" not in arn} <= roles | read
    grants = {entry["grant"] for entry in ledger["grants"]}
    assert grants >= {"grant_decrypt_with_attestation", "grant_key_rotation"}
    # Who administers a key and writes its approved policy is the key layer's own choice.
    assert "grant_key_administration" not in grants
    assert split.sealed_keys.stack_outputs["sealedGrants"] == len(ledger["grants"])


def test_the_reference_records_what_the_hierarchy_would_grant() -> None:
    # The workload calls the same methods as a combined stack: same names, same signatures.
    recorded = sorted(name for name, member in inspect.getmembers(KeyHierarchy)
                      if callable(member) and hasattr(member, "__wrapped__"))
    assert recorded == sorted(GRANT_METHODS)
    for name in GRANT_METHODS:
        assert (inspect.signature(getattr(KeyLayerReference, name))
                == inspect.signature(getattr(KeyHierarchy, name))), name


# -- the grants file, refused before anything is declared -----------------------------------------
def _key_layer_raw(grants: Any, tmp_path: Path, *, text: str | None = None) -> dict[str, Any]:
    path = tmp_path / "grants.json"
    path.write_text(text if text is not None else json.dumps(grants), encoding="utf-8")
    return {**load_stack(ROOT, "prod-keys").config, "zero-trust-ai:workloadGrantsFile": str(path)}


@pytest.fixture(scope="module")
def ledger(split: SplitEnvironment) -> dict[str, Any]:
    return dict(split.workload.stack_outputs["keyGrants"])


def _with(ledger: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    grants = [dict(entry) for entry in ledger["grants"]]
    grants[index].update(changes)
    return {**ledger, "grants": grants}


def _index(ledger: dict[str, Any], grant: str) -> int:
    return next(i for i, entry in enumerate(ledger["grants"]) if entry["grant"] == grant)


def test_the_exported_ledger_is_a_valid_grants_file(ledger: dict[str, Any], tmp_path: Path) -> None:
    config = parse_layer_config(_key_layer_raw(ledger, tmp_path))
    assert isinstance(config, KeyLayerConfig)
    assert len(config.workload_grants) == len(ledger["grants"])
    # The management segment's endpoints: the human roles' network, set by the key layer.
    assert config.human_source_vpce_ids == tuple(ledger["identity"]["sourceVpceIds"])
    assert len(config.human_source_vpce_ids) >= 1


@pytest.mark.parametrize("doctor, expected", [
    (lambda g: {**g, "version": 2}, "version 2; this program reads version 1"),
    (lambda g: {**g, "environment": "dev"}, "the grants file is environment 'dev''s"),
    (lambda g: {**g, "extra": 1}, "version, environment, grants and optionally identity"),
    (lambda g: {**g, "identity": []}, "identity must be an object with exactly sourceVpceIds"),
    (lambda g: {**g, "identity": {"sourceVpceIds": ["sg-0123456789abcdef0"]}}, "VPC endpoint ids"),
    (lambda g: {**g, "identity": {"sourceVpceIds": ["vpce-0123456789abcdef0"] * 2}}, "distinct"),
    (lambda g: {**g, "identity": {"sourceVpceIds": [], "sourceCidrs": ["0.0.0.0/0"]}},
     "exactly sourceVpceIds"),
    (lambda g: {**g, "grants": [{"grant": "grant_key_administration", "purpose": "model-weights",
                                 "role": "arn:aws:iam::111122223333:role/anyone",
                                 "policy_writer": "arn:aws:iam::111122223333:role/anyone"}]},
     "grant_key_administration is refused in a grants file"),
    (lambda g: _with(g, 0, grant="grant_everything"), "grant 'grant_everything' is not one of"),
    (lambda g: _with(g, _index(g, "grant_use_through_service"), role="*"),
     "role = \"*\"; expected an IAM role ARN"),
    (lambda g: _with(g, _index(g, "grant_use_through_service"),
                     role="arn:aws:iam::999999999999:role/outsider"),
     "is in account 999999999999; the keys admit roles of 111122223333 only"),
    (lambda g: _with(g, _index(g, "grant_use_through_service"), actions=["kms:*"]),
     "unknown actions"),
    (lambda g: {**g, "grants": [{"grant": "grant_encrypt", "purpose": "logs"}]}, "missing role"),
    (lambda g: _with(g, _index(g, "grant_decrypt_with_attestation"),
                     measurements={"PCR0": "00" * 48, "PCR1": "11" * 48, "PCR2": "22" * 48}),
     "measurements differ from the key layer's enclavePcr*"),
])
def test_a_doctored_grants_file_is_refused(ledger: dict[str, Any], tmp_path: Path, doctor: Any,
                                           expected: str) -> None:
    with pytest.raises(StackConfigError) as caught:
        parse_layer_config(_key_layer_raw(doctor(ledger), tmp_path))
    assert expected in str(caught.value)


@pytest.mark.parametrize("text, expected", [
    ('{"version": 1, "version": 1, "environment": "prod", "grants": []}', "given twice"),
    ("not json", "is not JSON"),
])
def test_a_grants_file_that_reads_two_ways_or_not_at_all_is_refused(
        tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(StackConfigError) as caught:
        parse_layer_config(_key_layer_raw(None, tmp_path, text=text))
    assert expected in str(caught.value)


def test_a_missing_grants_file_names_the_export_command() -> None:
    raw = {**load_stack(ROOT, "prod-keys").config,
           "zero-trust-ai:workloadGrantsFile": "stacks/grants/nope.json"}
    with pytest.raises(StackConfigError, match="pulumi stack output keyGrants"):
        parse_layer_config(raw)


def test_a_grant_the_keys_refuse_stops_the_key_layer(ledger: dict[str, Any], tmp_path: Path) -> None:
    # Well formed, but a log group outside the prefixes the logs key admits CloudWatch Logs for.
    doctored = _with(ledger, _index(ledger, "grant_cloudwatch_logs"), log_group_prefix="/elsewhere/")
    raw = _key_layer_raw(doctored, tmp_path)
    stack_file = load_stack(ROOT, "prod-keys")
    with pytest.raises(Exception, match=r"workloadGrantsFile: grants\[\d+\] \(grant_cloudwatch_logs\)"):
        run_program(replace(stack_file, config=raw), raw)


# -- which keys each layer reads ------------------------------------------------------------------
def _problems(raw: dict[str, Any]) -> str:
    with pytest.raises(StackConfigError) as caught:
        parse_layer_config(raw)
    return str(caught.value)


def test_a_key_of_another_layer_is_refused() -> None:
    keys = load_stack(ROOT, "prod-keys").config
    assert ("zero-trust-ai:apiDomainName: not read by a keys stack"
            in _problems({**keys, "zero-trust-ai:apiDomainName": "api.example.org"}))
    workload = load_stack(ROOT, "prod").config
    problem = _problems({**workload, "zero-trust-ai:keyAdministratorRoleArns": json.dumps([ADMIN])})
    assert "zero-trust-ai:keyAdministratorRoleArns: not read by a workload stack" in problem


def test_each_layer_names_what_it_needs() -> None:
    workload = {**load_stack(ROOT, "prod").config, "zero-trust-ai:keyLayerStack": ""}
    assert "zero-trust-ai:keyLayerStack: missing; required in workload stacks" in _problems(workload)
    bad = {**workload, "zero-trust-ai:keyLayerStack": "prod-keys"}
    assert "a fully qualified stack name" in _problems(bad)
    keys = {**load_stack(ROOT, "prod-keys").config, "zero-trust-ai:workloadDeployerRoleArns": "[]"}
    assert ("zero-trust-ai:workloadDeployerRoleArns: missing; required in keys stacks"
            in _problems(keys))


def test_the_workload_deployer_may_not_administer_the_keys() -> None:
    keys = {**load_stack(ROOT, "prod-keys").config,
            "zero-trust-ai:workloadDeployerRoleArns": json.dumps([ADMIN])}
    assert "must not administer the keys" in _problems(keys)


def test_a_layer_that_does_not_exist_is_refused() -> None:
    assert "allowed values are combined, keys, workload, bootstrap, organization" in _problems(
        {**load_stack(ROOT, "dev").config, "zero-trust-ai:layer": "everything"})


def test_the_shipped_layers_parse() -> None:
    assert isinstance(parse_layer_config(load_stack(ROOT, "prod-keys").config), KeyLayerConfig)
    workload = parse_layer_config(load_stack(ROOT, "prod").config)
    assert isinstance(workload, StackConfig) and workload.layer == "workload"
    assert workload.key_layer_stack == "organization/zero-trust-ai/prod-keys"


# -- the organisation's stack --------------------------------------------------------------------
def test_the_organization_stack_is_a_layer_of_its_own() -> None:
    config = parse_layer_config(load_stack(ROOT, "org").config)
    assert isinstance(config, OrganizationConfig)
    assert config.guardrails.organization_id == "o-exampleorgid"
    assert placeholders(config) == ["zero-trust-ai:organizationId = o-exampleorgid (the shipped placeholder)",
                                    "zero-trust-ai:guardrailTargetIds names placeholder OUs"]
    # A workload's key in the organisation's stack, or a guardrail in a workload's, is refused.
    org = load_stack(ROOT, "org").config
    assert "zero-trust-ai:dataCidr: not read by an organization stack" in _problems(
        {**org, "zero-trust-ai:dataCidr": "10.0.0.0/16"})
    assert "zero-trust-ai:guardrailTargetIds: not read by a workload stack" in _problems(
        {**load_stack(ROOT, "prod").config, "zero-trust-ai:guardrailTargetIds": '["ou-abcd-12345678"]'})
    assert "zero-trust-ai:organizationId" in _problems({**org, "zero-trust-ai:organizationId": ""})


def test_the_organization_stack_declares_the_guardrails_only() -> None:
    stack = record_stack("org")
    types = {r.type for r in stack.resources[1:]}
    assert types == {"zero-trust-ai:guardrails:OrganizationGuardrails",
                     "aws:organizations/policy:Policy",
                     "aws:organizations/policyAttachment:PolicyAttachment"}
    assert sorted(stack.stack_outputs["guardrailPolicyIds"]) == [
        "api-network", "data-perimeter", "fleet-identity", "keys-images", "logging-identity"]


# -- the drift check's read-only role -------------------------------------------------------------
def test_the_inspector_reads_every_key_and_uses_none(split: SplitEnvironment) -> None:
    inspector = INSPECTOR
    keys = [r for r in split.sealed_keys.resources if r.type in ("aws:kms/key:Key", KEY_POLICY)]
    assert len(keys) == 14  # seven keys and their seven sealed policies
    for resource in keys:
        policy = resource.inputs["policy"]
        for action in ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
                       "kms:ListResourceTags"):
            assert evaluate(policy, Request(inspector, action, "*", {})).effect == "allow", resource.name
        for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:PutKeyPolicy", "kms:CreateGrant",
                       "kms:ScheduleKeyDeletion", "kms:GenerateMac"):
            assert evaluate(policy, Request(inspector, action, "*", {})).effect != "allow", (
                resource.name, action)


def _human_network(stack: Any) -> dict[str, Any]:
    [boundary] = [r for r in stack.resources if r.name == "access-boundary"]
    statements = json.loads(boundary.inputs["policy"])["Statement"]
    return dict(next(s for s in statements if s["Sid"] == "DenyOutsideNetwork")["Condition"])


def test_the_human_roles_are_usable_from_nowhere_until_the_grants_file_names_the_network(
        split: SplitEnvironment) -> None:
    # First deployment of the key layer: the roles exist (the workload grants them) but every call
    # but break-glass's is outside the network.
    first = _human_network(split.first_keys)
    assert "aws:SourceVpce" not in json.dumps(first) and "aws:SourceIp" not in json.dumps(first)
    assert first["StringNotEquals"] == {"aws:PrincipalTag/ztai:access": "break-glass"}
    # Sealed: the management endpoints the reviewed grants file names, exactly.
    sealed = _human_network(split.sealed_keys)
    endpoints = split.workload.stack_outputs["keyGrants"]["identity"]["sourceVpceIds"]
    assert sealed["StringNotEquals"]["aws:SourceVpce"] == sorted(endpoints)
    management = {r.outputs["id"] for r in split.workload.resources
                  if r.type == "aws:ec2/vpcEndpoint:VpcEndpoint"
                  and r.parent.endswith("::network-management-vpc")}
    assert management and set(endpoints) == management


def test_a_workload_naming_an_elevation_its_key_layer_lacks_is_the_users_error() -> None:
    # The two stacks name different catalogues: the workload would grant a role the key layer
    # never made. Said before any read, by name, and with the fix. In a process of its own: a
    # run stopped half-way leaves Pulumi's pending calls behind, as `ztai preview` (one run per
    # process) never sees.
    script = ("import pulumi\n"
              "from tests.support.stacks import record_stack\n"
              "try:\n"
              "    record_stack('prod', {'zero-trust-ai:jitCatalogueFile': "
              "'tests/components/fixtures/jit-prod-one-more.yaml'})\n"
              "except pulumi.RunError as error:\n"
              "    print('RunError:', error)\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=False)
    expected = (r"RunError: the key layer stack organization/zero-trust-ai/prod-keys declares no role "
                r"zero-trust-ai-prod-jit-outputs-write \(elevationRoleArns\['outputs-write'\]\).*"
                r"same jitCatalogueFile")
    assert re.search(expected, run.stdout), run.stdout[-2000:] + run.stderr[-2000:]


def test_the_key_layer_exports_the_roles_a_workload_reads(split: SplitEnvironment) -> None:
    outputs = split.first_keys.stack_outputs
    assert set(outputs["elevationRoleArns"]) == {"training-data-write", "key-admin", "audit-key-admin"}
    read = {r.outputs["arn"] for r in split.workload.reads if r.type == "aws:iam/role:Role"}
    assert read == {*outputs["elevationRoleArns"].values(), *outputs["humanRoleArns"].values()}
