"""ztai_runtime.deployed: what `ztai verify` reads, from a moto account, and only the environment's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.support.deployed_account import model_rotation_periods, trail
from ztai_runtime.deployed import (
    DeployedTrail,
    alias_prefix,
    audit_trail_name,
    parsed_policy,
    read_deployment,
    read_keys,
    read_trails,
)

REGION = "eu-west-1"
POLICY = {"Version": "2012-10-17", "Statement": [{"Sid": "Administer", "Effect": "Allow",
                                                  "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                                                  "Action": "kms:*", "Resource": "*"}]}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    model_rotation_periods(monkeypatch)
    with mock_aws():
        yield {name: boto3.client(name, region_name=REGION) for name in ("kms", "ec2", "cloudtrail")}


def _key(kms: Any, alias: str, **options: Any) -> str:
    key_id = str(kms.create_key(Policy=json.dumps(POLICY), **options)["KeyMetadata"]["KeyId"])
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def test_only_the_environments_keys_are_read_with_policy_rotation_and_tags(aws: dict[str, Any]) -> None:
    kms = aws["kms"]
    logs = _key(kms, "alias/zero-trust-ai/dev/logs",
                Tags=[{"TagKey": "ztai:key-purpose", "TagValue": "logs"}])
    kms.enable_key_rotation(KeyId=logs, RotationPeriodInDays=90)
    tokens = _key(kms, "alias/zero-trust-ai/dev/tokens", KeySpec="HMAC_256",
                  KeyUsage="GENERATE_VERIFY_MAC")
    _key(kms, "alias/zero-trust-ai/prod/logs")
    _key(kms, "alias/zero-trust-ai/development/logs")  # a prefix of no environment of ours
    unreadable: list[str] = []
    keys = read_keys(kms, "dev", unreadable)
    assert unreadable == []
    assert [(key.alias, key.key_id) for key in keys] == [
        ("alias/zero-trust-ai/dev/logs", logs), ("alias/zero-trust-ai/dev/tokens", tokens)]
    first, hmac = keys
    assert (first.purpose, first.state, first.rotation_enabled, first.rotation_period_days) == (
        "logs", "Enabled", True, 90)
    assert parsed_policy(first.policy) == POLICY
    assert first.tags == {"ztai:key-purpose": "logs"}
    # KMS rotates no HMAC key: its rotation is not asked for, not reported as off.
    assert (hmac.key_spec, hmac.rotation_enabled, hmac.rotation_period_days) == ("HMAC_256", None, None)


def test_a_key_pending_deletion_is_read_as_such(aws: dict[str, Any]) -> None:
    key_id = _key(aws["kms"], "alias/zero-trust-ai/dev/secrets")
    aws["kms"].schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    [key] = read_keys(aws["kms"], "dev", [])
    # KMS also reports PendingDeletionWindowInDays; moto (5.2) leaves it out.
    assert key.state == "PendingDeletion"


def test_a_key_whose_policy_cannot_be_read_is_named(aws: dict[str, Any]) -> None:
    kms = boto3.client("kms", region_name=REGION)
    stubber = Stubber(kms)
    alias = {"AliasName": "alias/zero-trust-ai/dev/logs", "TargetKeyId": "k-1",
             "AliasArn": "arn:aws:kms:eu-west-1:123456789012:alias/zero-trust-ai/dev/logs"}
    stubber.add_response("list_aliases", {"Aliases": [alias]})
    stubber.add_client_error("describe_key", "AccessDeniedException")
    with stubber:
        unreadable: list[str] = []
        assert read_keys(kms, "dev", unreadable) == []
    assert unreadable == ["key k-1 of alias/zero-trust-ai/dev/logs: AccessDeniedException"]


def test_network_is_found_by_the_standard_tags(aws: dict[str, Any]) -> None:
    ec2, logs = aws["ec2"], boto3.client("logs", region_name=REGION)

    def vpc(environment: str) -> str:
        return str(ec2.create_vpc(CidrBlock="10.10.0.0/16", TagSpecifications=[{
            "ResourceType": "vpc", "Tags": [{"Key": "project", "Value": "zero-trust-ai"},
                                            {"Key": "environment", "Value": environment}]}])["Vpc"]["VpcId"])
    ours, theirs = vpc("dev"), vpc("prod")
    policy = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                        "Resource": "arn:aws:s3:::bucket/*"}]})
    for vpc_id in (ours, theirs):
        ec2.create_vpc_endpoint(VpcId=vpc_id, ServiceName=f"com.amazonaws.{REGION}.s3",
                                VpcEndpointType="Gateway", PolicyDocument=policy)
        logs.create_log_group(logGroupName=f"/flow/{vpc_id}")
        ec2.create_flow_logs(ResourceIds=[vpc_id], ResourceType="VPC", TrafficType="ALL",
                             LogDestinationType="cloud-watch-logs", LogGroupName=f"/flow/{vpc_id}",
                             DeliverLogsPermissionArn="arn:aws:iam::123456789012:role/flow")
    deployment = read_deployment("dev", REGION, **aws)
    assert [vpc.vpc_id for vpc in deployment.vpcs] == [ours]
    [endpoint] = deployment.endpoints
    assert (endpoint.vpc_id, endpoint.endpoint_type, parsed_policy(endpoint.policy)) == (
        ours, "Gateway", json.loads(policy))
    [log] = deployment.flow_logs
    assert (log.resource_id, log.status, log.delivery_status, log.traffic_type) == (
        ours, "ACTIVE", "SUCCESS", "ALL")
    # moto reports a CloudWatch Logs destination by its group name only; AWS also gives the ARN.
    assert log.destination == f"/flow/{ours}"


def test_no_vpc_reads_no_endpoints(aws: dict[str, Any]) -> None:
    deployment = read_deployment("staging", REGION, **aws)
    assert (deployment.vpcs, deployment.endpoints, deployment.flow_logs) == ([], [], [])


def test_trails_are_read_with_their_status(aws: dict[str, Any]) -> None:
    assert read_trails(aws["cloudtrail"], []) == []
    arn = trail(REGION, multi_region=True, validation=False, logging=False)
    [found] = read_trails(aws["cloudtrail"], [])
    assert (found.arn, found.multi_region, found.log_file_validation, found.is_logging) == (
        arn, True, False, False)


def test_the_alias_prefix_is_the_keys_components() -> None:
    assert alias_prefix("prod") == "alias/zero-trust-ai/prod/"


def test_the_audit_trail_name_is_the_components() -> None:
    from components.audit import trail_name
    assert audit_trail_name("prod") == trail_name("prod") == "zero-trust-ai-prod"


def test_delivery_errors_are_read_from_the_trail_status() -> None:
    class CloudTrail:
        def describe_trails(self, includeShadowTrails: bool) -> dict[str, object]:  # noqa: N803
            return {"trailList": [{"Name": "zero-trust-ai-prod", "TrailARN": "arn:aws:cloudtrail:eu-west-1:"
                                   "111122223333:trail/zero-trust-ai-prod", "IsMultiRegionTrail": True,
                                   "LogFileValidationEnabled": True, "HomeRegion": "eu-west-1"}]}

        def get_trail_status(self, Name: str) -> dict[str, object]:  # noqa: N803
            return {"IsLogging": True, "LatestDigestDeliveryError": "AccessDenied",
                    "LatestCloudWatchLogsDeliveryError": "", "LatestDeliveryError": "KMS.DisabledException"}

    [trail] = read_trails(CloudTrail(), [])
    assert isinstance(trail, DeployedTrail)
    assert trail.delivery_errors == (("log files to S3", "KMS.DisabledException"),
                                     ("digest files to S3", "AccessDenied"))
