"""`ztai verify`: a moto account holding the dev stack as the program declares it (sealed key
policies, endpoint policies, flow logs, from an offline preview's export) passes; what an insider
changes outside Pulumi is caught, as drift against the state and as a policy violation; every bad
input exits 2 with a message.

What moto does not model, and so what these tests do not show: KMS's validation of a key policy
(PutKeyPolicy accepts any text here, so a policy KMS would refuse can be "deployed"), the lockout
safety check, IAM evaluation of the policies, RotationPeriodInDays (added by
tests/support/deployed_account.py's model_rotation_periods, as KMS answers it), and a flow log's
delivery failing (moto reports every flow log ACTIVE and SUCCESS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.conftest import ROOT
from tests.support.deployed_account import deploy, model_rotation_periods, trail
from ztai import verify_cmd
from ztai.cli import main

REGION = "eu-west-1"
ACCOUNT = "111122223333"  # the account of the dev stack's placeholder ARNs
MODEL_ALIAS = "alias/zero-trust-ai/dev/model-weights"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-key-admin"


@pytest.fixture(scope="module")
def dev_export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("export") / "dev.json"
    run = subprocess.run([sys.executable, "-m", "ztai", "preview", "--stack", "dev", "--quiet",
                          "--export", str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    document: dict[str, Any] = json.loads(path.read_text())
    return document


class Account:
    """The moto account and the state file of what was deployed into it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.kms = boto3.client("kms", region_name=REGION)
        self.ec2 = boto3.client("ec2", region_name=REGION)

    def key_id(self, alias: str) -> str:
        return str(self.kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"])

    def policy(self, alias: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(
            self.kms.get_key_policy(KeyId=self.key_id(alias), PolicyName="default")["Policy"])
        return document

    def edit_policy(self, alias: str, edit: Callable[[list[dict[str, Any]]], None]) -> None:
        """What an administrator does in the console: rewrite the key policy directly."""
        document = self.policy(alias)
        edit(document["Statement"])
        self.kms.put_key_policy(KeyId=self.key_id(alias), PolicyName="default",
                                Policy=json.dumps(document))


@pytest.fixture
def account(dev_export: dict[str, Any], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "MOTO_ACCOUNT_ID": ACCOUNT}.items():
        monkeypatch.setenv(name, value)
    model_rotation_periods(monkeypatch)
    with mock_aws():
        state = tmp_path / "state.json"
        state.write_text(json.dumps(deploy(dev_export, REGION)))
        yield Account(state)


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    status = main(["verify", "--stack", "dev", "--json", *args])
    out, err = capsys.readouterr()
    return status, json.loads(out) if out else {}, err


def kinds(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(item["kind"], item["change"]) for item in report["drift"]}


def policies(report: dict[str, Any]) -> set[str]:
    return {violation["policy"] for violation in report["violations"]}


# -- a clean account ------------------------------------------------------------------------------
def test_the_deployed_stack_matches_its_state_and_passes(account: Account,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert report["driftCompared"] is True
    assert report["drift"] == []
    assert report["violations"] == []
    assert report["policyPack"]["policiesNotJudged"] == []
    assert len(report["read"]["keys"]) == 7 and len(report["read"]["vpcs"]) == 4
    assert len(report["read"]["flowLogs"]) == 4
    # The stack deploys no trail: said, but not a failure unless asked for.
    assert [(f["kind"], f["blocking"]) for f in report["findings"]] == [("no-trail", False)]
    assert status == 0


def test_without_state_drift_is_not_compared_and_only_standalone_rules_judge(
        account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    status, report, err = verify(capsys)
    assert status == 0
    assert report["driftCompared"] is False
    assert "drift was not compared" in err
    assert set(report["policyPack"]["policiesJudged"]) == verify_cmd.STANDALONE_RULES
    assert "kms-two-person-key-administration" in report["policyPack"]["policiesNotJudged"]


def test_the_text_report_says_what_was_read_and_that_it_passed(
        account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", "--stack", "dev", "--state", str(account.state)])
    out = capsys.readouterr().out
    assert status == 0
    assert "read 7 key(s), 4 VPC(s)" in out
    assert "none: what is deployed is what the state holds" in out
    assert out.rstrip().endswith("Result: PASSED")


# -- drift an insider leaves ----------------------------------------------------------------------
def _admin_decrypts(statements: list[dict[str, Any]]) -> None:
    statements.append({"Sid": "AdminDecrypt", "Effect": "Allow", "Principal": {"AWS": ADMIN},
                       "Action": "kms:Decrypt", "Resource": "*"})


def test_an_admin_allowing_itself_decrypt_is_drift_and_a_violation(
        account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.edit_policy(MODEL_ALIAS, _admin_decrypts)
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    [item] = report["drift"]
    assert (item["kind"], item["resource"], item["change"]) == ("key-policy", MODEL_ALIAS, "changed")
    assert item["urn"].endswith("::keys-model-weights-policy")
    assert any(detail.startswith("added Sid AdminDecrypt") for detail in item["details"])
    assert "model-key-attestation-required" in policies(report)
    assert report["summary"]["passed"] is False


def test_an_admin_allowing_itself_decrypt_is_a_violation_without_state(
        account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.edit_policy(MODEL_ALIAS, _admin_decrypts)
    status, report, _ = verify(capsys)
    assert status == 1
    assert "model-key-attestation-required" in policies(report)
    assert any(MODEL_ALIAS in v["urn"] for v in report["violations"])


def test_a_removed_attestation_deny_is_drift_and_a_violation(
        account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.edit_policy(MODEL_ALIAS, lambda statements: statements.__delitem__(
        next(i for i, s in enumerate(statements)
             if s.get("Sid", "").startswith("DenyPlaintextUnlessPCR0Pinned"))))
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    [item] = report["drift"]
    [detail] = item["details"]
    assert detail.startswith("removed Sid DenyPlaintextUnlessPCR0Pinned")
    assert "model-key-attestation-required" in policies(report)


def test_a_policy_rewritten_in_another_form_is_not_drift(
        account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    """KMS may return a policy spaced, ordered or listed otherwise than Pulumi wrote it."""
    def reshape(statements: list[dict[str, Any]]) -> None:
        statements.reverse()
        for statement in statements:
            if isinstance(statement.get("Action"), list):
                statement["Action"] = list(reversed(statement["Action"]))
            principal = statement.get("Principal", {}).get("AWS")
            if isinstance(principal, list) and len(principal) == 1:
                statement["Principal"]["AWS"] = principal[0]
    account.edit_policy(MODEL_ALIAS, reshape)
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert (status, report["drift"]) == (0, [])


def test_a_deleted_flow_log_is_drift_and_a_violation(account: Account,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    [log] = account.ec2.describe_flow_logs()["FlowLogs"][:1]
    account.ec2.delete_flow_logs(FlowLogIds=[log["FlowLogId"]])
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    assert kinds(report) == {("flow-log", "removed")}
    assert report["drift"][0]["resource"] == log["FlowLogId"]
    assert "vpc-flow-logs-enabled" in policies(report)
    # Without the state the pack alone still sees a VPC without a flow log.
    status, report, _ = verify(capsys)
    assert (status, policies(report)) == (1, {"vpc-flow-logs-enabled"})


def test_a_widened_endpoint_policy_is_drift_and_a_violation(account: Account,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = next(e for e in account.ec2.describe_vpc_endpoints()["VpcEndpoints"]
                    if e["ServiceName"].endswith(".kms"))
    account.ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], PolicyDocument=json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}))
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    assert kinds(report) == {("endpoint-policy", "changed")}
    assert "vpc-endpoint-policy-restrictive" in policies(report)


def test_an_endpoint_added_outside_pulumi_is_drift(account: Account,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    vpc = account.ec2.describe_vpcs(Filters=[{"Name": "tag:environment", "Values": ["dev"]}])["Vpcs"][0]
    account.ec2.create_vpc_endpoint(VpcId=vpc["VpcId"], ServiceName=f"com.amazonaws.{REGION}.sqs",
                                    VpcEndpointType="Interface")
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    assert kinds(report) == {("endpoint", "added")}
    # AWS gave it the default policy (anyone, anything), which the pack refuses.
    assert "vpc-endpoint-policy-restrictive" in policies(report)


def test_a_disabled_key_is_a_finding(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.kms.disable_key(KeyId=account.key_id(MODEL_ALIAS))
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    assert ("key-state", MODEL_ALIAS, True) in {(f["kind"], f["resource"], f["blocking"])
                                                for f in report["findings"]}


def test_rotation_turned_off_is_drift_and_a_violation(account: Account,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    account.kms.disable_key_rotation(KeyId=account.key_id("alias/zero-trust-ai/dev/logs"))
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    assert kinds(report) == {("key-rotation", "changed")}
    assert "kms-key-rotation-enabled" in policies(report)


def test_a_key_policy_denying_the_verifier_its_read_fails_the_run(
        account: Account, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An insider hides a changed policy by denying kms:GetKeyPolicy to the verifying role in it.
    moto evaluates no key policy, so the refusal KMS would give is made here."""
    from botocore.exceptions import ClientError
    hidden = account.key_id(MODEL_ALIAS)
    real = verify_cmd.clients

    class Refusing:
        def __init__(self, client: Any) -> None:
            self.client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

        def get_key_policy(self, **params: Any) -> Any:
            if params["KeyId"] == hidden:
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}},
                                  "GetKeyPolicy")
            return self.client.get_key_policy(**params)

    monkeypatch.setattr(verify_cmd, "clients",
                        lambda region: {**real(region), "kms": Refusing(real(region)["kms"])})
    status, report, _ = verify(capsys)
    assert status == 1
    assert [(f["kind"], f["blocking"]) for f in report["findings"] if f["kind"] == "unreadable"] == [
        ("unreadable", True)]
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    assert ("key", "removed") in kinds(report)


def test_a_vpc_retagged_out_of_the_environment_is_drift(account: Account,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    vpc = account.ec2.describe_vpcs(Filters=[{"Name": "tag:environment", "Values": ["dev"]}])["Vpcs"][0]
    account.ec2.create_tags(Resources=[vpc["VpcId"]], Tags=[{"Key": "environment", "Value": "sandbox"}])
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    assert {"vpc", "flow-log", "endpoint"} == {item["kind"] for item in report["drift"]}
    assert ("vpc", vpc["VpcId"], "removed") in {(d["kind"], d["resource"], d["change"])
                                                for d in report["drift"]}


# -- trails ---------------------------------------------------------------------------------------
def test_no_trail_fails_only_when_required(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    status, report, _ = verify(capsys, "--state", str(account.state), "--require-trail")
    assert status == 1
    assert [(f["kind"], f["blocking"]) for f in report["findings"]] == [("no-trail", True)]


def test_a_complete_trail_passes(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    trail(REGION, name="zero-trust-ai-dev")
    status, report, _ = verify(capsys, "--state", str(account.state), "--require-trail")
    assert (status, report["findings"]) == (0, [])


def test_another_trail_is_not_the_audit_trail(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    trail(REGION, name="somebody-elses")
    status, report, _ = verify(capsys, "--state", str(account.state), "--require-trail")
    assert status == 1
    assert [(f["kind"], f["blocking"]) for f in report["findings"]] == [("no-audit-trail", True)]


def test_a_stopped_trail_fails(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    trail(REGION, logging=False, name="zero-trust-ai-dev")
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    assert {f["kind"] for f in report["findings"]} == {"trail-stopped", "trail-incomplete"}


def test_a_single_region_trail_without_validation_fails(account: Account,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    trail(REGION, multi_region=False, validation=False, name="zero-trust-ai-dev")
    status, report, _ = verify(capsys, "--state", str(account.state))
    assert status == 1
    [finding] = report["findings"]
    assert finding["kind"] == "trail-incomplete"
    assert "one Region only" in finding["message"] and "no log file validation" in finding["message"]


# -- bad inputs -----------------------------------------------------------------------------------
def run_text(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["verify", *args])
    return status, capsys.readouterr().err


def test_an_unknown_stack_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_text(capsys, "--stack", "nope")
    assert status == 2
    assert "stack 'nope' has no configuration file" in err and "dev, org, prod, prod-keys" in err


def test_a_bad_region_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_text(capsys, "--stack", "dev", "--region", "mars")
    assert (status, err.strip()) == (2, "error: --region 'mars' is not an AWS Region name (e.g. eu-west-1)")


def test_a_state_file_that_is_not_json_is_refused(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("not json")
    status, err = run_text(capsys, "--stack", "dev", "--state", str(state))
    assert status == 2 and "--state" in err and str(state) in err and "Traceback" not in err


def test_a_missing_state_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, err = run_text(capsys, "--stack", "dev", "--state", str(tmp_path / "absent.json"))
    assert status == 2 and "absent.json" in err and "Traceback" not in err


def test_a_state_without_a_deployment_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 3}))
    status, err = run_text(capsys, "--stack", "dev", "--state", str(state))
    assert status == 2 and "no top-level \"deployment\"" in err


def test_an_empty_state_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 3, "deployment": {"resources": []}}))
    status, err = run_text(capsys, "--stack", "dev", "--state", str(state))
    assert status == 2 and "holds no resources" in err


def test_the_state_of_another_stack_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               dev_export: dict[str, Any]) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(dev_export))
    status, err = run_text(capsys, "--stack", "prod", "--state", str(state))
    assert status == 2
    assert "is the state of stack 'dev'" in err and "not of stack 'prod'" in err


def test_no_credentials_is_a_message(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    status, err = run_text(capsys, "--stack", "dev")
    assert status == 2
    assert "no AWS credentials found" in err and "docs/drift.md" in err


def test_access_denied_names_the_call_and_the_permissions(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    kms = boto3.client("kms", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(kms)
    stubber.add_client_error("list_aliases", "AccessDeniedException", "not authorized")
    stubber.activate()
    monkeypatch.setattr(verify_cmd, "clients", lambda region: {"kms": kms, "ec2": None,
                                                               "cloudtrail": None})
    status, err = run_text(capsys, "--stack", "dev")
    assert status == 2
    assert "access denied to ListAliases in eu-west-1" in err and "docs/drift.md" in err


def test_an_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["verify", "--stack", "dev", "--staet", "x"])
    assert exit_.value.code == 2


def test_every_standalone_rule_is_in_the_pack() -> None:
    """A renamed rule would silently drop out of what verify judges without --state."""
    from ztpolicy.rules import ALL_RULES
    assert {rule.name for rule in ALL_RULES} >= verify_cmd.STANDALONE_RULES


# -- the comparison of policies -------------------------------------------------------------------
def test_policies_compare_as_iam_reads_them() -> None:
    from ztai.drift import policy_differences
    written = {"Version": "2012-10-17", "Statement": [
        {"Sid": "A", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:role/a"]},
         "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"},
        {"Sid": "B", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:RecipientAttestation:PCR0": "ab"}}}]}
    returned = {"Version": "2012-10-17", "Statement": [
        {"Sid": "B", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt"], "Resource": ["*"],
         "Condition": {"StringNotEquals": {"kms:RecipientAttestation:PCR0": ["ab"]}}},
        {"Sid": "A", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/a"},
         "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": "*"}]}
    assert policy_differences(json.dumps(written), json.dumps(returned, indent=4)) == []
    changed = json.loads(json.dumps(returned))
    changed["Statement"][0]["Condition"]["StringNotEquals"]["kms:RecipientAttestation:PCR0"] = "cd"
    changed["Statement"].append({"Sid": "C", "Effect": "Allow", "Principal": "*", "Action": "kms:*",
                                 "Resource": "*"})
    differences = policy_differences(written, changed)
    assert differences[0].startswith("added Sid C: ")
    assert differences[1].startswith("changed Sid B (Condition): now ")
    assert len(differences) == 2
    assert policy_differences(written, None) == ["the policy is missing"]
    assert policy_differences(written, "not json") == ["the policy is not a JSON object"]


def _project(tmp_path: Path, config: dict[str, Any]) -> Path:
    """A project holding the repository's Pulumi.yaml and one stack file `x`."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "stacks").mkdir()
    lines = ["config:", *(f"  {key}: {json.dumps(value)}" for key, value in config.items())]
    (tmp_path / "stacks" / "Pulumi.x.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_a_stack_without_a_known_environment_is_refused(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    project = _project(tmp_path, {"aws:region": REGION})
    status, err = run_text(capsys, "--stack", "x", "--project-dir", str(project))
    assert status == 2
    assert "zero-trust-ai:environment is null; it must be one of dev, staging, prod" in err


def test_a_stack_without_a_region_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    project = _project(tmp_path, {"zero-trust-ai:environment": "dev"})
    status, err = run_text(capsys, "--stack", "x", "--project-dir", str(project))
    assert (status, err.strip()) == (2, "error: stack x sets no aws:region; pass --region R")


def test_a_stack_of_a_layer_without_keys_or_workload_is_refused(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    project = _project(tmp_path, {"aws:region": REGION, "zero-trust-ai:environment": "prod",
                                  "zero-trust-ai:layer": "bootstrap"})
    status, err = run_text(capsys, "--stack", "x", "--project-dir", str(project))
    assert status == 2
    assert "stack x is of layer 'bootstrap': verify checks the keys and the workload" in err
