"""Instances, launch templates and Elastic IPs never put a workload on a public address (control:
network segmentation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import as_list
from ztpolicy.rule import Resource, Rule

INSTANCE = "aws:ec2/instance:Instance"
SPOT_REQUEST = "aws:ec2/spotInstanceRequest:SpotInstanceRequest"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LAUNCH_CONFIGURATION = "aws:ec2/launchConfiguration:LaunchConfiguration"
EIP = "aws:ec2/eip:Eip"
EIP_ASSOCIATION = "aws:ec2/eipAssociation:EipAssociation"


def _true(value: Any) -> bool:
    # Launch templates carry this flag as the string "true" (the EC2 API's tri-state).
    return value is True or (isinstance(value, str) and value.lower() == "true")


def instance_no_public_ip(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if resource.type in (INSTANCE, SPOT_REQUEST, LAUNCH_CONFIGURATION):
        if _true(resource.get("associatePublicIpAddress")):
            return [f"{resource.name} sets associatePublicIpAddress"]
        if resource.type != LAUNCH_CONFIGURATION and not resource.get("subnetId") \
                and not resource.get("networkInterfaces"):
            # EC2 then launches into the default VPC's default subnet: public IP, internet route.
            return [f"{resource.name} names no subnet, so it lands in the default VPC with a "
                    "public address"]
        return []
    if resource.type == LAUNCH_TEMPLATE:
        return [f"launch template {resource.name} network interface {index} sets "
                "associatePublicIpAddress"
                for index, interface in enumerate(as_list(resource.get("networkInterfaces")))
                if isinstance(interface, Mapping) and _true(interface.get("associatePublicIpAddress"))]
    if resource.type == EIP:
        # `networkInterface` is checked by the stack rule eip-only-on-nat-gateways, which can
        # tell a NAT gateway's address (refreshed, it shows the gateway's interface) from a
        # workload's. EipAssociation (below) covers attaching one afterwards.
        if resource.get("instance"):
            return [f"Elastic IP {resource.name} is attached to instance {resource.get('instance')}"]
        return []
    if resource.type == EIP_ASSOCIATION:
        return [f"{resource.name} associates an Elastic IP with an instance or network interface"]
    return []


RULE = Rule(
    name="instance-no-public-ip",
    description="Instances, launch templates and Elastic IPs must not give a workload a public address.",
    control="segmented network",
    severity=Severity.HIGH,
    remediation="Remove associate_public_ip_address and Elastic IP attachments; operators connect "
                "through SSM Session Manager and services are published through the API gateway.",
    resource_check=instance_no_public_ip,
    resource_types=frozenset({INSTANCE, SPOT_REQUEST, LAUNCH_TEMPLATE, LAUNCH_CONFIGURATION, EIP,
                              EIP_ASSOCIATION}),
)
