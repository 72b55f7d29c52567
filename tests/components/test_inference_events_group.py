"""The inference events' log group under Pulumi's mocks: the fleet declares it (logs key,
retention, deletion protection in prod), the instance role may write that group's streams and
nothing else of CloudWatch Logs, the agent is told where to send, the logs key admits CloudWatch
Logs for it, and the segment's logs endpoint admits it once named."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pulumi_aws as aws
import pytest

from components.enclave_fleet import (
    INFERENCE_EVENTS_LOG_GROUP,
    EnclaveInferenceFleet,
    EnclaveInferenceFleetArgs,
    inference_log_group_name,
    instance_policy,
)
from components.enclave_fleet.args import validate_fleet_args
from components.keys import KeyHierarchy, KeyHierarchyArgs, log_group_prefixes_for
from components.network import SegmentedNetwork
from tests.components.test_enclave_fleet import ARGS, named, of_type
from tests.components.test_network import ARGS as NETWORK_ARGS
from tests.support.key_policy import Request, cloudwatch_logs_may_encrypt, evaluate
from ztai.preview.recorder import RecordedStack, record
from ztpolicy.rule import Resource
from ztpolicy.rules.logs.log_group_encrypted import log_group_encrypted

# pulumi-aws warns about its own deprecated types when lambda_ and s3 are first loaded.
pytestmark = [
    pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage.MicrovmsImage:DeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore:(s3\.BucketV2|aws\.s3/\w+v2\.\w+V2) has been deprecated:"
                               "DeprecationWarning"),
]

LOGS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/logs"
GROUP = "/zero-trust-ai/dev/inference-events"
GROUP_ARN = f"arn:aws:logs:eu-west-1:111122223333:log-group:{GROUP}"
ROLE = "arn:aws:iam::111122223333:role/fleet-instance-role"


def build(args: EnclaveInferenceFleetArgs) -> RecordedStack:
    def program() -> None:
        EnclaveInferenceFleet("fleet", args)

    return record(program, project="zero-trust-ai", stack="test", config={}, region=args.region)


@pytest.fixture(scope="module")
def fleet() -> RecordedStack:
    return build(replace(ARGS, logs_key_arn=LOGS_KEY))


def policy_of(stack: RecordedStack) -> str:
    text: str = named(stack, "fleet-instance-policy").inputs["policy"]
    return text


def agent_args(stack: RecordedStack) -> str:
    script = base64.b64decode(named(stack, "fleet-launch-template").inputs["userData"]).decode()
    [line] = [line for line in script.splitlines() if line.startswith("ZTAI_AGENT_ARGS=")]
    return line


def test_the_group_is_the_environments_encrypted_and_kept(fleet: RecordedStack) -> None:
    [group] = of_type(fleet, "aws:cloudwatch/logGroup:LogGroup")
    assert group.name == "fleet-inference-events"
    assert (group.inputs["name"], group.inputs["kmsKeyId"], group.inputs["retentionInDays"]) == (
        GROUP, LOGS_KEY, 365)
    assert group.inputs.get("deletionProtectionEnabled") is False and not group.protect
    resource = Resource(type=group.type, name=group.name, urn=group.urn, props=group.inputs)
    assert log_group_encrypted(resource, {}) == []
    assert inference_log_group_name(ARGS) == INFERENCE_EVENTS_LOG_GROUP.format(environment="dev") == GROUP


def test_in_prod_the_group_cannot_be_deleted() -> None:
    stack = build(replace(ARGS, logs_key_arn=LOGS_KEY, protect=True, log_retention_days=3653))
    [group] = of_type(stack, "aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["deletionProtectionEnabled"] is True and group.protect
    assert group.inputs["retentionInDays"] == 3653


def test_the_instance_role_writes_that_groups_streams_only(fleet: RecordedStack) -> None:
    policy = policy_of(fleet)
    [statement] = [s for s in json.loads(policy)["Statement"] if s["Sid"] == "WriteInferenceEvents"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == [GROUP_ARN, f"{GROUP_ARN}:log-stream:*"]

    def decision(action: str, resource: str) -> str:
        return evaluate(policy, Request(ROLE, action, resource, {}), identity=True).effect

    assert decision("logs:PutLogEvents", f"{GROUP_ARN}:log-stream:parent/ip-10-12-1-7/x") == "allow"
    assert decision("logs:CreateLogStream", GROUP_ARN) == "allow"
    other = "arn:aws:logs:eu-west-1:111122223333:log-group:/zero-trust-ai/dev/cloudtrail"
    for action, resource in (("logs:PutLogEvents", f"{other}:log-stream:x"),
                             ("logs:CreateLogStream", other),
                             ("logs:GetLogEvents", f"{GROUP_ARN}:log-stream:x"),
                             ("logs:DeleteLogGroup", GROUP_ARN), ("logs:DeleteLogStream", GROUP_ARN),
                             ("logs:PutRetentionPolicy", GROUP_ARN),
                             ("logs:DeleteSubscriptionFilter", GROUP_ARN),
                             ("logs:CreateLogGroup", GROUP_ARN)):
        assert decision(action, resource) == "implicit-deny", (action, resource)


def test_the_agent_is_told_where_to_send(fleet: RecordedStack) -> None:
    assert f"--events-log-group {GROUP}" in agent_args(fleet)


def test_without_the_logs_key_there_is_no_group_and_the_journal_only() -> None:
    stack = build(ARGS)
    assert of_type(stack, "aws:cloudwatch/logGroup:LogGroup") == []
    assert "WriteInferenceEvents" not in policy_of(stack)
    assert "--events-log-group" not in agent_args(stack)
    assert instance_policy("aws", "eu-west-1", "1", "b", "models/") == instance_policy(
        "aws", "eu-west-1", "1", "b", "models/", events_log_group=None)


@pytest.mark.parametrize(("change", "complaint"), [
    ({"log_retention_days": 366}, "log_retention_days 366: a CloudWatch Logs retention (1, 3, 5"),
    ({"environment": "dev env"}, "environment 'dev env': the inference events' log group "
                                 "'/zero-trust-ai/dev env/inference-events' must be 1-512 letters"),
])
def test_bad_arguments_are_refused_naming_them(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match="EnclaveInferenceFleet: ") as error:
        validate_fleet_args(replace(ARGS, logs_key_arn=LOGS_KEY, **change))
    assert complaint in str(error.value)


def test_wired_as_main_the_key_and_the_endpoint_admit_the_group() -> None:
    """The grants __main__ makes: the logs key admits CloudWatch Logs for the group's name, and
    the inference segment's logs endpoint admits our principals on it (and on no other group)."""
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(
            environment="dev", owner="ml-platform", region="eu-west-1",
            administrator_role_arns=("arn:aws:iam::111122223333:role/kms-admin",),
            log_group_prefixes=log_group_prefixes_for("dev")))
        network = SegmentedNetwork("network", replace(NETWORK_ARGS, segments=NETWORK_ARGS.segments[2:3]))
        fleet = EnclaveInferenceFleet("fleet", replace(ARGS, logs_key_arn=keys.key_arn("logs")))
        keys.grant_cloudwatch_logs(fleet.inference_log_group_name)
        network.restrict_endpoints(log_group_names=[fleet.inference_log_group_name])
        keys.grant_key_administration("model-weights", aws.iam.Role(
            "key-admin-elevation", assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": []})),
            policy_writer="arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-api-role")
        keys.seal()

    stack = record(program, project="zero-trust-ai", stack="test",
                   config={"aws:region": "eu-west-1"}, region="eu-west-1")
    group = named(stack, "fleet-inference-events")
    assert group.inputs["kmsKeyId"] == named(stack, "keys-logs").outputs["arn"]
    for policy in ("keys-logs", "keys-logs-policy"):
        assert cloudwatch_logs_may_encrypt(named(stack, policy).inputs["policy"], GROUP_ARN)
    [endpoint_policy] = [p for p in of_type(stack, "aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy")
                         if p.name.endswith("-logs-policy")]
    document = endpoint_policy.inputs["policy"]
    [statement] = json.loads(document)["Statement"]
    assert statement["Resource"] == [GROUP_ARN, f"{GROUP_ARN}:*"]

    def through_endpoint(resource: str) -> str:
        return evaluate(document, Request(ROLE, "logs:PutLogEvents", resource, {
            "aws:PrincipalAccount": "111122223333", "aws:ResourceAccount": "111122223333"})).effect

    assert through_endpoint(f"{GROUP_ARN}:log-stream:parent/x") == "allow"
    other = "arn:aws:logs:eu-west-1:111122223333:log-group:/zero-trust-ai/staging/inference-events"
    assert through_endpoint(f"{other}:log-stream:parent/x") == "implicit-deny"
