"""Every rule called directly: the secure configuration passes, the insecure one is caught."""

from __future__ import annotations

from typing import Any

import pytest

from ztpolicy.exclusions import ExclusionConfigError, find_exclusion, parse_exclusions
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules import ALL_RULES
from ztpolicy.rules.logs.log_group_encrypted import log_group_encrypted
from ztpolicy.rules.network.default_security_group_closed import default_security_group_closed
from ztpolicy.rules.network.eip_only_on_nat_gateways import eip_only_on_nat_gateways
from ztpolicy.rules.network.instance_no_public_ip import instance_no_public_ip
from ztpolicy.rules.network.no_unrestricted_ingress import no_unrestricted_ingress
from ztpolicy.rules.network.subnet_no_public_ip import subnet_no_public_ip
from ztpolicy.rules.network.vpc_flow_logs_enabled import vpc_flow_logs_enabled

STACK = "urn:pulumi:test::zero-trust-ai::"
# Builders shared with the other rule test modules.
__all__ = ["NO_CONFIG", "res", "urns", "vpc"]
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
        assert rule.description and rule.remediation and rule.control
        module = (rule.resource_check or rule.stack_check).__name__  # type: ignore[union-attr]
        assert module.replace("_", "-") == rule.name, "a rule's function is named after its rule"


def test_rule_needs_exactly_one_check() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Rule(name="x", description="d", control="segmented network", severity=ALL_RULES[0].severity,
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
    instance = res("aws:ec2/instance:Instance", "i", subnetId="subnet-0private")
    assert instance_no_public_ip(instance, NO_CONFIG) == []
    assert instance_no_public_ip(res("aws:ec2/eip:Eip", "nat", domain="vpc"), NO_CONFIG) == []
    # After a refresh a NAT gateway's address shows its interface: not a workload's address.
    refreshed = res("aws:ec2/eip:Eip", "nat", domain="vpc", networkInterface="eni-0nat")
    assert instance_no_public_ip(refreshed, NO_CONFIG) == []
    template = res("aws:ec2/launchTemplate:LaunchTemplate", "lt",
                   networkInterfaces=[{"associatePublicIpAddress": "false"}])
    assert instance_no_public_ip(template, NO_CONFIG) == []


# -- eip-only-on-nat-gateways --------------------------------------------------------------------
EIP, NAT = "aws:ec2/eip:Eip", "aws:ec2/natGateway:NatGateway"


def test_a_nat_gateways_refreshed_address_passes() -> None:
    # Refreshed, the NAT gateway's address shows the gateway's interface.
    nat_eip = res(EIP, "nat-eip", id="eipalloc-0nat", domain="vpc", networkInterface="eni-0nat")
    by_id = res(NAT, "nat", allocationId="eipalloc-0nat", subnetId="subnet-0public")
    assert eip_only_on_nat_gateways([nat_eip, by_id], NO_CONFIG) == []
    # In a preview the link is the property dependency.
    by_dependency = res(NAT, "nat", {"allocationId": [nat_eip.urn]}, allocationId="04da6b54")
    assert eip_only_on_nat_gateways([nat_eip, by_dependency], NO_CONFIG) == []
    assert eip_only_on_nat_gateways([res(EIP, "spare", domain="vpc")], NO_CONFIG) == []


def test_an_address_on_a_workload_interface_is_caught() -> None:
    nat_eip = res(EIP, "nat-eip", id="eipalloc-0nat", networkInterface="eni-0nat")
    nat = res(NAT, "nat", allocationId="eipalloc-0nat")
    workload = res(EIP, "inference", id="eipalloc-0wl", networkInterface="eni-0inference")
    [finding] = eip_only_on_nat_gateways([nat_eip, nat, workload], NO_CONFIG)
    assert finding.urn.endswith("::inference")
    assert "network interface eni-0inference, which is no NAT gateway's" in finding.message
    # Without any NAT gateway, the refreshed-looking address is a workload's too.
    assert urns(eip_only_on_nat_gateways([nat_eip], NO_CONFIG)) == {"nat-eip"}


@pytest.mark.parametrize("resource", [
    res("aws:ec2/instance:Instance", "i", associatePublicIpAddress=True),
    res("aws:ec2/launchTemplate:LaunchTemplate", "lt",
        networkInterfaces=[{"associatePublicIpAddress": "true"}]),
    res("aws:ec2/eip:Eip", "e", instance="i-0123"),
    res("aws:ec2/eipAssociation:EipAssociation", "a", instanceId="i-0123"),
    res("aws:ec2/instance:Instance", "default-vpc-instance"),
])
def test_public_instance_is_caught(resource: Resource) -> None:
    assert len(instance_no_public_ip(resource, NO_CONFIG)) == 1


# -- no-unrestricted-ingress -------------------------------------------------------------------
@pytest.mark.parametrize("start", [1024, 32768, 49152])
def test_acl_ephemeral_return_ranges_pass(start: int) -> None:
    acl = res("aws:ec2/networkAcl:NetworkAcl", "acl", ingress=[
        {"action": "allow", "protocol": "tcp", "fromPort": start, "toPort": 65535,
         "cidrBlock": "0.0.0.0/0"}])
    assert no_unrestricted_ingress(acl, NO_CONFIG) == []


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
    # A high service port is not an ephemeral return range.
    (res("aws:ec2/networkAcl:NetworkAcl", "rdp", ingress=[
        {"action": "allow", "protocol": "tcp", "fromPort": 3389, "toPort": 3389,
         "cidrBlock": "0.0.0.0/0"}]), "0.0.0.0/0"),
    (res("aws:ec2/networkAclRule:NetworkAclRule", "pg", egress=False, ruleAction="allow",
         protocol="tcp", fromPort=5432, toPort=65535, cidrBlock="0.0.0.0/0"), "0.0.0.0/0"),
])
def test_open_ingress_is_caught(resource: Resource, block: str) -> None:
    [message] = no_unrestricted_ingress(resource, NO_CONFIG)
    assert message.endswith(f"admits ingress from {block}")


