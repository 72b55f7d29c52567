"""MonthlyKeyRotation under Pulumi's mock monitor, the key hierarchy's side of it, and the stack's
wiring as `ztai preview` records it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.functions import RUNTIME_DIR
from components.key_rotation import (
    HANDLER,
    RUNTIME_MODULES,
    MonthlyKeyRotation,
    MonthlyKeyRotationArgs,
)
from components.keys import (
    HMAC_PURPOSE,
    KEY_ROTATION_ACTIONS,
    KEY_SUCCESSOR_ACTIONS,
    SYMMETRIC_PURPOSES,
    KeyHierarchy,
    KeyHierarchyArgs,
)
from tests.components.test_keys import USE
from tests.conftest import ROOT
from tests.support.alarms import ALARMS
from tests.support.key_policy import cloudwatch_logs_may_encrypt
from ztai.preview import recorder
from ztai.preview.recorder import RecordedResource, RecordedStack, record

# pulumi-aws warns about its own deprecated lambda MicrovmsImage type when lambda_ is first loaded.
pytestmark = pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage.MicrovmsImage:DeprecationWarning")

ACCOUNT, REGION = "111122223333", "eu-west-1"
ALIASES = tuple(f"alias/zero-trust-ai/dev/{purpose}" for purpose in SYMMETRIC_PURPOSES)
LOGS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0000aaaa-0000-aaaa-0000-aaaa0000aaaa"
KEY_IDS = tuple(f"{index}000aaaa-0000-aaaa-0000-aaaa0000aaaa" for index in range(len(ALIASES)))
KEY_ARNS = tuple(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}" for key_id in KEY_IDS)
ARGS = MonthlyKeyRotationArgs(environment="dev", owner="ml-platform", region=REGION,
                              key_aliases=ALIASES, key_arns=KEY_ARNS, logs_key_arn=LOGS_KEY,
                              dead_letter_key_arn=LOGS_KEY, alarm_actions=ALARMS)
CREATING = replace(ARGS, create_successors=True)
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


@pytest.fixture(scope="module")
def creating_stack() -> RecordedStack:
    return build(CREATING)


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


def test_a_run_that_fails_every_retry_leaves_its_record_in_an_encrypted_queue(stack: RecordedStack) -> None:
    queue = named(stack, "key-rotation-failures")
    assert queue.parent == named(stack, "key-rotation-function").urn
    assert queue.inputs["kmsMasterKeyId"] == LOGS_KEY and "fifoQueue" not in queue.inputs
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    asynchronous = named(stack, "key-rotation-async")
    assert asynchronous.inputs["destinationConfig"] == {
        "onFailure": {"destination": queue.outputs["arn"]}}
    # Lambda checks the role's permission when the destination is written: the policy goes first.
    send = named(stack, "key-rotation-role-failures")
    assert send.urn in asynchronous.dependencies
    assert send.inputs["role"] == named(stack, "key-rotation-role").id
    sends, data_keys = document(send)["Statement"]
    assert (sends["Effect"], sends["Action"], sends["Resource"]) == (
        "Allow", "sqs:SendMessage", queue.outputs["arn"])
    assert data_keys["Effect"] == "Deny" and data_keys["Condition"] == {
        "StringNotEquals": {"kms:EncryptionContext:aws:sqs:arn": queue.outputs["arn"]}}
    [tls] = document(named(stack, "key-rotation-failures-policy"))["Statement"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    alarm = named(stack, "key-rotation-failures-alarm").inputs
    assert (alarm["namespace"], alarm["dimensions"]) == ("AWS/SQS", {"QueueName": queue.outputs["name"]})


def test_concurrency_is_left_unreserved_only_when_asked() -> None:
    # Accounts with a low Lambda concurrency quota (new accounts: 10) refuse any reservation.
    inputs = named(build(replace(ARGS, reserve_concurrency=False)), "key-rotation-function").inputs
    assert "reservedConcurrentExecutions" not in inputs  # Lambda's default: unreserved


def test_its_log_group_exists_first_encrypted_and_kept(stack: RecordedStack) -> None:
    function, logs = named(stack, "key-rotation-function"), named(stack, "key-rotation-logs")
    name = f"/aws/lambda/{function.inputs['name']}"
    assert logs.inputs["name"] == name == function.inputs["loggingConfig"]["logGroup"]
    assert (logs.inputs["kmsKeyId"], logs.inputs["retentionInDays"]) == (LOGS_KEY, 365)
    assert logs.urn in function.dependencies
    assert named(stack, "key-rotation-role-policy").urn in function.dependencies


def test_the_execution_role_is_lambdas_only_and_holds_nothing_on_kms_by_default(
        stack: RecordedStack) -> None:
    trust = document(named(stack, "key-rotation-role"), "assumeRolePolicy")["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                      "Action": "sts:AssumeRole",
                      "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]
    policy = statements(named(stack, "key-rotation-role-policy"))
    allowed = [a for s in policy.values() if s["Effect"] == "Allow" for a in as_list(s["Action"])]
    # Rotating needs nothing from IAM (the key policies grant it): no CreateKey, ListKeys,
    # TagResource or UpdateAlias without create_successors.
    assert allowed == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert set(policy) == {"WriteOwnLogGroup", "NeverBypassTheLockoutCheck"}
    deny = policy["NeverBypassTheLockoutCheck"]
    assert (deny["Effect"], deny["Action"], deny["Condition"]) == (
        "Deny", ["kms:CreateKey", "kms:PutKeyPolicy"],
        {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}})
    logs_arn = named(stack, "key-rotation-logs").outputs["arn"]
    assert policy["WriteOwnLogGroup"]["Resource"] == [logs_arn, f"{logs_arn}:log-stream:*"]


def test_creating_successors_adds_only_what_iam_authorises_for_them(
        creating_stack: RecordedStack) -> None:
    policy = statements(named(creating_stack, "key-rotation-role-policy"))
    allowed = [a for s in policy.values() if s["Effect"] == "Allow" for a in as_list(s["Action"])]
    assert not [a for a in allowed if a.startswith(USE) or a.endswith("*") or a == "kms:PutKeyPolicy"]
    predecessors = {"aws:RequestTag/zero-trust-ai:predecessor-key-id": sorted(KEY_IDS)}
    assert policy["CreateSuccessorKeysOnly"]["Condition"] == {
        "StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT", "kms:KeyUsage": "ENCRYPT_DECRYPT",
                         "kms:KeyOrigin": "AWS_KMS", **predecessors},
        "Bool": {"kms:MultiRegion": "false"}}
    tagging = policy["TagSuccessorKeysAtCreation"]
    assert (tagging["Action"], tagging["Condition"]) == ("kms:TagResource",
                                                         {"StringEquals": predecessors})
    assert policy["MoveOnlyTheseAliases"]["Resource"] == [
        f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias}" for alias in ALIASES]
    assert policy["ListKeysToFindSuccessors"]["Action"] == "kms:ListKeys"
    assert policy["NeverBypassTheLockoutCheck"]["Effect"] == "Deny"
    assert json.loads(named(creating_stack, "key-rotation-schedule").inputs["target"]["input"])[
        "createSuccessors"] is True


def test_the_schedule_runs_daily_and_names_each_alias_with_its_key(stack: RecordedStack) -> None:
    schedule = named(stack, "key-rotation-schedule").inputs
    assert (schedule["scheduleExpression"], schedule["scheduleExpressionTimezone"]) == (
        "cron(0 3 * * ? *)", "UTC")
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"} and schedule["state"] == "ENABLED"
    assert "startDate" not in schedule and "endDate" not in schedule
    target = schedule["target"]
    assert target["arn"] == named(stack, "key-rotation-function").outputs["arn"]
    assert target["roleArn"] == named(stack, "key-rotation-scheduler-role").outputs["arn"]
    assert json.loads(target["input"]) == {"aliases": list(ALIASES),
                                           "expectedKeyArns": dict(zip(ALIASES, KEY_ARNS, strict=True)),
                                           "createSuccessors": False}
    assert target["retryPolicy"]["maximumRetryAttempts"] > 0
    assert target["deadLetterConfig"]["arn"] == named(stack, "key-rotation-dlq").outputs["arn"]


def test_a_successor_falling_due_raises_an_alarm(stack: RecordedStack) -> None:
    metric = named(stack, "key-rotation-successor-due-soon").inputs
    assert metric["logGroupName"] == named(stack, "key-rotation-logs").outputs["name"]
    assert metric["pattern"] == '{ $.event = "key-rotation" && $.action = "successor-due-soon" }'
    transformation = metric["metricTransformation"]
    alarm = named(stack, "key-rotation-successor-due-soon-alarm").inputs
    assert (alarm["namespace"], alarm["metricName"]) == (transformation["namespace"],
                                                         transformation["name"])
    assert (alarm["threshold"], alarm["comparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


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
    ({"key_aliases": ("alias/a", "alias/a"), "key_arns": KEY_ARNS[:2]}, "must be distinct"),
    ({"key_aliases": ("key/1234",), "key_arns": KEY_ARNS[:1]}, "alias names"),
    ({"key_arns": KEY_ARNS[:2]}, "key_arns must give the ARN of the key of each alias"),
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
Hierarchy = tuple[RecordedStack, dict[str, list[str]]]


def record_hierarchy(create_successors: bool) -> Hierarchy:
    ignored: dict[str, list[str]] = {}
    register: Callable[..., Any] = recorder.RecordingMonitor.RegisterResource

    def remember_ignore_changes(self: recorder.RecordingMonitor, request: Any) -> Any:
        ignored[request.name] = list(request.ignoreChanges)
        return register(self, request)

    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region=REGION,
                                                      two_person_purposes=()))
        role = aws.iam.Role("key-rotation-role", assume_role_policy="{}")
        if create_successors:
            keys.grant_key_rotation(role, create_successors=True)
        else:
            keys.grant_key_rotation(role)  # the default
        keys.seal()
        pulumi.export("role", role.arn)

    recorder.RecordingMonitor.RegisterResource = remember_ignore_changes  # type: ignore[method-assign]
    try:
        return record(program, project="zero-trust-ai", stack="test", config={}, region=REGION), ignored
    finally:
        recorder.RecordingMonitor.RegisterResource = register  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def hierarchy() -> Hierarchy:
    return record_hierarchy(create_successors=False)


@pytest.fixture(scope="module")
def creating_hierarchy() -> Hierarchy:
    return record_hierarchy(create_successors=True)


def rotation_grants(stack: RecordedStack) -> dict[str, dict[str, Any]]:
    """The rotation role's statement in each symmetric key's policy; none in the HMAC key's."""
    role_arn = named(stack, "key-rotation-role").outputs["arn"]
    grants = {}
    for purpose in SYMMETRIC_PURPOSES:
        [grant] = [s for s in statements(named(stack, f"keys-{purpose}-policy")).values()
                   if s["Principal"] == {"AWS": role_arn}]
        assert grant["Sid"].startswith("KeyRotationWithoutUse") and "Condition" not in grant
        grants[purpose] = grant
    hmac_policy = statements(named(stack, f"keys-{HMAC_PURPOSE}-policy"))
    assert not [s for s in hmac_policy.values() if s["Principal"] == {"AWS": role_arn}]
    return grants


