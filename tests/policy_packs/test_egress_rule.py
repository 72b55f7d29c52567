"""egress-free-segment-no-internet-path: fail closed, every way out of an egress-free VPC caught."""

from __future__ import annotations

from tests.policy_packs.test_rules import res, urns, vpc
from ztpolicy.rule import Resource
from ztpolicy.rules.egress_free_segment_no_internet_path import (
    DEFAULT_EGRESS_ALLOWED,
    egress_free_segment_no_internet_path,
)

DEFAULTS = {"egressAllowedSegments": DEFAULT_EGRESS_ALLOWED}


def closed_segment() -> list[Resource]:
    data = vpc("data-vpc", "data")
    subnet = res("aws:ec2/subnet:Subnet", "data-subnet", deps={"vpcId": [data.urn]})
    table = res("aws:ec2/routeTable:RouteTable", "data-rt", deps={"vpcId": [data.urn]}, routes=[])
    return [data, subnet, table]


def test_management_egress_and_private_routes_pass() -> None:
    management = vpc("mgmt-vpc", "management", egress="nat")
    data, subnet, table = closed_segment()
    resources = [
        data, subnet, table, management,
        res("aws:ec2/internetGateway:InternetGateway", "mgmt-igw", deps={"vpcId": [management.urn]}),
        # Private destinations through a transit gateway, S3 through its gateway endpoint.
        res("aws:ec2/route:Route", "to-shared", deps={"routeTableId": [table.urn]},
            destinationCidrBlock="10.200.0.0/16", transitGatewayId="tgw-0shared"),
        res("aws:ec2/route:Route", "s3", deps={"routeTableId": [table.urn]},
            destinationPrefixListId="pl-6da54004", vpcEndpointId="vpce-0s3"),
        res("aws:ec2/natGateway:NatGateway", "private-nat", deps={"subnetId": [subnet.urn]},
            connectivityType="private"),
    ]
    assert egress_free_segment_no_internet_path(resources, DEFAULTS) == []


def test_every_way_out_of_an_egress_free_vpc_is_caught() -> None:
    data, subnet, table = closed_segment()
    resources = [
        data, subnet, table,
        res("aws:ec2/internetGateway:InternetGateway", "igw", deps={"vpcId": [data.urn]}),
        res("aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway", "eigw",
            vpcId="vpc-data-vpc"),
        res("aws:ec2/natGateway:NatGateway", "nat", deps={"subnetId": [subnet.urn]}),
        res("aws:ec2/natGateway:NatGateway", "regional-nat", deps={"vpcId": [data.urn]},
            availabilityMode="regional"),
        res("aws:ec2/route:Route", "default", deps={"routeTableId": [table.urn]},
            destinationCidrBlock="0.0.0.0/0", gatewayId="igw-0abc"),
        res("aws:ec2/route:Route", "half", deps={"routeTableId": [table.urn]},
            destinationCidrBlock="128.0.0.0/1", natGatewayId="nat-0abc"),
        res("aws:ec2/route:Route", "main-table", deps={"routeTableId": [data.urn]},
            destinationCidrBlock="0.0.0.0/0", gatewayId="igw-0abc"),
        res("aws:ec2/routeTable:RouteTable", "inline-rt", deps={"vpcId": [data.urn]},
            routes=[{"ipv6CidrBlock": "::/0", "egressOnlyGatewayId": "eigw-1"}]),
        res("aws:ec2/defaultRouteTable:DefaultRouteTable", "main-rt",
            deps={"defaultRouteTableId": [data.urn]},
            routes=[{"cidrBlock": "0.0.0.0/0", "gatewayId": "igw-0abc"}]),
        res("aws:ec2transitgateway/vpcAttachment:VpcAttachment", "tgw", deps={"vpcId": [data.urn]}),
        res("aws:ec2/vpcPeeringConnection:VpcPeeringConnection", "peer",
            deps={"peerVpcId": [data.urn]}, vpcId="vpc-0elsewhere"),
    ]
    findings = egress_free_segment_no_internet_path(resources, DEFAULTS)
    assert urns(findings) == {"igw", "eigw", "nat", "regional-nat", "default", "half", "main-table",
                              "inline-rt", "main-rt", "tgw", "peer"}


def test_literal_vpc_ids_are_followed() -> None:
    # vpc_id pasted as a literal: the engine records an empty dependency list for it.
    data = vpc("data-vpc", "data")
    igw = res("aws:ec2/internetGateway:InternetGateway", "igw", deps={"vpcId": []},
              vpcId="vpc-data-vpc")
    assert urns(egress_free_segment_no_internet_path([data, igw], DEFAULTS)) == {"igw"}


def test_tags_cannot_open_a_segment_only_the_rule_configuration_can() -> None:
    flipped = vpc("data-vpc", "data", egress="nat")
    renamed = vpc("renamed-vpc", "data-v2", egress="nat")
    untagged = res("aws:ec2/vpc:Vpc", "untagged-vpc", id="vpc-untagged")
    gateways = [res("aws:ec2/internetGateway:InternetGateway", f"igw-{v.name}",
                    deps={"vpcId": [v.urn]}) for v in (flipped, renamed, untagged)]
    resources = [flipped, renamed, untagged, *gateways]
    assert len(egress_free_segment_no_internet_path(resources, DEFAULTS)) == 3
    opened = egress_free_segment_no_internet_path(
        resources, {"egressAllowedSegments": ["management", "data"]})
    assert urns(opened) == {"igw-renamed-vpc", "igw-untagged-vpc"}
