"""What is deployed for one environment of the stack, read through the AWS APIs (read-only calls).

`ztai verify` compares this with the policy pack and with the stack's state: an insider who edits a
key policy in the console and puts it back later leaves no trace in Pulumi's state, only in what
AWS holds now. Every reader takes its boto3 client as an argument and makes only Describe, Get and
List calls (the IAM permissions are listed in docs/drift.md).

What belongs to the environment is found by the names and tags the components give it:

- keys: every alias `alias/zero-trust-ai/<environment>/...` (components/keys.py, and the flow-log
  key of components/network.py), each with the key it names;
- VPCs: tags `project=zero-trust-ai` and `environment=<environment>` (components/tags.py), with
  their VPC endpoints and flow logs, whoever created those (a flow log an insider deleted is
  missed; one they added is seen);
- trails: every trail CloudTrail reports in the Region, shadow trails of multi-Region and
  organisation trails included; the stack deploys none of its own yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

PROJECT = "zero-trust-ai"
ALIAS_PREFIX = f"alias/{PROJECT}/"
# KMS's one key policy name (AWS KMS API Reference, GetKeyPolicy: "The only valid name is default").
KEY_POLICY_NAME = "default"


def alias_prefix(environment: str) -> str:
    """The alias names of an environment's keys start with this (components/keys.py)."""
    return f"{ALIAS_PREFIX}{environment}/"


def audit_trail_name(environment: str) -> str:
    """The audit trail the key layer deploys (components/audit.py trail_name; a test keeps the
    two equal)."""
    return f"zero-trust-ai-{environment}"


@dataclass(frozen=True)
class DeployedKey:
    """A key an alias of the environment names."""

    alias: str
    key_id: str
    arn: str
    state: str  # Enabled, Disabled, PendingDeletion, PendingImport, ...
    key_spec: str
    key_usage: str
    multi_region: bool
    policy: str | None  # the key policy as KMS returns it (JSON text)
    rotation_enabled: bool | None  # None: KMS does not rotate this kind of key (HMAC, asymmetric)
    rotation_period_days: int | None
    tags: dict[str, str]
    pending_deletion_days: int | None = None
    # (grant id, grantee principal, operations) of every grant on the key: the key policy is not
    # the only way in, and a grant made outside Pulumi is in no state (ListGrants).
    grants: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @property
    def purpose(self) -> str:
        return self.alias.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DeployedVpc:
    vpc_id: str
    cidr: str
    tags: dict[str, str]


@dataclass(frozen=True)
class DeployedEndpoint:
    endpoint_id: str
    vpc_id: str
    service_name: str
    endpoint_type: str
    state: str
    policy: str | None
    tags: dict[str, str]


@dataclass(frozen=True)
class DeployedFlowLog:
    flow_log_id: str
    resource_id: str
    status: str  # FlowLogStatus: ACTIVE is the only value EC2 documents
    delivery_status: str  # DeliverLogsStatus: SUCCESS or FAILED
    traffic_type: str
    destination_type: str
    destination: str
    max_aggregation_interval: int | None
    tags: dict[str, str]


@dataclass(frozen=True)
class DeployedTrail:
    name: str
    arn: str
    home_region: str
    multi_region: bool
    organization_trail: bool
    log_file_validation: bool
    is_logging: bool | None  # None: GetTrailStatus refused (e.g. an organisation trail of another account)
    kms_key_id: str | None
    # GetTrailStatus's latest delivery errors, by what failed (log files to S3, digests, the
    # CloudWatch Logs copy): "a disabled key stops delivery", and so does a wrong policy.
    delivery_errors: tuple[tuple[str, str], ...] = ()


# What each GetTrailStatus error field says failed (CloudTrail API Reference, GetTrailStatus).
DELIVERY_ERROR_FIELDS = (("LatestDeliveryError", "log files to S3"),
                         ("LatestDigestDeliveryError", "digest files to S3"),
                         ("LatestCloudWatchLogsDeliveryError", "the CloudWatch Logs copy"))