def test_by_default_the_rotation_grant_rotates_and_reads_but_administers_nothing(
        hierarchy: Hierarchy) -> None:
    stack, _ = hierarchy
    for grant in rotation_grants(stack).values():
        assert grant["Action"] == list(KEY_ROTATION_ACTIONS) == [
            "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
            "kms:ListKeyRotations", "kms:ListResourceTags", "kms:RotateKeyOnDemand"]


def test_creating_successors_makes_the_role_administer_every_symmetric_key_policy(
        creating_hierarchy: Hierarchy) -> None:
    stack, _ = creating_hierarchy
    grants = rotation_grants(stack)
    assert set(grants) >= {"model-weights"}  # the price named in MonthlyKeyRotationArgs
    for grant in grants.values():
        assert grant["Action"] == [*KEY_ROTATION_ACTIONS, *KEY_SUCCESSOR_ACTIONS]
        assert "kms:PutKeyPolicy" in grant["Action"]
        assert not any(a.startswith(USE) or "*" in a for a in grant["Action"])


def test_moved_aliases_are_not_moved_back(hierarchy: Hierarchy) -> None:
    _, ignored = hierarchy
    for purpose in SYMMETRIC_PURPOSES:
        pinned = purpose == "model-weights"  # adopted in code (pack rule model-key-alias-pinned)
        assert ignored[f"keys-{purpose}-alias"] == ([] if pinned else ["targetKeyId"])
    assert ignored[f"keys-{HMAC_PURPOSE}-alias"] == []  # never replaced: drift is corrected


