"""An AWS account (moto) holding what a stack export says is deployed, for `ztai verify` tests.

`deploy(export, region)` creates, through boto3 under an active `moto.mock_aws()`, each key of the
export's Region with its effective policy (its `aws:kms/keyPolicy:KeyPolicy`'s, else its own),
rotation and tags, its aliases, every VPC with its tags, every VPC endpoint with its effective
policy, and every flow log; it returns the export with the ids AWS gave them in place of the
mocks' ids: the `pulumi stack export` of that deployment, as a `pulumi refresh` would leave it.

The account id is the export's (MOTO_ACCOUNT_ID), so ARNs in policies stay valid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3

# The resource types verify maps what it reads to (ztai/drift.py), one spelling for both.
from ztai.drift import ALIAS, ENDPOINT, ENDPOINT_POLICY, FLOW_LOG, KEY, KEY_POLICY, VPC

# Until the real policies are put: KMS needs one to create a key.
_PLACEHOLDER = json.dumps({"Version": "2012-10-17", "Statement": []})


def _of(resources: list[dict[str, Any]], kind: str, region: str) -> list[dict[str, Any]]:
    return [r for r in resources if r.get("type") == kind and not r.get("delete")
            and (r.get("outputs") or {}).get("region", region) == region]


def _tags(tags: Mapping[str, str] | None, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in (tags or {}).items()]


def _effective(resource: dict[str, Any], attached: list[dict[str, Any]], link: str) -> Any:
    own_id = resource["outputs"]["id"]
    linked = [p for p in attached if p["outputs"].get(link) == own_id]
    return (linked[-1] if linked else resource)["outputs"].get("policy")


def deploy(export: dict[str, Any], region: str) -> dict[str, Any]:
    """Create the export's keys, aliases, VPCs, endpoints and flow logs; the export re-keyed to
    the new ids."""
    kms = boto3.client("kms", region_name=region)
    ec2 = boto3.client("ec2", region_name=region)
    logs = boto3.client("logs", region_name=region)
    resources = export["deployment"]["resources"]
    ids: dict[str, str] = {}
    for key in _of(resources, KEY, region):
        outputs = key["outputs"]
        created = kms.create_key(
            Policy=_PLACEHOLDER, KeySpec=outputs.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT"),
            KeyUsage=outputs.get("keyUsage", "ENCRYPT_DECRYPT"),
            Tags=_tags(outputs.get("tags"), "TagKey", "TagValue"))["KeyMetadata"]
        ids[outputs["id"]] = created["KeyId"]
        if outputs.get("enableKeyRotation"):
            kms.enable_key_rotation(KeyId=created["KeyId"],
                                    RotationPeriodInDays=outputs.get("rotationPeriodInDays", 365))
    for alias in _of(resources, ALIAS, region):
        kms.create_alias(AliasName=alias["outputs"]["name"],
                         TargetKeyId=ids[alias["outputs"]["targetKeyId"]])
    for vpc in _of(resources, VPC, region):
        outputs = vpc["outputs"]
        ids[outputs["id"]] = ec2.create_vpc(CidrBlock=outputs["cidrBlock"], TagSpecifications=[
            {"ResourceType": "vpc", "Tags": _tags(outputs.get("tags"))}])["Vpc"]["VpcId"]
    for endpoint in _of(resources, ENDPOINT, region):
        outputs = endpoint["outputs"]
        ids[outputs["id"]] = ec2.create_vpc_endpoint(
            VpcId=ids[outputs["vpcId"]], ServiceName=outputs["serviceName"],
            VpcEndpointType=outputs.get("vpcEndpointType", "Gateway"), TagSpecifications=[
                {"ResourceType": "vpc-endpoint", "Tags": _tags(outputs.get("tags"))}],
        )["VpcEndpoint"]["VpcEndpointId"]
    for flow_log in _of(resources, FLOW_LOG, region):
        outputs = flow_log["outputs"]
        group = outputs["logDestination"].split(":log-group:", 1)[1].removesuffix(":*")
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            logs.create_log_group(logGroupName=group)
        created_logs = ec2.create_flow_logs(
            ResourceIds=[ids[outputs["vpcId"]]], ResourceType="VPC",
            TrafficType=outputs.get("trafficType", "ALL"), LogDestinationType="cloud-watch-logs",
            LogGroupName=group, DeliverLogsPermissionArn=outputs.get("iamRoleArn", ""),
            MaxAggregationInterval=outputs.get("maxAggregationInterval", 600),
            TagSpecifications=[{"ResourceType": "vpc-flow-log", "Tags": _tags(outputs.get("tags"))}])
        ids[outputs["id"]] = created_logs["FlowLogIds"][0]

    text = json.dumps(export)
    for old, new in ids.items():
        text = text.replace(old, new)
    state: dict[str, Any] = json.loads(text)
    resources = state["deployment"]["resources"]
    # The real policies, with the new ids in them (a policy may name a key or an endpoint).
    key_policies = _of(resources, KEY_POLICY, region)
    for key in _of(resources, KEY, region):
        kms.put_key_policy(KeyId=key["outputs"]["id"], PolicyName="default",
                           Policy=_effective(key, key_policies, "keyId"))
    endpoint_policies = _of(resources, ENDPOINT_POLICY, region)
    for endpoint in _of(resources, ENDPOINT, region):
        policy = _effective(endpoint, endpoint_policies, "vpcEndpointId")
        if policy:
            ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["outputs"]["id"], PolicyDocument=policy)
    return state


def trail(region: str, *, multi_region: bool = True, validation: bool = True,
          logging: bool = True, name: str = "organization-trail") -> str:
    """A trail into a new bucket, as an organisation's audit account would have one."""
    s3 = boto3.client("s3", region_name=region)
    bucket = f"{name}-logs"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    cloudtrail = boto3.client("cloudtrail", region_name=region)
    arn: str = cloudtrail.create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=multi_region,
                                       EnableLogFileValidation=validation)["TrailARN"]
    if logging:
        cloudtrail.start_logging(Name=name)
    return arn


def model_rotation_periods(monkeypatch: Any) -> None:
    """Make moto keep a key's rotation period as KMS does. moto (5.2) ignores EnableKeyRotation's
    RotationPeriodInDays and leaves it out of GetKeyRotationStatus, which KMS answers with it
    (AWS KMS API Reference, GetKeyRotationStatus: RotationPeriodInDays, "The default value is 365
    days"): without this every deployed key would read as rotating yearly."""
    from moto.kms.responses import KmsResponse

    periods: dict[str, int] = {}
    enable, status = KmsResponse.enable_key_rotation, KmsResponse.get_key_rotation_status

    def enable_key_rotation(self: Any) -> str:
        answer: str = enable(self)
        key_id = self.kms_backend.describe_key(self._get_param("KeyId")).id
        periods[key_id] = int(self._get_param("RotationPeriodInDays") or 365)
        return answer

    def get_key_rotation_status(self: Any) -> str:
        answer = json.loads(status(self))
        key_id = self.kms_backend.describe_key(self._get_param("KeyId")).id
        if answer.get("KeyRotationEnabled"):
            answer["RotationPeriodInDays"] = periods.get(key_id, 365)
        return json.dumps(answer)

    monkeypatch.setattr(KmsResponse, "enable_key_rotation", enable_key_rotation)
    monkeypatch.setattr(KmsResponse, "get_key_rotation_status", get_key_rotation_status)
