"""Subnets never hand out public addresses (control: network segmentation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.rule import Resource, Rule

SUBNET = "aws:ec2/subnet:Subnet"
DEFAULT_SUBNET = "aws:ec2/defaultSubnet:DefaultSubnet"


def subnet_no_public_ip(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    messages = []
    # Default subnets map public IPs unless told otherwise; ordinary subnets do not.
    public_default = resource.type == DEFAULT_SUBNET
    if resource.get("mapPublicIpOnLaunch", public_default) is True:
        messages.append(f"subnet {resource.name} sets mapPublicIpOnLaunch: every instance "
                        "launched in it gets a public IPv4 address")
    if resource.get("mapCustomerOwnedIpOnLaunch") is True:
        messages.append(f"subnet {resource.name} sets mapCustomerOwnedIpOnLaunch: instances get "
                        "an address routable from the customer-owned (Outposts) network")
    if resource.get("assignIpv6AddressOnCreation") is True:
        messages.append(f"subnet {resource.name} sets assignIpv6AddressOnCreation: IPv6 "
                        "addresses are globally routable")
    return messages


RULE = Rule(
    name="subnet-no-public-ip",
    description="Subnets must not assign public (or globally routable) addresses on launch.",
    control="segmented network",
    severity=Severity.HIGH,
    remediation="Set map_public_ip_on_launch=False (and leave assign_ipv6_address_on_creation and "
                "map_customer_owned_ip_on_launch unset); reach AWS through VPC endpoints and the "
                "internet, where a segment must, through NAT.",
    resource_check=subnet_no_public_ip,
    resource_types=frozenset({SUBNET, DEFAULT_SUBNET}),
)