# -- the stack ------------------------------------------------------------------------------
def test_the_stack_rotates_the_symmetric_keys_from_the_management_segment() -> None:
    run = subprocess.run([sys.executable, "-m", "ztai", "preview", "--stack", "dev", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    by_name = {r["name"]: r for r in report["resources"]}
    aliases, key_arns = report["outputs"]["keyAliases"], report["outputs"]["keyArns"]
    schedule_input = json.loads(by_name["key-rotation-schedule"]["inputs"]["target"]["input"])
    assert schedule_input == {
        "aliases": [aliases[p] for p in SYMMETRIC_PURPOSES],
        "expectedKeyArns": {aliases[p]: key_arns[p] for p in SYMMETRIC_PURPOSES},
        "createSuccessors": False}  # the stack keeps the default
    assert aliases[HMAC_PURPOSE] not in schedule_input["aliases"]
    subnets = report["outputs"]["privateSubnetIds"]["management"]
    assert by_name["key-rotation-function"]["inputs"]["vpcConfig"]["subnetIds"] == subnets
    # The logs key admits CloudWatch Logs for the function's log group from the key's creation.
    log_group = by_name["key-rotation-logs"]["inputs"]["name"]
    assert log_group == "/aws/lambda/zero-trust-ai-dev-key-rotation"
    log_group_arn = f"arn:aws:logs:{REGION}:111122223333:log-group:{log_group}"
    for policy_of in ("keys-logs", "keys-logs-policy"):
        assert cloudwatch_logs_may_encrypt(by_name[policy_of]["inputs"]["policy"], log_group_arn)
    logs_policy = json.loads(by_name["keys-logs-policy"]["inputs"]["policy"])["Statement"]

    def granted_to(role: str, policy: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [s for s in policy if f":role/{role}-" in str(s["Principal"].get("AWS"))]

    def through_sqs(statement: dict[str, Any]) -> bool:
        condition = statement.get("Condition", {}).get("StringEquals", {})
        return bool(condition.get("kms:ViaService") == f"sqs.{REGION}.amazonaws.com")

    # The rotation role: no kms:PutKeyPolicy anywhere; on the logs key, besides, the use of its
    # failure queue's key through SQS only.
    for purpose in SYMMETRIC_PURPOSES:
        policy = json.loads(by_name[f"keys-{purpose}-policy"]["inputs"]["policy"])["Statement"]
        [grant] = [s for s in granted_to("key-rotation-role", policy) if not through_sqs(s)]
        assert grant["Action"] == list(KEY_ROTATION_ACTIONS)
    # The scheduler role reads the schedule's payload (logs key): Decrypt, only under this
    # schedule's ARN as encryption context.
    schedule_arn = (f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/"
                    f"{by_name['key-rotation-schedule']['inputs']['name']}")
    payload = [s for s in granted_to("key-rotation-scheduler-role", logs_policy)
               if s["Sid"].startswith("DecryptSchedulePayload")]
    assert [(s["Action"], s["Condition"]) for s in payload] == [(["kms:Decrypt"], {"StringEquals": {
        "kms:EncryptionContext:aws:scheduler:schedule-arn": schedule_arn}})]
    assert (by_name["key-rotation-schedule"]["inputs"]["kmsKeyArn"]
            == by_name["key-rotation-logs"]["inputs"]["kmsKeyId"])  # the logs key
    # Besides, the scheduler role (dead-letter queue) and the function role (failure queue) use the
    # queues' key through SQS only (what SQS needs from a producer: GenerateDataKey and Decrypt),
    # never directly.
    for role in ("key-rotation-scheduler-role", "key-rotation-role"):
        grants = [s for s in granted_to(role, logs_policy) if "kms:RotateKeyOnDemand" not in s["Action"]
                  and s not in payload]
        assert grants and all(s["Condition"]["StringEquals"] == {
            "kms:ViaService": f"sqs.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT}
            for s in grants)
        actions = {a for s in grants for a in s["Action"]}
        assert {"kms:GenerateDataKey", "kms:Decrypt"} <= actions


def test_the_schedule_is_encrypted_with_the_given_key_only_when_one_is_given(stack: RecordedStack) -> None:
    assert "kmsKeyArn" not in named(stack, "key-rotation-schedule").inputs
    encrypted = build(replace(ARGS, schedule_key_arn=LOGS_KEY))
    assert named(encrypted, "key-rotation-schedule").inputs["kmsKeyArn"] == LOGS_KEY