@dataclass
class Deployment:
    """Everything `read_deployment` found, and what it could not read (with the reason)."""

    environment: str
    region: str
    keys: list[DeployedKey] = field(default_factory=list)
    vpcs: list[DeployedVpc] = field(default_factory=list)
    endpoints: list[DeployedEndpoint] = field(default_factory=list)
    flow_logs: list[DeployedFlowLog] = field(default_factory=list)
    trails: list[DeployedTrail] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _tags(items: Any, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {str(item[key]): str(item[value]) for item in items or [] if key in item}


def _pages(client: Any, operation: str, result: str, **params: Any) -> Iterator[Any]:
    for page in client.get_paginator(operation).paginate(**params):
        yield from page.get(result, [])


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, Mapping) else ""


def read_keys(kms: Any, environment: str, unreadable: list[str]) -> list[DeployedKey]:
    """Every key an alias of the environment names: state, policy, rotation, tags."""
    from botocore.exceptions import ClientError

    prefix = alias_prefix(environment)
    keys = []
    aliases = sorted((alias for alias in _pages(kms, "list_aliases", "Aliases")
                      if str(alias.get("AliasName", "")).startswith(prefix)),
                     key=lambda alias: str(alias["AliasName"]))
    for alias in aliases:
        name = str(alias["AliasName"])
        key_id = alias.get("TargetKeyId")
        if not key_id:
            unreadable.append(f"alias {name} names no key")
            continue
        try:
            metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            policy = kms.get_key_policy(KeyId=key_id, PolicyName=KEY_POLICY_NAME).get("Policy")
            tags = _tags(kms.list_resource_tags(KeyId=key_id).get("Tags"), "TagKey", "TagValue")
            grants = tuple((str(grant.get("GrantId", "")), str(grant.get("GranteePrincipal", "")),
                            tuple(str(operation) for operation in grant.get("Operations", [])))
                           for grant in _pages(kms, "list_grants", "Grants", KeyId=key_id))
        except ClientError as error:
            unreadable.append(f"key {key_id} of {name}: {_error_code(error) or error}")
            continue
        symmetric = (metadata.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
                     and metadata.get("KeyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT")
        rotation_enabled: bool | None = None
        period: int | None = None
        if symmetric:
            try:
                rotation = kms.get_key_rotation_status(KeyId=key_id)
            except ClientError as error:
                unreadable.append(f"rotation of key {key_id} ({name}): {_error_code(error) or error}")
            else:
                rotation_enabled = bool(rotation.get("KeyRotationEnabled"))
                raw_period = rotation.get("RotationPeriodInDays")
                period = int(raw_period) if raw_period is not None else None
        keys.append(DeployedKey(
            alias=name, key_id=str(metadata["KeyId"]), arn=str(metadata["Arn"]),
            state=str(metadata.get("KeyState", "")), key_spec=str(metadata.get("KeySpec", "")),
            key_usage=str(metadata.get("KeyUsage", "")),
            multi_region=bool(metadata.get("MultiRegion", False)), policy=policy,
            rotation_enabled=rotation_enabled, rotation_period_days=period, tags=tags,
            pending_deletion_days=metadata.get("PendingDeletionWindowInDays"), grants=grants))
    return keys


def read_network(ec2: Any, environment: str) -> tuple[list[DeployedVpc], list[DeployedEndpoint],
                                                      list[DeployedFlowLog]]:
    """The environment's VPCs (by their standard tags), their endpoints and their flow logs."""
    filters = [{"Name": "tag:project", "Values": [PROJECT]},
               {"Name": "tag:environment", "Values": [environment]}]
    vpcs = [DeployedVpc(vpc_id=str(vpc["VpcId"]), cidr=str(vpc.get("CidrBlock", "")),
                        tags=_tags(vpc.get("Tags")))
            for vpc in _pages(ec2, "describe_vpcs", "Vpcs", Filters=filters)]
    vpcs.sort(key=lambda vpc: vpc.vpc_id)
    ids = [vpc.vpc_id for vpc in vpcs]
    if not ids:
        return [], [], []
    endpoints = [DeployedEndpoint(
        endpoint_id=str(endpoint["VpcEndpointId"]), vpc_id=str(endpoint.get("VpcId", "")),
        service_name=str(endpoint.get("ServiceName", "")),
        endpoint_type=str(endpoint.get("VpcEndpointType", "")),
        state=str(endpoint.get("State", "")), policy=endpoint.get("PolicyDocument"),
        tags=_tags(endpoint.get("Tags")))
        for endpoint in _pages(ec2, "describe_vpc_endpoints", "VpcEndpoints",
                               Filters=[{"Name": "vpc-id", "Values": ids}])]
    endpoints.sort(key=lambda endpoint: endpoint.endpoint_id)
    flow_logs = [DeployedFlowLog(
        flow_log_id=str(log["FlowLogId"]), resource_id=str(log.get("ResourceId", "")),
        status=str(log.get("FlowLogStatus", "")), delivery_status=str(log.get("DeliverLogsStatus", "")),
        traffic_type=str(log.get("TrafficType", "")),
        destination_type=str(log.get("LogDestinationType", "")),
        destination=str(log.get("LogDestination") or log.get("LogGroupName") or ""),
        max_aggregation_interval=log.get("MaxAggregationInterval"), tags=_tags(log.get("Tags")))
        for log in _pages(ec2, "describe_flow_logs", "FlowLogs",
                          Filters=[{"Name": "resource-id", "Values": ids}])]
    flow_logs.sort(key=lambda log: log.flow_log_id)
    return vpcs, endpoints, flow_logs


def read_trails(cloudtrail: Any, unreadable: list[str]) -> list[DeployedTrail]:
    """Every trail the Region sees, with whether it is logging now."""
    from botocore.exceptions import ClientError

    trails = []
    for trail in cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", []):
        arn = str(trail.get("TrailARN", ""))
        try:
            # A shadow trail's status is asked for by its ARN (CloudTrail API Reference,
            # GetTrailStatus: "To get the status of a shadow trail ... you must specify its ARN").
            status: dict[str, Any] | None = cloudtrail.get_trail_status(Name=arn or trail["Name"])
        except ClientError as error:
            unreadable.append(f"status of trail {arn or trail.get('Name')}: {_error_code(error) or error}")
            status = None
        trails.append(DeployedTrail(
            name=str(trail.get("Name", "")), arn=arn, home_region=str(trail.get("HomeRegion", "")),
            multi_region=bool(trail.get("IsMultiRegionTrail", False)),
            organization_trail=bool(trail.get("IsOrganizationTrail", False)),
            log_file_validation=bool(trail.get("LogFileValidationEnabled", False)),
            is_logging=bool(status.get("IsLogging")) if status is not None else None,
            kms_key_id=trail.get("KmsKeyId"),
            delivery_errors=tuple((what, str(status[field])) for field, what in DELIVERY_ERROR_FIELDS
                                  if status is not None and status.get(field))))
    trails.sort(key=lambda trail: trail.arn)
    return trails


def read_deployment(environment: str, region: str, *, kms: Any, ec2: Any,
                    cloudtrail: Any) -> Deployment:
    """Everything above for one environment in one Region. botocore's NoCredentialsError and a
    ClientError on a listing call (AccessDenied) are left to the caller to word."""
    deployment = Deployment(environment=environment, region=region)
    deployment.keys = read_keys(kms, environment, deployment.unreadable)
    deployment.vpcs, deployment.endpoints, deployment.flow_logs = read_network(ec2, environment)
    deployment.trails = read_trails(cloudtrail, deployment.unreadable)
    return deployment


def parsed_policy(text: str | None) -> Any:
    """A policy document as data, or the text itself when it is not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