def test_halves_of_the_internet_are_the_internet() -> None:
    group = res("aws:ec2/securityGroup:SecurityGroup", "halves", ingress=[
        {"protocol": "tcp", "fromPort": 22, "toPort": 22,
         "cidrBlocks": ["0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8"]}])
    assert no_unrestricted_ingress(group, NO_CONFIG) == [
        "halves admits ingress from 0.0.0.0/1", "halves admits ingress from 128.0.0.0/1"]


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


def test_rule_resources_on_the_default_group_are_caught() -> None:
    data = res("aws:ec2/vpc:Vpc", "data-vpc", defaultSecurityGroupId="sg-0default")
    group = res("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "dsg",
                deps={"vpcId": [data.urn]}, ingress=[], egress=[])
    via_vpc_output = res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "sneaky",
                         deps={"securityGroupId": [data.urn]}, cidrIpv4="10.0.0.0/8")
    via_literal = res("aws:ec2/securityGroupRule:SecurityGroupRule", "pasted",
                      securityGroupId="sg-0default", type="egress", cidrBlocks=["0.0.0.0/0"])
    own_group = res("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "fine",
                    securityGroupId="sg-0workload", cidrIpv4="10.0.0.0/8")
    findings = default_security_group_closed([data, group, via_vpc_output, via_literal, own_group],
                                             NO_CONFIG)
    assert urns(findings) == {"sneaky", "pasted"}


def test_unmanaged_or_open_default_group_is_caught() -> None:
    unmanaged, managed = vpc("unmanaged", "data"), vpc("managed", "training")
    open_group = res("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "dsg",
                     deps={"vpcId": [managed.urn]}, ingress=[],
                     egress=[{"protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}])
    findings = default_security_group_closed([unmanaged, managed, open_group], NO_CONFIG)
    assert urns(findings) == {"unmanaged", "dsg"}


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
