"""No ingress from the whole internet: security groups and network ACLs (control: network segmentation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import as_list, is_ephemeral_return, is_open_cidr
from ztpolicy.rule import Resource, Rule

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
NETWORK_ACL = "aws:ec2/networkAcl:NetworkAcl"
DEFAULT_NETWORK_ACL = "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl"
NETWORK_ACL_RULE = "aws:ec2/networkAclRule:NetworkAclRule"


def _open_blocks(rule: Mapping[str, Any], *keys: str) -> list[str]:
    return [str(block) for key in keys for block in as_list(rule.get(key)) if is_open_cidr(block)]


def _acl_rule_open(rule: Mapping[str, Any], action_key: str, *cidr_keys: str) -> list[str]:
    if str(rule.get(action_key, "")).lower() != "allow":
        return []
    # Security groups are stateful; ACLs are not, so admitting return traffic on ephemeral ports
    # from anywhere is how an ACL lets replies from S3 or NAT back in. Anything else is open.
    if is_ephemeral_return(rule.get("protocol"), rule.get("fromPort"), rule.get("toPort")):
        return []
    return _open_blocks(rule, *cidr_keys)


def no_unrestricted_ingress(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    if resource.type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for rule in as_list(resource.get("ingress")):
            if isinstance(rule, Mapping):
                found += _open_blocks(rule, "cidrBlocks", "ipv6CidrBlocks")
    elif resource.type == SECURITY_GROUP_RULE:
        if resource.get("type") == "ingress":
            found += _open_blocks(resource.props, "cidrBlocks", "ipv6CidrBlocks")
    elif resource.type == INGRESS_RULE:
        found += _open_blocks(resource.props, "cidrIpv4", "cidrIpv6")
    elif resource.type in (NETWORK_ACL, DEFAULT_NETWORK_ACL):
        for rule in as_list(resource.get("ingress")):
            if isinstance(rule, Mapping):
                found += _acl_rule_open(rule, "action", "cidrBlock", "ipv6CidrBlock")
    elif resource.type == NETWORK_ACL_RULE and resource.get("egress") is not True:
        found += _acl_rule_open(resource.props, "ruleAction", "cidrBlock", "ipv6CidrBlock")
    return [f"{resource.name} admits ingress from {block}" for block in sorted(set(found))]


RULE = Rule(
    name="no-unrestricted-ingress",
    description="Security groups and network ACLs must not admit ingress from 0.0.0.0/0 or ::/0.",
    control="segmented network",
    severity=Severity.CRITICAL,
    remediation="Admit only the segment's own CIDR or a source security group; publish services "
                "through the mTLS API gateway. Network ACLs may admit TCP/UDP return traffic on "
                "ports 1024-65535 from anywhere.",
    resource_check=no_unrestricted_ingress,
    resource_types=frozenset({SECURITY_GROUP, DEFAULT_SECURITY_GROUP, SECURITY_GROUP_RULE,
                              INGRESS_RULE, NETWORK_ACL, DEFAULT_NETWORK_ACL, NETWORK_ACL_RULE}),
)
