"""Only segments allowed egress have a path out of their VPC (§2.1).

Fail closed: every VPC is egress-free unless it is tagged `ztai:egress=nat` AND its `ztai:segment`
tag is one of the rule's `egressAllowedSegments` (default: management). Flipping a tag,
renaming a segment or adding an untagged VPC therefore never opens a way out; giving a segment
egress takes an explicit change of this rule's configuration (or an exclusion with a reason), both
visible in the policy report.

A way out is: an internet, egress-only, VPN or transit gateway, a peering connection, a public
NAT gateway, or a route (inline, in the main route table, or separate) towards a non-private
destination or a prefix list through anything but a VPC endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import ROUTE_TABLE, SUBNET, VPC, as_list, is_private_cidr, known, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

EGRESS_TAG = "ztai:egress"
SEGMENT_TAG = "ztai:segment"
DEFAULT_EGRESS_ALLOWED = ["management"]

# Resources that attach a way out to a VPC, with the properties that name the VPC.
_GATEWAYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "aws:ec2/internetGateway:InternetGateway": ("internet gateway", ("vpcId",)),
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment":
        ("internet gateway attachment", ("vpcId",)),
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway":
        ("egress-only internet gateway", ("vpcId",)),
    "aws:ec2/vpnGateway:VpnGateway": ("VPN gateway", ("vpcId",)),
    "aws:ec2/vpnGatewayAttachment:VpnGatewayAttachment": ("VPN gateway attachment", ("vpcId",)),
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": ("transit gateway attachment", ("vpcId",)),
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": ("peering connection", ("vpcId", "peerVpcId")),
}
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
DEFAULT_ROUTE_TABLE = "aws:ec2/defaultRouteTable:DefaultRouteTable"
# Route targets that lead out of the VPC (a `gatewayId` of vpce-... is a gateway endpoint).
_EXIT_TARGETS = ("natGatewayId", "egressOnlyGatewayId", "transitGatewayId", "vpcPeeringConnectionId",
                 "networkInterfaceId", "carrierGatewayId", "localGatewayId", "coreNetworkArn")


def egress_free_vpcs(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Resource]:
    allowed = set(as_list(config.get("egressAllowedSegments", DEFAULT_EGRESS_ALLOWED)))
    return [vpc for vpc in of_type(resources, VPC)
            if not (vpc.tags().get(EGRESS_TAG) == "nat" and vpc.tags().get(SEGMENT_TAG) in allowed)]


def _leaves_vpc(route: Mapping[str, Any], destination_keys: tuple[str, str, str]) -> bool:
    """Does this route send some non-private destination anywhere but a gateway endpoint?"""
    cidr, ipv6, prefix_list = (route.get(key) for key in destination_keys)
    outward = bool(prefix_list) or any(
        value and not is_private_cidr(value) for value in (cidr, ipv6))
    if not outward:
        return False
    gateway = route.get("gatewayId")
    via_gateway = isinstance(gateway, str) and bool(gateway) and not gateway.startswith("vpce-")
    return via_gateway or any(route.get(target) for target in _EXIT_TARGETS)


def _owner(resource: Resource, prop: str, closed: Sequence[Resource]) -> Resource | None:
    return next((vpc for vpc in closed if refers_to(resource, prop, vpc)), None)


def egress_free_segment_no_internet_path(resources: Sequence[Resource],
                                         config: Mapping[str, Any]) -> list[Finding]:
    closed = egress_free_vpcs(resources, config)
    if not closed:
        return []
    findings = []
    for resource in resources:
        if resource.type not in _GATEWAYS:
            continue
        label, props = _GATEWAYS[resource.type]
        for prop in props:
            if (vpc := _owner(resource, prop, closed)) is not None:
                findings.append(Finding(resource.urn, f"{label} {resource.name} connects "
                                        f"egress-free VPC {vpc.name} to the outside"))
                break

    subnet_vpc = {s.urn: vpc for s in of_type(resources, SUBNET) if (vpc := _owner(s, "vpcId", closed))}
    subnets = [s for s in of_type(resources, SUBNET) if s.urn in subnet_vpc]
    for nat in of_type(resources, NAT_GATEWAY):
        if known(nat, "connectivityType", "public") == "private":
            continue
        subnet = next((s for s in subnets if refers_to(nat, "subnetId", s)), None)
        vpc = subnet_vpc[subnet.urn] if subnet else _owner(nat, "vpcId", closed)  # regional NAT
        if vpc is not None:
            findings.append(Finding(nat.urn, f"NAT gateway {nat.name} gives egress-free VPC "
                                    f"{vpc.name} a way to the internet"))

    table_vpc: dict[str, Resource] = {}
    for table in of_type(resources, ROUTE_TABLE):
        if (vpc := _owner(table, "vpcId", closed)) is not None:
            table_vpc[table.urn] = vpc
    for table in of_type(resources, DEFAULT_ROUTE_TABLE):
        # The main route table: linked through the VPC output it was given.
        for vpc in closed:
            deps = table.property_dependencies.get("defaultRouteTableId", ())
            value = known(table, "defaultRouteTableId")
            if vpc.urn in deps or (value and value == known(vpc, "defaultRouteTableId")):
                table_vpc[table.urn] = vpc
    for table in [*of_type(resources, ROUTE_TABLE), *of_type(resources, DEFAULT_ROUTE_TABLE)]:
        if table.urn in table_vpc and any(
                isinstance(route, Mapping)
                and _leaves_vpc(route, ("cidrBlock", "ipv6CidrBlock", "destinationPrefixListId"))
                for route in as_list(known(table, "routes"))):
            findings.append(Finding(table.urn, f"route table {table.name} of egress-free VPC "
                                    f"{table_vpc[table.urn].name} routes outside the VPC"))
    tables = [t for t in resources if t.urn in table_vpc]
    for route in of_type(resources, ROUTE):
        owner_table = next((t for t in tables if refers_to(route, "routeTableId", t)), None)
        owner = table_vpc[owner_table.urn] if owner_table else next(  # vpc.main_route_table_id
            (v for v in closed if v.urn in route.property_dependencies.get("routeTableId", ())), None)
        if owner is not None and _leaves_vpc(route.props, ("destinationCidrBlock",
                                                           "destinationIpv6CidrBlock",
                                                           "destinationPrefixListId")):
            findings.append(Finding(route.urn, f"route {route.name} sends traffic of egress-free "
                                    f"VPC {owner.name} outside the VPC"))
    return findings


RULE = Rule(
    name="egress-free-segment-no-internet-path",
    description="Only VPCs of segments allowed egress may have gateways, peering or routes "
                "leading out of the VPC.",
    section="2.1",
    severity=Severity.CRITICAL,
    remediation="Reach AWS services through VPC endpoints. If a segment really needs egress, add "
                "it to egressSegments in the stack config AND to this rule's "
                "egressAllowedSegments (or add an exclusion with a reason).",
    stack_check=egress_free_segment_no_internet_path,
    config={"egressAllowedSegments": {
        "type": "array", "items": {"type": "string"}, "default": DEFAULT_EGRESS_ALLOWED,
        "description": "Segments (ztai:segment tag, with ztai:egress=nat) that may have internet "
                       "egress; every other VPC must have none.",
    }},
)
