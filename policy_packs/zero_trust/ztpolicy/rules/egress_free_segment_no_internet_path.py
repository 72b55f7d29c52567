"""Segments declared egress-free have no path to the internet (§2.1).

A VPC is egress-free when its `ztai:egress` tag is "none" or its `ztai:segment` tag is one of the
rule's `egressFreeSegments` (default data, training, inference). The second test keeps the rule
meaningful when someone flips the tag: giving one of those segments egress takes an explicit
change of this rule's configuration or an exclusion with a reason, both visible in the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import ROUTE_TABLE, SUBNET, VPC, as_list, is_open_cidr, of_type, referenced
from ztpolicy.rule import Finding, Resource, Rule

EGRESS_TAG = "ztai:egress"
SEGMENT_TAG = "ztai:segment"
DEFAULT_EGRESS_FREE = ["data", "training", "inference"]

# Resources that give a VPC a way out, keyed by type, with the property naming the VPC.
_GATEWAYS = {
    "aws:ec2/internetGateway:InternetGateway": "internet gateway",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment": "internet gateway attachment",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway": "egress-only internet gateway",
    "aws:ec2/vpnGateway:VpnGateway": "VPN gateway",
    "aws:ec2/vpnGatewayAttachment:VpnGatewayAttachment": "VPN gateway attachment",
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": "transit gateway attachment",
}
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"


def egress_free_vpcs(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Resource]:
    segments = set(as_list(config.get("egressFreeSegments", DEFAULT_EGRESS_FREE)))
    return [vpc for vpc in of_type(resources, VPC)
            if vpc.tags().get(EGRESS_TAG) == "none" or vpc.tags().get(SEGMENT_TAG) in segments]


def _default_route(route: Mapping[str, Any], cidr_key: str, ipv6_key: str) -> bool:
    return is_open_cidr(route.get(cidr_key)) or is_open_cidr(route.get(ipv6_key))


def egress_free_segment_no_internet_path(resources: Sequence[Resource],
                                         config: Mapping[str, Any]) -> list[Finding]:
    closed = egress_free_vpcs(resources, config)
    if not closed:
        return []
    findings = []

    def in_closed(resource: Resource, prop: str = "vpcId") -> Resource | None:
        return referenced(resource, prop, closed)

    for resource in resources:
        if resource.type in _GATEWAYS and (vpc := in_closed(resource)) is not None:
            findings.append(Finding(resource.urn, f"{_GATEWAYS[resource.type]} {resource.name} is "
                                    f"attached to egress-free VPC {vpc.name}"))

    closed_subnets = {s.urn: vpc for s in of_type(resources, SUBNET) if (vpc := in_closed(s))}
    subnets = [s for s in of_type(resources, SUBNET) if s.urn in closed_subnets]
    for nat in of_type(resources, NAT_GATEWAY):
        subnet = referenced(nat, "subnetId", subnets)
        if subnet is not None and nat.get("connectivityType", "public") != "private":
            findings.append(Finding(nat.urn, f"NAT gateway {nat.name} gives egress-free VPC "
                                    f"{closed_subnets[subnet.urn].name} a way to the internet"))

    tables = {t.urn: vpc for t in of_type(resources, ROUTE_TABLE) if (vpc := in_closed(t))}
    for table in of_type(resources, ROUTE_TABLE):
        if table.urn in tables and any(
                isinstance(route, Mapping) and _default_route(route, "cidrBlock", "ipv6CidrBlock")
                for route in as_list(table.get("routes"))):
            findings.append(Finding(table.urn, f"route table {table.name} of egress-free VPC "
                                    f"{tables[table.urn].name} has a default route"))
    closed_tables = [t for t in of_type(resources, ROUTE_TABLE) if t.urn in tables]
    for route in of_type(resources, ROUTE):
        owner = referenced(route, "routeTableId", closed_tables)
        if owner is not None and _default_route(route.props, "destinationCidrBlock",
                                                "destinationIpv6CidrBlock"):
            findings.append(Finding(route.urn, f"route {route.name} adds a default route to "
                                    f"egress-free VPC {tables[owner.urn].name}"))
    return findings


RULE = Rule(
    name="egress-free-segment-no-internet-path",
    description="VPCs of egress-free segments must have no internet, NAT, VPN or transit gateway "
                "and no default route.",
    section="2.1",
    severity=Severity.CRITICAL,
    remediation="Reach AWS services through VPC endpoints. If a segment really needs egress, add "
                "it to egressSegments in the stack config AND remove it from this rule's "
                "egressFreeSegments (or add an exclusion with a reason).",
    stack_check=egress_free_segment_no_internet_path,
    config={"egressFreeSegments": {
        "type": "array", "items": {"type": "string"}, "default": DEFAULT_EGRESS_FREE,
        "description": "Segments (ztai:segment tag) that must never have internet egress.",
    }},
)
