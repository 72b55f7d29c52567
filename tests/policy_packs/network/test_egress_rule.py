"""egress-free-segment-no-internet-path: fail closed, every way out of an egress-free VPC caught."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.policy_packs.test_rules import res, urns, vpc
from ztpolicy.rule import Resource
from ztpolicy.rules.network.egress_free_segment_no_internet_path import (
    DEFAULT_EGRESS_ALLOWED,
    DEFAULT_ENDPOINT_SERVICES,
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
        # AWS services through endpoints: S3 and DynamoDB gateway endpoints (their routes come
        # from the route table association), interface endpoints of AWS services.
        res("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", deps={"vpcId": [data.urn]},
            vpcEndpointType="Gateway", serviceName="com.amazonaws.eu-west-1.s3"),
        res("aws:ec2/vpcEndpoint:VpcEndpoint", "dynamodb", deps={"vpcId": [data.urn]},
            vpcEndpointType="Gateway", serviceName="com.amazonaws.eu-west-1.dynamodb"),
        res("aws:ec2/vpcEndpoint:VpcEndpoint", "kms", deps={"vpcId": [data.urn]},
            vpcEndpointType="Interface", serviceName="com.amazonaws.eu-west-1.kms"),
        res("aws:ec2/vpcEndpoint:VpcEndpoint", "ecr", deps={"vpcId": [data.urn]},
            vpcEndpointType="Interface", serviceName="com.amazonaws.us-gov-west-1.ecr.dkr"),
        # The local route narrowed to a subnet, and the S3 route as a refresh shows it.
        res("aws:ec2/route:Route", "local", deps={"routeTableId": [table.urn]},
            destinationCidrBlock="10.10.0.0/16", gatewayId="local"),
        res("aws:ec2/routeTable:RouteTable", "refreshed-rt", deps={"vpcId": [data.urn]},
            routes=[{"destinationPrefixListId": "pl-6da54004", "gatewayId": "vpce-0s3"}]),
        # A private NAT gateway without a route to it leads nowhere.
        res("aws:ec2/natGateway:NatGateway", "private-nat", deps={"subnetId": [subnet.urn]},
            connectivityType="private"),
        # One instance with two interfaces, both in the data VPC.
        res("aws:ec2/networkInterface:NetworkInterface", "second-eni", id="eni-2",
            deps={"subnetId": [subnet.urn]}),
        res("aws:ec2/instance:Instance", "worker", id="i-1", deps={"subnetId": [subnet.urn]},
            networkInterfaces=[{"networkInterfaceId": "eni-2", "deviceIndex": 1}]),
    ]
    assert egress_free_segment_no_internet_path(resources, DEFAULTS) == []


def test_any_non_local_route_target_is_a_way_out_whatever_the_destination() -> None:
    data, subnet, table = closed_segment()
    private = "10.200.0.0/16"
    resources = [
        data, subnet, table,
        res("aws:ec2/route:Route", "to-shared", deps={"routeTableId": [table.urn]},
            destinationCidrBlock=private, transitGatewayId="tgw-0shared"),
        res("aws:ec2/route:Route", "to-peer", deps={"routeTableId": [table.urn]},
            destinationCidrBlock=private, vpcPeeringConnectionId="pcx-0abc"),
        res("aws:ec2/route:Route", "to-appliance", deps={"routeTableId": [table.urn]},
            destinationCidrBlock=private, networkInterfaceId="eni-0abc"),
        res("aws:ec2/route:Route", "to-gwlb", deps={"routeTableId": [table.urn]},
            destinationCidrBlock="0.0.0.0/0", vpcEndpointId="vpce-0gwlb"),
        res("aws:ec2/route:Route", "to-vgw", deps={"routeTableId": [table.urn]},
            destinationCidrBlock="192.168.0.0/16", gatewayId="vgw-0abc"),
        res("aws:ec2/route:Route", "to-outpost", deps={"routeTableId": [table.urn]},
            destinationCidrBlock=private, localGatewayId="lgw-0abc"),
        res("aws:ec2/route:Route", "to-private-nat", deps={"routeTableId": [table.urn]},
            destinationCidrBlock=private, natGatewayId="nat-0private"),
        res("aws:ec2/routeTable:RouteTable", "inline-peer", deps={"vpcId": [data.urn]},
            routes=[{"cidrBlock": private, "vpcPeeringConnectionId": "pcx-0abc"}]),
        res("aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation", "propagate",
            deps={"routeTableId": [table.urn]}, vpnGatewayId="vgw-0abc"),
    ]
    assert urns(egress_free_segment_no_internet_path(resources, DEFAULTS)) == {
        "to-shared", "to-peer", "to-appliance", "to-gwlb", "to-vgw", "to-outpost",
        "to-private-nat", "inline-peer", "propagate"}


def test_endpoints_that_are_not_aws_services_are_ways_out() -> None:
    data, subnet, table = closed_segment()
    management = vpc("mgmt-vpc", "management", egress="nat")

    def endpoint(name: str, kind: str, service: str, owner: Resource = data) -> Resource:
        return res("aws:ec2/vpcEndpoint:VpcEndpoint", name, deps={"vpcId": [owner.urn]},
                   vpcEndpointType=kind, serviceName=service)

    resources = [
        data, subnet, table, management,
        # Anyone's endpoint service (AWS ignores endpoint policies there).
        endpoint("partner", "Interface", "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0"),
        endpoint("marketplace", "Interface", "aws.marketplace.eu-west-1.vpce-svc-0abc"),
        endpoint("gwlb", "GatewayLoadBalancer", "com.amazonaws.vpce.eu-west-1.vpce-svc-0gwlb"),
        endpoint("lattice-resource", "Resource", ""),
        endpoint("lattice-network", "ServiceNetwork", ""),
        endpoint("odd-gateway", "Gateway", "com.amazonaws.eu-west-1.kms"),
        # The egress segment may have them.
        endpoint("mgmt-partner", "Interface", "com.amazonaws.vpce.eu-west-1.vpce-svc-0abc", management),
    ]
    assert urns(egress_free_segment_no_internet_path(resources, DEFAULTS)) == {
        "partner", "marketplace", "gwlb", "lattice-resource", "lattice-network", "odd-gateway"}


def test_peering_accepters_attachments_and_lattice_are_ways_out() -> None:
    data, subnet, table = closed_segment()
    resources = [
        data, subnet, table,
        # An accepter names only the connection; its outputs (an export) name the VPCs.
        res("aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter", "accepter",
            vpcPeeringConnectionId="pcx-0abc", vpcId="vpc-data-vpc", peerVpcId="vpc-0foreign"),
        res("aws:ec2transitgateway/vpcAttachmentAccepter:VpcAttachmentAccepter", "tgw-accepter",
            transitGatewayAttachmentId="tgw-attach-0abc", vpcId="vpc-data-vpc"),
        res("aws:networkmanager/vpcAttachment:VpcAttachment", "cloud-wan",
            deps={"vpcArn": [data.urn]}, coreNetworkId="core-network-0abc"),
        res("aws:vpclattice/serviceNetworkVpcAssociation:ServiceNetworkVpcAssociation", "lattice",
            deps={"vpcIdentifier": [data.urn]}, serviceNetworkIdentifier="sn-0abc"),
        res("aws:vpclattice/resourceGateway:ResourceGateway", "resource-gateway",
            deps={"vpcId": [data.urn]}),
    ]
    assert urns(egress_free_segment_no_internet_path(resources, DEFAULTS)) == {
        "accepter", "tgw-accepter", "cloud-wan", "lattice", "resource-gateway"}


def test_interfaces_joining_an_egress_free_vpc_to_another_are_ways_out() -> None:
    data, subnet, table = closed_segment()
    management = vpc("mgmt-vpc", "management", egress="nat")
    mgmt_subnet = res("aws:ec2/subnet:Subnet", "mgmt-subnet", deps={"vpcId": [management.urn]})
    data_eni = res("aws:ec2/networkInterface:NetworkInterface", "data-eni", id="eni-data",
                   deps={"subnetId": [subnet.urn]})
    # Linked through property dependencies, as in a preview.
    bridge = res("aws:ec2/instance:Instance", "bridge", id="i-bridge",
                 deps={"subnetId": [mgmt_subnet.urn]})
    attachment = res("aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment", "attach",
                     deps={"instanceId": [bridge.urn], "networkInterfaceId": [data_eni.urn]},
                     deviceIndex=1)
    # Literal ids, as in an export: an instance listing a data-VPC interface.
    router = res("aws:ec2/instance:Instance", "router", id="i-router", subnetId="subnet-mgmt",
                 networkInterfaces=[{"networkInterfaceId": "eni-data2", "deviceIndex": 1}])
    mgmt_subnet_literal = res("aws:ec2/subnet:Subnet", "mgmt-subnet-2", id="subnet-mgmt",
                              vpcId="vpc-mgmt-vpc")
    data_eni2 = res("aws:ec2/networkInterface:NetworkInterface", "data-eni2", id="eni-data2",
                    deps={"subnetId": [subnet.urn]})
    # An interface created with its attachment to a management instance.
    host = res("aws:ec2/instance:Instance", "host", id="i-host", deps={"subnetId": [mgmt_subnet.urn]})
    data_eni3 = res("aws:ec2/networkInterface:NetworkInterface", "data-eni3", id="eni-data3",
                    deps={"subnetId": [subnet.urn]}, attachments=[{"instance": "i-host", "deviceIndex": 1}])
    # A preview: the listed interface's id is unknown, its link is a property dependency.
    gateway_box = res("aws:ec2/instance:Instance", "gateway-box",
                      deps={"subnetId": [mgmt_subnet.urn], "networkInterfaces": [data_eni.urn]},
                      networkInterfaces=[{"deviceIndex": 1}])
    resources = [data, subnet, table, management, mgmt_subnet, data_eni, bridge, attachment,
                 router, mgmt_subnet_literal, data_eni2, host, data_eni3, gateway_box]
    findings = egress_free_segment_no_internet_path(resources, DEFAULTS)
    assert urns(findings) == {"bridge", "router", "host", "gateway-box"}
    assert "joins egress-free VPC data-vpc to another VPC" in findings[0].message


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


# -- AWS services that reach other accounts' resources, and DNS forwarding ----------------------
def _service_endpoint(name: str, service: str, owner: Resource, *, literal: bool = False,
                      kind: str = "Interface") -> Resource:
    link = {"vpcId": []} if literal else {"vpcId": [owner.urn]}
    return res("aws:ec2/vpcEndpoint:VpcEndpoint", name, deps=link, vpcEndpointType=kind,
               serviceName=f"com.amazonaws.eu-west-1.{service}",
               **({"vpcId": owner.get("id")} if literal else {}))


@pytest.mark.parametrize("literal", [False, True], ids=["preview", "export"])
def test_interface_endpoints_only_for_the_configured_services(literal: bool) -> None:
    data, subnet, table = closed_segment()
    management = vpc("mgmt-vpc", "management", egress="nat")
    allowed = [_service_endpoint(s, s, data, literal=literal) for s in DEFAULT_ENDPOINT_SERVICES]
    gateways = [_service_endpoint(f"{s}-gw", s, data, literal=literal, kind="Gateway")
                for s in ("s3", "dynamodb")]
    # Each of these lets a principal of ours send data to another account's queue, topic,
    # stream, API, secret or function, whatever the endpoint policy's principal condition.
    ways_out = [_service_endpoint(s, s, data, literal=literal) for s in (
        "sqs", "sns", "kinesis-streams", "execute-api", "secretsmanager", "lambda", "s3")]
    resources = [data, subnet, table, management, *allowed, *gateways, *ways_out,
                 _service_endpoint("mgmt-sqs", "sqs", management, literal=literal)]
    findings = egress_free_segment_no_internet_path(resources, DEFAULTS)
    assert urns(findings) == {e.name for e in ways_out}
    [sqs] = [f for f in findings if f.urn.endswith("::sqs")]
    assert "reaches sqs, which is not in egressFreeEndpointServices" in sqs.message
    # Adding a service is a reviewed change of the rule's configuration.
    configured = {**DEFAULTS, "egressFreeEndpointServices": [*DEFAULT_ENDPOINT_SERVICES, "sqs"]}
    assert "sqs" not in urns(egress_free_segment_no_internet_path(resources, configured))


def _forwarding(rule_type: str | None, *, literal: bool = False) -> list[Resource]:
    data = vpc("data-vpc", "data")
    management = vpc("mgmt-vpc", "management", egress="nat")
    outbound = res("aws:route53/resolverEndpoint:ResolverEndpoint", "outbound", id="rslvr-out-1",
                   deps={"securityGroupIds": []}, direction="OUTBOUND")
    resources = [data, management, outbound]
    if rule_type is not None:
        resources.append(res("aws:route53/resolverRule:ResolverRule", "forward", id="rslvr-rr-1",
                             deps={"resolverEndpointId": [outbound.urn]}, ruleType=rule_type,
                             domainName="x.eu-west-1.amazonaws.com",
                             targetIps=[{"ip": "203.0.113.53", "port": 53}]))
    link = ({"vpcId": [], "resolverRuleId": []} if literal else
            {"vpcId": [data.urn], "resolverRuleId": [r.urn for r in resources[3:]]})
    resources.append(res("aws:route53/resolverRuleAssociation:ResolverRuleAssociation", "forward-data",
                         deps=link, vpcId="vpc-data-vpc" if literal else None,
                         resolverRuleId="rslvr-rr-1" if literal else None))
    return resources


@pytest.mark.parametrize("literal", [False, True], ids=["preview", "export"])
@pytest.mark.parametrize("rule_type", ["FORWARD", "RECURSIVE", "DELEGATE", None])
def test_resolver_rules_forwarding_an_egress_free_vpcs_queries_are_ways_out(
        rule_type: str | None, literal: bool) -> None:
    [finding] = egress_free_segment_no_internet_path(_forwarding(rule_type, literal=literal), DEFAULTS)
    assert finding.urn.endswith("::forward-data")
    assert "egress-free VPC data-vpc" in finding.message
    assert ("does not declare" in finding.message) == (rule_type is None)


def test_a_system_rule_and_the_egress_segment_may_have_resolver_rules() -> None:
    assert egress_free_segment_no_internet_path(_forwarding("SYSTEM"), DEFAULTS) == []
    resources = _forwarding("FORWARD")
    management = next(r for r in resources if r.name == "mgmt-vpc")
    resources[-1] = replace(resources[-1], property_dependencies={
        "vpcId": (management.urn,), "resolverRuleId": (resources[3].urn,)})
    assert egress_free_segment_no_internet_path(resources, DEFAULTS) == []


def test_a_route53_profile_on_an_egress_free_vpc_is_a_way_out() -> None:
    data = vpc("data-vpc", "data")
    profile = res("aws:route53/profilesAssociation:ProfilesAssociation", "profile-data",
                  deps={"resourceId": []}, resourceId="vpc-data-vpc", profileId="rp-0abc")
    assert urns(egress_free_segment_no_internet_path([data, profile], DEFAULTS)) == {"profile-data"}
