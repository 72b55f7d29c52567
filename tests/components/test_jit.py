"""JustInTimeAccess under Pulumi's mock monitor, and the catalogue file it is built from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.jit import JustInTimeAccess, JustInTimeAccessArgs
from components.jit_catalogue import JitElevation, parse_catalogue, parse_catalogue_file
from components.tags import register_standard_tags
from tests.support.alarms import ALARMS
from tests.support.key_policy import Request, evaluate
from ztai.preview.recorder import RecordedResource, RecordedStack, record

KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT = Path(__file__).resolve().parent.parent.parent
ELEVATIONS = (
    JitElevation("training-data-write", "write training data", "model-prefix-write", "training-data/", 240,
                 ("data-lead",), 1),
    JitElevation("key-admin", "administer keys", "key-admin", "", 30, ("security-lead",), 2,
                 key="model-weights"),
)


def build(elevations: tuple[JitElevation, ...] = ELEVATIONS) -> RecordedStack:
    def program() -> None:
        register_standard_tags("dev", "ml-platform")
        JustInTimeAccess("jit", JustInTimeAccessArgs(environment="dev", region="eu-west-1",
                                                     elevations=elevations, table_key_arn=KEY,
                                                     logs_key_arn=KEY, key_arns={"model-weights": KEY},
                                                     alarm_actions=ALARMS))

    return record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def test_the_table_is_encrypted_recoverable_and_protected_from_deletion() -> None:
    table = named(build(), "jit-table").inputs
    assert table["name"] == "zero-trust-ai-dev-jit"
    assert table["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": KEY}
    assert table["pointInTimeRecovery"]["enabled"] is True
    assert table["deletionProtectionEnabled"] is True


def test_one_closed_tagged_role_per_elevation() -> None:
    stack = build()
    for elevation in ELEVATIONS:
        role = named(stack, f"jit-role-{elevation.name}").inputs
        assert role["name"] == f"zero-trust-ai-dev-jit-{elevation.name}"
        assert role["tags"]["ztai:access"] == "jit-elevation"
        assert role["maxSessionDuration"] == 3600
        trust = role["assumeRolePolicy"]
        # Nobody may assume it, at any time after the stack exists, until a grant rewrites it.
        for caller in ("arn:aws:iam::111122223333:role/anyone", "arn:aws:iam::111122223333:root"):
            decision = evaluate(trust, Request(caller, "sts:AssumeRole", "", {
                "aws:CurrentTime": "2026-12-07T09:00:00Z"}), trust=True)
            assert decision.effect == "implicit-deny"


def test_the_function_url_requires_iam_signatures() -> None:
    assert named(build(), "jit-api-url").inputs["authorizationType"] == "AWS_IAM"


def _policy(stack: RecordedStack, name: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = json.loads(named(stack, name).inputs["policy"])["Statement"]
    return statements


def test_only_the_api_function_creates_schedules_and_passes_the_scheduler_role() -> None:
    stack = build()
    api = {s["Sid"]: s for s in _policy(stack, "jit-api-role-policy")}
    expiry = {s["Sid"]: s for s in _policy(stack, "jit-expiry-role-policy")}
    assert "CreateExpirySchedules" in api and "PassTheSchedulerRole" in api
    assert api["PassTheSchedulerRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    assert "CreateExpirySchedules" not in expiry and "PassTheSchedulerRole" not in expiry
    for statements in (api, expiry):
        assert statements["ElevationRoles"]["Action"] == [
            "iam:GetRole", "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy"]
        assert len(statements["ElevationRoles"]["Resource"]) == len(ELEVATIONS)


def test_the_scheduler_role_invokes_the_expiry_function_only() -> None:
    stack = build()
    [statement] = _policy(stack, "jit-scheduler-role-policy")
    assert statement["Action"] == "lambda:InvokeFunction"
    # The mock monitor names the function's ARN after its resource name.
    assert statement["Resource"].startswith(
        "arn:aws:lambda:eu-west-1:111122223333:function/jit-expiry-function")


def test_the_api_function_gets_the_catalogue() -> None:
    variables = named(build(), "jit-api-function").inputs["environment"]["variables"]
    catalogue = json.loads(variables["JIT_CATALOGUE"])
    assert catalogue["key-admin"]["approvalsNeeded"] == 2
    assert catalogue["training-data-write"]["approvers"] == ["data-lead"]


def test_the_shipped_catalogues_parse() -> None:
    for environment in ("dev", "prod"):
        elevations = parse_catalogue_file("jitCatalogueFile", f"stacks/jit/{environment}.yaml", ROOT)
        assert {e.name for e in elevations} == {"training-data-write", "key-admin", "audit-key-admin"}
        assert next(e for e in elevations if e.name == "key-admin").approvals_needed == 2
        # The audit trail's key is two-person too: its own elevation, two approvers.
        audit = next(e for e in elevations if e.name == "audit-key-admin")
        assert (audit.grant, audit.key, audit.approvals_needed) == ("key-admin", "audit", 2)


GOOD = {"name": "training-data-write", "description": "write", "grant": "model-prefix-write",
        "prefix": "training-data/", "maxMinutes": 60, "approvers": ["data-lead"], "approvalsNeeded": 1}


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "Training"}, "name = 'Training': 2 to 32 lower-case letters"),
    ({"description": " "}, "description: say what the elevation is for"),
    ({"grant": "admin"},
     "grant = 'admin': allowed values are training-data-prefix-write, model-prefix-write, key-admin, "
     "break-glass"),
    ({"grant": "training-data-prefix-write", "prefix": "models/"},
     "prefix = 'models/': training-data-prefix-write needs one of the training-data bucket's prefixes, raw/"),
    ({"prefix": "models"}, "prefix = 'models': model-prefix-write needs one object-key prefix ending in `/`"),
    ({"maxMinutes": 10}, "maxMinutes = 10: a whole number of minutes from 15"),
    ({"maxMinutes": 721}, "maxMinutes = 721"),
    ({"maxMinutes": True}, "maxMinutes = true"),
    ({"approvers": []}, "approvers = []: a non-empty list of IAM role names"),
    ({"approvers": ["a", "a"]}, "a role is listed twice"),
    ({"approvalsNeeded": 0}, "approvalsNeeded = 0: 1 to 3"),
    ({"grant": "key-admin", "prefix": None, "approvalsNeeded": 1},
     "approvalsNeeded = 1: 2 to 3 (key-admin is a two-person elevation)"),
    ({"grant": "break-glass", "prefix": None, "approvalsNeeded": 1}, "break-glass is a two-person elevation"),
    ({"grant": "key-admin", "approvalsNeeded": 2},
     "prefix: only model-prefix-write and training-data-prefix-write take one"),
    ({"approver": ["x"]}, "unknown field(s) approver"),
    # Detection exempts the CI deployers by name: a JIT role must never look like one.
    ({"name": "hotfix-deploy-keys"}, "a name ending in deploy-keys or deploy-workload is reserved"),
    ({"name": "deploy-workload"}, "a name ending in deploy-keys or deploy-workload is reserved"),
    ({"approvers": None}, "missing approvers"),
])
def test_bad_catalogue_entries_are_named(change: dict[str, Any], message: str) -> None:
    entry = {**GOOD, **change}
    entry = {key: value for key, value in entry.items() if value is not None}
    with pytest.raises(ValueError, match="zero-trust-ai:jitCatalogueFile") as problem:
        parse_catalogue("zero-trust-ai:jitCatalogueFile = x.yaml", {"elevations": [entry]})
    assert message in str(problem.value)


def test_a_catalogue_file_that_is_not_one(tmp_path: Path) -> None:
    for text, message in [("elevations: {}\n", "expected a mapping with an `elevations:` list"),
                          ("roles: []\n", "unknown top-level key(s) roles"),
                          ("elevations: [\n", "not valid YAML"),
                          (f"elevations:\n  - {json.dumps(GOOD)}\n  - {json.dumps(GOOD)}\n", "listed twice")]:
        (tmp_path / "c.yaml").write_text(text)
        with pytest.raises(ValueError, match="jitCatalogueFile") as problem:
            parse_catalogue_file("jitCatalogueFile", "c.yaml", tmp_path)
        assert message in str(problem.value)
    with pytest.raises(ValueError, match="cannot read it as YAML"):
        parse_catalogue_file("jitCatalogueFile", "missing.yaml", tmp_path)
    assert parse_catalogue_file("jitCatalogueFile", "", tmp_path) == []


def test_a_persons_role_may_call_the_api_through_its_iam_url_only() -> None:
    import pulumi_aws as aws

    def program() -> None:
        register_standard_tags("dev", "ml-platform")
        jit = JustInTimeAccess("jit", JustInTimeAccessArgs(
            environment="dev", region="eu-west-1", elevations=ELEVATIONS, table_key_arn=KEY,
            logs_key_arn=KEY, permissions_boundary="arn:aws:iam::111122223333:policy/boundary",
            key_arns={"model-weights": KEY}, alarm_actions=ALARMS))
        person = aws.iam.Role("curator", assume_role_policy="{}")
        jit.grant_requests(person)

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    policy = named(stack, "jit-requests-curator").inputs["policy"]
    function_arn = named(stack, "jit-api-function").outputs["arn"]
    caller = "arn:aws:iam::111122223333:role/curator"
    through_url = Request(caller, "lambda:InvokeFunctionUrl", function_arn,
                          {"lambda:FunctionUrlAuthType": "AWS_IAM"})
    assert evaluate(policy, through_url, identity=True).effect == "allow"
    # The Invoke that a URL call also needs is granted only as part of one.
    invoke_via_url = Request(caller, "lambda:InvokeFunction", function_arn,
                             {"lambda:InvokedViaFunctionUrl": "true"})
    assert evaluate(policy, invoke_via_url, identity=True).effect == "allow"
    for other in (Request(caller, "lambda:InvokeFunctionUrl", function_arn,
                          {"lambda:FunctionUrlAuthType": "NONE"}),
                  Request(caller, "lambda:InvokeFunction", function_arn, {}),
                  Request(caller, "dynamodb:PutItem", "arn:aws:dynamodb:eu-west-1:111122223333:table/t", {})):
        assert evaluate(policy, other, identity=True).effect == "implicit-deny"
    # The person's source identity goes with the session they chain into an elevation role.
    for elevation in ELEVATIONS:
        role_arn = named(stack, f"jit-role-{elevation.name}").outputs["arn"]
        for action in ("sts:AssumeRole", "sts:SetSourceIdentity"):
            assert evaluate(policy, Request(caller, action, role_arn, {}), identity=True).effect == "allow"
    # Elevation roles sit inside the boundary they are given.
    for elevation in ELEVATIONS:
        role = named(stack, f"jit-role-{elevation.name}").inputs
        assert role["permissionsBoundary"] == "arn:aws:iam::111122223333:policy/boundary"


def test_the_scheduler_role_trusts_only_the_jit_expiry_schedules_of_the_account() -> None:
    trust = named(build(), "jit-scheduler-role").inputs["assumeRolePolicy"]
    schedule = "arn:aws:scheduler:eu-west-1:111122223333:schedule/default/ztai-jit-0123abcd"

    def assumes(context: dict[str, str]) -> str:
        return evaluate(trust, Request("scheduler.amazonaws.com", "sts:AssumeRole", "", context),
                        trust=True).effect

    assert assumes({"aws:SourceAccount": "111122223333", "aws:SourceArn": schedule}) == "allow"
    for other in ("arn:aws:scheduler:eu-west-1:111122223333:schedule/default/someone-elses",
                  "arn:aws:scheduler:eu-west-1:111122223333:schedule/team/ztai-jit-0123abcd",
                  "arn:aws:scheduler:us-east-1:111122223333:schedule/default/ztai-jit-0123abcd"):
        assert assumes({"aws:SourceAccount": "111122223333", "aws:SourceArn": other}) == "implicit-deny"
    assert assumes({"aws:SourceAccount": "111122223333"}) == "implicit-deny"
    assert assumes({"aws:SourceAccount": "444455556666", "aws:SourceArn": schedule}) == "implicit-deny"


def test_the_api_learns_the_key_each_key_admin_elevation_writes_the_policy_of() -> None:
    api = named(build(), "jit-api-function")
    catalogue = json.loads(api.inputs["environment"]["variables"]["JIT_CATALOGUE"])
    assert catalogue["key-admin"]["keyArn"] == KEY
    assert catalogue["training-data-write"]["keyArn"] is None
    with pytest.raises(ValueError, match="key_arns lacks model-weights, the key"):
        def program() -> None:
            JustInTimeAccess("jit", JustInTimeAccessArgs(environment="dev", region="eu-west-1",
                                                         elevations=ELEVATIONS, table_key_arn=KEY,
                                                         logs_key_arn=KEY, alarm_actions=ALARMS))
        record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")

