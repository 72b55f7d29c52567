"""Every rule called directly: the secure configuration passes, the insecure one is caught."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ztpolicy.exclusions import ExclusionConfigError, find_exclusion, parse_exclusions
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules import ALL_RULES
from ztpolicy.rules.default_security_group_closed import default_security_group_closed
from ztpolicy.rules.egress_free_segment_no_internet_path import (
    DEFAULT_EGRESS_FREE,
    egress_free_segment_no_internet_path,
)
from ztpolicy.rules.instance_no_public_ip import instance_no_public_ip
from ztpolicy.rules.log_group_encrypted import log_group_encrypted
from ztpolicy.rules.no_unrestricted_ingress import no_unrestricted_ingress
from ztpolicy.rules.subnet_no_public_ip import subnet_no_public_ip
from ztpolicy.rules.vpc_endpoint_policy_restrictive import vpc_endpoint_policy_restrictive
from ztpolicy.rules.vpc_flow_logs_enabled import vpc_flow_logs_enabled

STACK = "urn:pulumi:test::zero-trust-ai::"
NO_CONFIG: dict[str, Any] = {}


def res(token: str, name: str, deps: dict[str, list[str]] | None = None, **props: Any) -> Resource:
    return Resource(type=token, name=name, urn=f"{STACK}{token}::{name}", props=props,
                    property_dependencies={k: tuple(v) for k, v in (deps or {}).items()})


def vpc(name: str, segment: str, egress: str = "none") -> Resource:
    return res("aws:ec2/vpc:Vpc", name, id=f"vpc-{name}",
               tags={"ztai:segment": segment, "ztai:egress": egress})


def urns(findings: list[Finding]) -> set[str]:
    return {finding.urn.rsplit("::", 1)[-1] for finding in findings}


# -- rule metadata -----------------------------------------------------------------------------
def test_every_rule_has_complete_metadata() -> None:
    names = [rule.name for rule in ALL_RULES]
    assert len(names) == len(set(names))
    for rule in ALL_RULES:
        assert rule.description and rule.remediation and rule.section
        module = (rule.resource_check or rule.stack_check).__name__  # type: ignore[union-attr]
        assert module.replace("_", "-") == rule.name, "a rule's function is named after its rule"


def test_rule_needs_exactly_one_check() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Rule(name="x", description="d", section="2.1", severity=ALL_RULES[0].severity,
             remediation="r")


# -- subnet-no-public-ip -----------------------------------------------------------------------
def test_private_subnet_passes() -> None:
    assert subnet_no_public_ip(res("aws:ec2/subnet:Subnet", "s", mapPublicIpOnLaunch=False),
                               NO_CONFIG) == []


@pytest.mark.parametrize("props, fragment", [
    ({"mapPublicIpOnLaunch": True}, "mapPublicIpOnLaunch"),
    ({"assignIpv6AddressOnCreation": True}, "IPv6"),
    ({"mapCustomerOwnedIpOnLaunch": True}, "customer-owned"),
])
def test_public_subnet_is_caught(props: dict[str, Any], fragment: str) -> None:
    [message] = subnet_no_public_ip(res("aws:ec2/subnet:Subnet", "s", **props), NO_CONFIG)
    assert fragment in message


def test_default_subnet_is_public_unless_told_otherwise() -> None:
    assert subnet_no_public_ip(res("aws:ec2/defaultSubnet:DefaultSubnet", "d"), NO_CONFIG)
    assert not subnet_no_public_ip(res("aws:ec2/defaultSubnet:DefaultSubnet", "d",
                                       mapPublicIpOnLaunch=False), NO_CONFIG)


# -- instance-no-public-ip ---------------------------------------------------------------------
def test_private_instance_and_nat_address_pass() -> None:
    assert instance_no_public_ip(res("aws:ec2/instance:Instance", "i"), NO_CONFIG) == []
    assert instance_no_public_ip(res("aws:ec2/eip:Eip", "nat", domain="vpc"), NO_CONFIG) == []
    template = res("aws:ec2/launchTemplate:LaunchTemplate", "lt",
                   networkInterfaces=[{"associatePublicIpAddress": "false"}])
    assert instance_no_public_ip(template, NO_CONFIG) == []


@pytest.mark.parametrize("resource", [
    res("aws:ec2/instance:Instance", "i", associatePublicIpAddress=True),
    res("aws:ec2/launchTemplate:LaunchTemplate", "lt",
        networkInterfaces=[{"associatePublicIpAddress": "true"}]),
    res("aws:ec2/eip:Eip", "e", instance="i-0123"),
    res("aws:ec2/eipAssociation:EipAssociation", "a", instanceId="i-0123"),
])
def test_public_instance_is_caught(resource: Resource) -> None:
    assert len(instance_no_public_ip(resource, NO_CONFIG)) == 1


# -- no-unrestricted-ingress -------------------------------------------------------------------
def test_segment_only_ingress_and_acl_return_traffic_pass() -> None:
    group = res("aws:ec2/securityGroup:SecurityGroup", "sg",
                ingress=[{"protocol": "tcp", "fromPort": 443, "toPort": 443,
                          "cidrBlocks": ["10.10.0.0/16"]}])
    acl = res("aws:ec2/networkAcl:NetworkAcl", "acl", ingress=[
        {"action": "allow", "protocol": "tcp", "fromPort": 1024, "toPort": 65535,
         "cidrBlock": "0.0.0.0/0"}])
    egress_rule = res("aws:ec2/securityGroupRule:SecurityGroupRule", "out", type="egress",
                      cidrBlocks=["0.0.0.0/0"])
    for resource in (group, acl, egress_rule):
        assert no_unrestricted_ingress(resource, NO_CONFIG) == []


@pytest.mark.parametrize("resource, block", [
    (res("aws:ec2/securityGroup:SecurityGroup", "sg",
         ingress=[{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]),
     "0.0.0.0/0"),
    (res("aws:ec2/securityGroup:SecurityGroup", "sg6",
         ingress=[{"protocol": "-1", "ipv6CidrBlocks": ["::/0"]}]), "::/0"),
    (res("aws:ec2/securityGroupRule:SecurityGroupRule", "r", type="ingress",
         cidrBlocks=["0.0.0.0/0"]), "0.0.0.0/0"),
    (res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "v", cidrIpv4="0.0.0.0/0"),
     "0.0.0.0/0"),
    (res("aws:ec2/networkAcl:NetworkAcl", "acl", ingress=[
        {"action": "allow", "protocol": "tcp", "fromPort": 22, "toPort": 22,
         "cidrBlock": "0.0.0.0/0"}]), "0.0.0.0/0"),
    (res("aws:ec2/networkAclRule:NetworkAclRule", "nr", egress=False, ruleAction="allow",
         protocol="-1", fromPort=0, toPort=0, cidrBlock="0.0.0.0/0"), "0.0.0.0/0"),
])
def test_open_ingress_is_caught(resource: Resource, block: str) -> None:
    [message] = no_unrestricted_ingress(resource, NO_CONFIG)
    assert message.endswith(f"admits ingress from {block}")


def test_denying_acl_rule_from_anywhere_is_fine() -> None:
    rule = res("aws:ec2/networkAclRule:NetworkAclRule", "deny", egress=False, ruleAction="deny",
               protocol="-1", fromPort=0, toPort=0, cidrBlock="0.0.0.0/0")
    assert no_unrestricted_ingress(rule, NO_CONFIG) == []


# -- log-group-encrypted -----------------------------------------------------------------------
def test_encrypted_retained_log_group_passes() -> None:
    group = res("aws:cloudwatch/logGroup:LogGroup", "g", kmsKeyId="arn:aws:kms:...:key/x",
                retentionInDays=365)
    assert log_group_encrypted(group, NO_CONFIG) == []


def test_plain_log_group_is_caught_twice() -> None:
    messages = log_group_encrypted(res("aws:cloudwatch/logGroup:LogGroup", "g"), NO_CONFIG)
    assert len(messages) == 2 and "kmsKeyId" in messages[0] and "retentionInDays" in messages[1]


# -- vpc-flow-logs-enabled ---------------------------------------------------------------------
def test_vpc_with_all_traffic_flow_log_passes() -> None:
    data = vpc("data-vpc", "data")
    log = res("aws:ec2/flowLog:FlowLog", "fl", deps={"vpcId": [data.urn]}, trafficType="ALL")
    assert vpc_flow_logs_enabled([data, log], NO_CONFIG) == []


def test_flow_log_found_by_id_in_an_export() -> None:
    data = vpc("data-vpc", "data")
    log = res("aws:ec2/flowLog:FlowLog", "fl", vpcId="vpc-data-vpc", trafficType="ALL")
    assert vpc_flow_logs_enabled([data, log], NO_CONFIG) == []


def test_vpc_without_flow_log_or_with_reject_only_is_caught() -> None:
    bare, partial = vpc("bare", "data"), vpc("partial", "training")
    reject_only = res("aws:ec2/flowLog:FlowLog", "fl", deps={"vpcId": [partial.urn]},
                      trafficType="REJECT")
    other = res("aws:ec2/flowLog:FlowLog", "other", vpcId="vpc-elsewhere", trafficType="ALL")
    findings = vpc_flow_logs_enabled([bare, partial, reject_only, other], NO_CONFIG)
    assert urns(findings) == {"bare", "partial"}
    assert "REJECT" in next(f.message for f in findings if f.urn.endswith("partial"))


# -- default-security-group-closed ---------------------------------------------------------------
def test_closed_default_group_passes() -> None:
    data = vpc("data-vpc", "data")
    group = res("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "dsg",
                deps={"vpcId": [data.urn]}, ingress=[], egress=[])
    assert default_security_group_closed([data, group], NO_CONFIG) == []


def test_unmanaged_or_open_default_group_is_caught() -> None:
    unmanaged, managed = vpc("unmanaged", "data"), vpc("managed", "training")
    open_group = res("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "dsg",
                     deps={"vpcId": [managed.urn]}, ingress=[],
                     egress=[{"protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}])
    findings = default_security_group_closed([unmanaged, managed, open_group], NO_CONFIG)
    assert urns(findings) == {"unmanaged", "dsg"}


# -- vpc-endpoint-policy-restrictive -------------------------------------------------------------
PERIMETER = json.dumps({"Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*", "Resource": "*",
    "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}}]})
OPEN = json.dumps({"Statement": [{"Sid": "Everyone", "Effect": "Allow", "Principal": "*",
                                  "Action": "*", "Resource": "*"}]})


def test_perimeter_policy_passes_inline_or_attached() -> None:
    inline = res("aws:ec2/vpcEndpoint:VpcEndpoint", "kms", vpcEndpointType="Interface",
                 policy=PERIMETER)
    bare = res("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", vpcEndpointType="Gateway")
    attached = res("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "s3-policy",
                   deps={"vpcEndpointId": [bare.urn]}, policy=PERIMETER)
    gwlb = res("aws:ec2/vpcEndpoint:VpcEndpoint", "gwlb", vpcEndpointType="GatewayLoadBalancer")
    assert vpc_endpoint_policy_restrictive([inline, bare, attached, gwlb], NO_CONFIG) == []


@pytest.mark.parametrize("policy, fragment", [
    (None, "has no endpoint policy"),
    (OPEN, "statement Everyone allows any principal"),
    ("{not json", "not valid JSON"),
])
def test_missing_or_open_endpoint_policy_is_caught(policy: str | None, fragment: str) -> None:
    props: dict[str, Any] = {"vpcEndpointType": "Interface"} | ({"policy": policy} if policy else {})
    [finding] = vpc_endpoint_policy_restrictive(
        [res("aws:ec2/vpcEndpoint:VpcEndpoint", "sts", **props)], NO_CONFIG)
    assert fragment in finding.message


# -- egress-free-segment-no-internet-path --------------------------------------------------------
def closed_segment() -> list[Resource]:
    data = vpc("data-vpc", "data")
    subnet = res("aws:ec2/subnet:Subnet", "data-subnet", deps={"vpcId": [data.urn]})
    table = res("aws:ec2/routeTable:RouteTable", "data-rt", deps={"vpcId": [data.urn]}, routes=[])
    return [data, subnet, table]


def test_egress_free_segment_without_gateways_passes() -> None:
    management = vpc("mgmt-vpc", "management", egress="nat")
    igw = res("aws:ec2/internetGateway:InternetGateway", "mgmt-igw",
              deps={"vpcId": [management.urn]})
    config = {"egressFreeSegments": DEFAULT_EGRESS_FREE}
    assert egress_free_segment_no_internet_path([*closed_segment(), management, igw], config) == []


def test_internet_paths_into_egress_free_segment_are_caught() -> None:
    data, subnet, table = closed_segment()
    resources = [
        data, subnet, table,
        res("aws:ec2/internetGateway:InternetGateway", "igw", deps={"vpcId": [data.urn]}),
        res("aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway", "eigw",
            vpcId="vpc-data-vpc"),
        res("aws:ec2/natGateway:NatGateway", "nat", deps={"subnetId": [subnet.urn]}),
        res("aws:ec2/route:Route", "default", deps={"routeTableId": [table.urn]},
            destinationCidrBlock="0.0.0.0/0"),
        res("aws:ec2/routeTable:RouteTable", "inline-rt", deps={"vpcId": [data.urn]},
            routes=[{"ipv6CidrBlock": "::/0", "egressOnlyGatewayId": "eigw-1"}]),
        res("aws:ec2transitgateway/vpcAttachment:VpcAttachment", "tgw", deps={"vpcId": [data.urn]}),
        res("aws:ec2/natGateway:NatGateway", "private-nat", deps={"subnetId": [subnet.urn]},
            connectivityType="private"),
    ]
    findings = egress_free_segment_no_internet_path(resources, {"egressFreeSegments": ["data"]})
    assert urns(findings) == {"igw", "eigw", "nat", "default", "inline-rt", "tgw"}


def test_flipping_the_tag_does_not_lift_the_rule() -> None:
    data = vpc("data-vpc", "data", egress="nat")
    igw = res("aws:ec2/internetGateway:InternetGateway", "igw", deps={"vpcId": [data.urn]})
    assert urns(egress_free_segment_no_internet_path(
        [data, igw], {"egressFreeSegments": DEFAULT_EGRESS_FREE})) == {"igw"}
    # Lifting it takes an explicit change of the rule's configuration.
    assert egress_free_segment_no_internet_path([data, igw], {"egressFreeSegments": []}) == []


# -- exclusions ----------------------------------------------------------------------------------
def test_exclusion_matches_name_glob_or_urn() -> None:
    [by_name, by_urn] = parse_exclusions({"exclusions": [
        {"resource": "edge-*", "reason": "public subnets for the partner load balancer"},
        {"resource": "urn:pulumi:test::*::legacy", "reason": "migrated away in SEC-42, Q1"}]})
    assert find_exclusion([by_name], "edge-subnet-0", "urn:x") == by_name
    assert find_exclusion([by_name], "data-subnet-0", "urn:x") is None
    assert by_urn.matches("other", f"{STACK}aws:ec2/subnet:Subnet::legacy")


@pytest.mark.parametrize("entry, message", [
    ({"resource": "edge-*"}, "needs a reason"),
    ({"resource": "edge-*", "reason": "because"}, "needs a reason of at least 10"),
    ({"reason": "a perfectly good reason"}, "resource must be a non-empty pattern"),
    ("edge-*", "must be an object"),
])
def test_exclusion_without_reason_or_pattern_is_refused(entry: Any, message: str) -> None:
    with pytest.raises(ExclusionConfigError, match=message):
        parse_exclusions({"exclusions": [entry]})
