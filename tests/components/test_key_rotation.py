"""MonthlyKeyRotation under Pulumi's mock monitor, the key hierarchy's side of it, and the stack's
wiring as `ztai preview` records it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.key_rotation import (
    HANDLER,
    RUNTIME_DIR,
    RUNTIME_MODULES,
    MonthlyKeyRotation,
    MonthlyKeyRotationArgs,
)
from components.keys import (
    HMAC_PURPOSE,
    KEY_ROTATION_ACTIONS,
    SYMMETRIC_PURPOSES,
    KeyHierarchy,
    KeyHierarchyArgs,
)
from tests.components.test_keys import USE
from tests.conftest import ROOT
from ztai.preview import recorder
from ztai.preview.recorder import RecordedResource, RecordedStack, record

# pulumi-aws warns about its own deprecated lambda MicrovmsImage type when lambda_ is first loaded.
pytestmark = pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage.MicrovmsImage:DeprecationWarning")

ACCOUNT, REGION = "111122223333", "eu-west-1"
ALIASES = tuple(f"alias/zero-trust-ai/dev/{purpose}" for purpose in SYMMETRIC_PURPOSES)
LOGS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0000aaaa-0000-aaaa-0000-aaaa0000aaaa"
ARGS = MonthlyKeyRotationArgs(environment="dev", owner="ml-platform", region=REGION,
                              key_aliases=ALIASES, logs_key_arn=LOGS_KEY, dead_letter_key_arn=LOGS_KEY)
IN_VPC = replace(ARGS, subnet_ids=("subnet-0aaa", "subnet-0bbb"), vpc_id="vpc-0mgmt",
                 vpc_cidr="10.13.0.0/16")


def build(args: MonthlyKeyRotationArgs = ARGS) -> RecordedStack:
    def program() -> None:
        MonthlyKeyRotation("key-rotation", args)

    return record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def document(resource: RecordedResource, prop: str = "policy") -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(resource.inputs[prop])
    return parsed


def statements(resource: RecordedResource, prop: str = "policy") -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document(resource, prop)["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def stack() -> RecordedStack:
    return build()


@pytest.fixture(scope="module")
def vpc_stack() -> RecordedStack:
    return build(IN_VPC)


def test_children_are_named_after_the_component_and_parented_to_it(stack: RecordedStack) -> None:
    component = named(stack, "key-rotation")
    assert component.type == "zero-trust-ai:keys:MonthlyKeyRotation" and not component.custom
    children = [r for r in stack.resources if r.parent == component.urn]
    assert {r.name for r in children} >= {"key-rotation-function", "key-rotation-role",
                                          "key-rotation-logs", "key-rotation-schedule",
                                          "key-rotation-scheduler-role", "key-rotation-dlq"}
    assert all(r.name.startswith("key-rotation-") for r in stack.resources[2:])


def test_the_function(stack: RecordedStack) -> None:
    function = named(stack, "key-rotation-function")
    inputs = function.inputs
    assert (inputs["handler"], inputs["runtime"]) == (HANDLER, "python3.13")
    assert inputs["reservedConcurrentExecutions"] == 1  # two runs never race on a successor
    assert 60 <= inputs["timeout"] <= 900 and "vpcConfig" not in inputs
    assert inputs["role"] == named(stack, "key-rotation-role").outputs["arn"]
    # Only the modules the function runs, under the package directory.
    archive = inputs["code"]["assets"]["ztai_runtime"]["assets"]
    assert set(archive) == set(RUNTIME_MODULES)
    assert all(Path(entry["path"]) == RUNTIME_DIR / module for module, entry in archive.items())
    asynchronous = named(stack, "key-rotation-async").inputs
    assert (asynchronous["maximumRetryAttempts"], asynchronous["functionName"]) == (
        2, "zero-trust-ai-dev-key-rotation")


def test_its_log_group_exists_first_encrypted_and_kept(stack: RecordedStack) -> None:
    function, logs = named(stack, "key-rotation-function"), named(stack, "key-rotation-logs")
    name = f"/aws/lambda/{function.inputs['name']}"
    assert logs.inputs["name"] == name == function.inputs["loggingConfig"]["logGroup"]
    assert (logs.inputs["kmsKeyId"], logs.inputs["retentionInDays"]) == (LOGS_KEY, 365)
    assert logs.urn in function.dependencies
    assert named(stack, "key-rotation-role-policy").urn in function.dependencies


def test_the_execution_role_is_lambdas_only_and_holds_no_key_use(stack: RecordedStack) -> None:
    trust = document(named(stack, "key-rotation-role"), "assumeRolePolicy")["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                      "Action": "sts:AssumeRole",
                      "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]
    policy = statements(named(stack, "key-rotation-role-policy"))
    allowed = [a for s in policy.values() if s["Effect"] == "Allow" for a in as_list(s["Action"])]
    assert not [a for a in allowed if a.startswith(USE) or a.endswith("*") or a == "kms:PutKeyPolicy"]
    create = policy["CreateSuccessorKeysOnly"]
    assert create["Condition"] == {
        "StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT", "kms:KeyUsage": "ENCRYPT_DECRYPT",
                         "kms:KeyOrigin": "AWS_KMS"},
        "Bool": {"kms:MultiRegion": "false"},
        "Null": {"aws:RequestTag/zero-trust-ai:predecessor-key-id": "false"}}
    assert policy["MoveOnlyTheseAliases"]["Resource"] == [
        f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias}" for alias in ALIASES]
    deny = policy["NeverBypassTheLockoutCheck"]
    assert (deny["Effect"], deny["Action"], deny["Condition"]) == (
        "Deny", ["kms:CreateKey", "kms:PutKeyPolicy"],
        {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}})
    logs_arn = named(stack, "key-rotation-logs").outputs["arn"]
    assert policy["WriteOwnLogGroup"]["Resource"] == [logs_arn, f"{logs_arn}:log-stream:*"]
    assert not any(a.startswith("ec2:") for a in allowed)  # no VPC, no network permissions


def test_the_schedule(stack: RecordedStack) -> None:
    schedule = named(stack, "key-rotation-schedule").inputs
    assert (schedule["scheduleExpression"], schedule["scheduleExpressionTimezone"]) == (
        "cron(0 3 1 * ? *)", "UTC")
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"} and schedule["state"] == "ENABLED"
    target = schedule["target"]
    assert target["arn"] == named(stack, "key-rotation-function").outputs["arn"]
    assert target["roleArn"] == named(stack, "key-rotation-scheduler-role").outputs["arn"]
    assert json.loads(target["input"]) == {"aliases": list(ALIASES)}
    assert target["retryPolicy"]["maximumRetryAttempts"] > 0
    assert target["deadLetterConfig"]["arn"] == named(stack, "key-rotation-dlq").outputs["arn"]


def test_the_scheduler_role_may_only_invoke_and_dead_letter(stack: RecordedStack) -> None:
    trust = document(named(stack, "key-rotation-scheduler-role"), "assumeRolePolicy")["Statement"]
    assert [(s["Principal"], s["Condition"]) for s in trust] == [
        ({"Service": "scheduler.amazonaws.com"}, {"StringEquals": {"aws:SourceAccount": ACCOUNT}})]
    policy = statements(named(stack, "key-rotation-scheduler-role-policy"))
    queue_arn = named(stack, "key-rotation-dlq").outputs["arn"]
    allows = {(s["Action"], s["Resource"]) for s in policy.values() if s["Effect"] == "Allow"}
    assert allows == {("lambda:InvokeFunction", named(stack, "key-rotation-function").outputs["arn"]),
                      ("sqs:SendMessage", queue_arn)}
    # Its use of the queue's key is for SQS and this queue only.
    assert policy["KeyOnlyThroughSqs"]["Condition"] == {
        "StringNotEquals": {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"}}
    assert policy["KeyOnlyForThisQueue"]["Condition"] == {
        "StringNotEquals": {"kms:EncryptionContext:aws:sqs:arn": queue_arn}}


def test_the_dead_letter_queue_is_encrypted_and_admits_only_the_scheduler(stack: RecordedStack) -> None:
    queue = named(stack, "key-rotation-dlq")
    assert queue.inputs["kmsMasterKeyId"] == LOGS_KEY
    policy = statements(named(stack, "key-rotation-dlq-policy"))
    assert policy["SchedulerRoleSends"]["Principal"] == {
        "AWS": named(stack, "key-rotation-scheduler-role").outputs["arn"]}
    assert policy["TlsOnly"]["Effect"] == "Deny"
    alarm = named(stack, "key-rotation-dead-letters-alarm").inputs
    assert alarm["dimensions"] == {"QueueName": queue.outputs["name"]}


def test_in_the_vpc_only_https_to_the_vpc_leaves(vpc_stack: RecordedStack) -> None:
    group = named(vpc_stack, "key-rotation-sg").inputs
    assert group["vpcId"] == "vpc-0mgmt" and group["ingress"] == []
    assert [(r["protocol"], r["fromPort"], r["toPort"], r["cidrBlocks"]) for r in group["egress"]] == [
        ("tcp", 443, 443, ["10.13.0.0/16"])]
    function = named(vpc_stack, "key-rotation-function").inputs
    assert function["vpcConfig"] == {"subnetIds": ["subnet-0aaa", "subnet-0bbb"],
                                     "securityGroupIds": [named(vpc_stack, "key-rotation-sg").id]}
    policy = statements(named(vpc_stack, "key-rotation-role-policy"))
    assert policy["CreateInterfacesInOwnSubnets"]["Resource"] == [
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/*",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0aaa",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0bbb",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{named(vpc_stack, 'key-rotation-sg').id}"]


@pytest.mark.parametrize("changes, message", [
    ({"key_aliases": ()}, "key_aliases is empty"),
    ({"key_aliases": ("alias/a", "alias/a")}, "must be distinct"),
    ({"key_aliases": ("key/1234",)}, "alias names"),
    ({"schedule_expression": "at(2026-07-01T03:00:00)"}, "not a recurring"),
    ({"log_retention_days": 100}, "not a CloudWatch Logs retention"),
    ({"timeout_seconds": 1200}, "timeout_seconds must be 60 to 900"),
    ({"subnet_ids": ("subnet-0aaa",)}, "go together"),
])
def test_bad_arguments_are_refused_before_anything_is_declared(changes: dict[str, Any],
                                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(replace(ARGS, **changes))


def test_the_shipped_modules_are_all_the_function_needs(tmp_path: Path) -> None:
    package = tmp_path / "ztai_runtime"
    package.mkdir()
    for module in RUNTIME_MODULES:
        shutil.copy(RUNTIME_DIR / module, package / module)
    # A fresh interpreter that sees only the shipped package (plus boto3, which Lambda provides).
    probe = subprocess.run(
        [sys.executable, "-c", "import ztai_runtime.rotation as r, sys; "
         "assert r.__file__.startswith(sys.argv[1]); "
         "assert not [m for m in sys.modules if m.startswith(('pulumi', 'cryptography'))]",
         str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr


# -- the key hierarchy's side ---------------------------------------------------------------
@pytest.fixture(scope="module")
def hierarchy() -> Iterator[tuple[RecordedStack, dict[str, list[str]]]]:
    ignored: dict[str, list[str]] = {}
    register: Callable[..., Any] = recorder.RecordingMonitor.RegisterResource

    def remember_ignore_changes(self: recorder.RecordingMonitor, request: Any) -> Any:
        ignored[request.name] = list(request.ignoreChanges)
        return register(self, request)

    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region=REGION))
        role = aws.iam.Role("key-rotation-role", assume_role_policy="{}")
        keys.grant_key_rotation(role)
        keys.seal()
        pulumi.export("role", role.arn)

    recorder.RecordingMonitor.RegisterResource = remember_ignore_changes  # type: ignore[method-assign]
    try:
        yield record(program, project="zero-trust-ai", stack="test", config={}, region=REGION), ignored
    finally:
        recorder.RecordingMonitor.RegisterResource = register  # type: ignore[method-assign]


def test_grant_key_rotation_on_every_symmetric_key_and_not_the_hmac_key(
        hierarchy: tuple[RecordedStack, dict[str, list[str]]]) -> None:
    stack, _ = hierarchy
    role_arn = named(stack, "key-rotation-role").outputs["arn"]
    for purpose in SYMMETRIC_PURPOSES:
        [grant] = [s for s in statements(named(stack, f"keys-{purpose}-policy")).values()
                   if s["Sid"].startswith("KeyRotationWithoutUse")]
        assert grant["Principal"] == {"AWS": role_arn} and grant["Action"] == list(KEY_ROTATION_ACTIONS)
        assert "Condition" not in grant
    hmac_policy = statements(named(stack, f"keys-{HMAC_PURPOSE}-policy"))
    assert not [s for s in hmac_policy.values() if s["Principal"] == {"AWS": role_arn}]


def test_moved_aliases_are_not_moved_back(hierarchy: tuple[RecordedStack, dict[str, list[str]]]) -> None:
    _, ignored = hierarchy
    for purpose in SYMMETRIC_PURPOSES:
        assert ignored[f"keys-{purpose}-alias"] == ["targetKeyId"]
    assert ignored[f"keys-{HMAC_PURPOSE}-alias"] == []  # never replaced: drift is corrected


# -- the stack ------------------------------------------------------------------------------
def test_the_stack_rotates_the_symmetric_keys_from_the_management_segment() -> None:
    run = subprocess.run([sys.executable, "-m", "ztai", "preview", "--stack", "dev", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    by_name = {r["name"]: r for r in report["resources"]}
    aliases = report["outputs"]["keyAliases"]
    schedule_input = json.loads(by_name["key-rotation-schedule"]["inputs"]["target"]["input"])
    assert schedule_input == {"aliases": [aliases[p] for p in SYMMETRIC_PURPOSES]}
    assert aliases[HMAC_PURPOSE] not in schedule_input["aliases"]
    subnets = report["outputs"]["privateSubnetIds"]["management"]
    assert by_name["key-rotation-function"]["inputs"]["vpcConfig"]["subnetIds"] == subnets
    logs_policy = json.loads(by_name["keys-logs-policy"]["inputs"]["policy"])["Statement"]
    services = [s["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
                for s in logs_policy if s["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}]
    assert any(arn.endswith(":log-group:/aws/lambda/zero-trust-ai-dev-key-rotation*") for arn in services)
