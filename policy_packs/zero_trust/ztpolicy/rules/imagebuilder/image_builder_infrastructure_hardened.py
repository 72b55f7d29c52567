"""Image Builder build and test instances are short-lived, private and reachable through SSM only
(control: immutable infrastructure).

For each `InfrastructureConfiguration`:

- IMDSv2 required (`instanceMetadataOptions.httpTokens = required`) with a hop limit of 1, so a
  container or proxy on the build instance cannot read its role's credentials. Absent means the
  AMI's defaults: Amazon Linux 2023 sets hop limit 2, so both must be explicit;
- `terminateInstanceOnFailure` true: a failed build must not leave an instance running with its
  role (Image Builder's default keeps it for debugging);
- no `keyPair`: nobody logs in over SSH; operators use SSM;
- a `subnetId` with `securityGroupIds`: without them Image Builder launches into the default VPC,
  whose subnets give public addresses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field
from ztpolicy.rule import Resource, Rule

INFRASTRUCTURE = "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration"




def _empty(value: Any) -> bool:
    # len() of the analyzer's list proxy reads no element, so unknown ids inside do not raise.
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return len(value) == 0
    return not value


def image_builder_infrastructure_hardened(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    name = f"infrastructure configuration {resource.name}"
    messages = []
    metadata = known(resource, "instanceMetadataOptions")
    if metadata is not UNKNOWN:
        tokens = known_field(metadata, "httpTokens")
        if tokens is not UNKNOWN and tokens != "required":
            messages.append(f"{name} does not require IMDSv2: set instance_metadata_options."
                            "http_tokens='required'")
        hops = known_field(metadata, "httpPutResponseHopLimit")
        if hops is not UNKNOWN and hops != 1:
            shown = hops if hops is not None else "unset (AMI default)"
            messages.append(f"{name} has IMDS hop limit {shown}; set http_put_response_hop_limit=1")
    terminate = known(resource, "terminateInstanceOnFailure")
    if terminate is not UNKNOWN and terminate is not True:
        messages.append(f"{name} keeps failed build instances running: set "
                        "terminate_instance_on_failure=True")
    key_pair = known(resource, "keyPair")
    if key_pair is not UNKNOWN and key_pair:
        messages.append(f"{name} gives build instances the key pair {key_pair!r}: remove it, use SSM")
    subnet = known(resource, "subnetId")
    groups = known(resource, "securityGroupIds")
    if subnet is not UNKNOWN and not subnet:
        messages.append(f"{name} names no subnet, so build instances land in the default VPC with a "
                        "public address")
    elif groups is not UNKNOWN and _empty(groups):
        messages.append(f"{name} names no security group for its subnet")
    return messages


RULE = Rule(
    name="image-builder-infrastructure-hardened",
    description="Image Builder infrastructure configurations must require IMDSv2 with hop limit 1, "
                "terminate failed instances, use no key pair and run in a named private subnet.",
    control="immutable images",
    severity=Severity.HIGH,
    remediation="Set instance_metadata_options(http_tokens='required', http_put_response_hop_limit=1), "
                "terminate_instance_on_failure=True, subnet_id and security_group_ids, and no "
                "key_pair (ImmutableAmiPipeline does).",
    resource_check=image_builder_infrastructure_hardened,
    resource_types=frozenset({INFRASTRUCTURE}),
)
