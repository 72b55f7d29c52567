"""Every VPC's default security group is owned and has no rules (control: network segmentation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import VPC, as_list, known, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
# Rules declared as resources of their own, attached through securityGroupId.
RULE_RESOURCES = ("aws:ec2/securityGroupRule:SecurityGroupRule",
                  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")


def _targets_default_group(rule: Resource, groups: Sequence[Resource],
                           vpcs: Sequence[Resource]) -> bool:
    if any(refers_to(rule, "securityGroupId", group) for group in groups):
        return True
    # security_group_id=vpc.default_security_group_id: the only group id a VPC hands out.
    deps = rule.property_dependencies.get("securityGroupId", ())
    value = known(rule, "securityGroupId")
    return any(vpc.urn in deps or (value and value == known(vpc, "defaultSecurityGroupId"))
               for vpc in vpcs)


def default_security_group_closed(resources: Sequence[Resource],
                                  _config: Mapping[str, Any]) -> list[Finding]:
    groups = of_type(resources, DEFAULT_SECURITY_GROUP)
    findings = []
    for group in groups:
        rules = [direction for direction in ("ingress", "egress") if as_list(group.get(direction))]
        if rules:
            findings.append(Finding(group.urn, f"default security group {group.name} has "
                                    f"{' and '.join(rules)} rules"))
    vpcs = of_type(resources, VPC)
    for rule in of_type(resources, *RULE_RESOURCES):
        if _targets_default_group(rule, groups, vpcs):
            findings.append(Finding(rule.urn, f"{rule.name} adds a rule to a default security group"))
    for vpc in vpcs:
        if not any(refers_to(group, "vpcId", vpc) for group in groups):
            # AWS's default group admits all traffic among its members and all egress.
            findings.append(Finding(vpc.urn, f"VPC {vpc.name} leaves its default security group "
                                    "as AWS created it (all egress, all traffic between members)"))
    return findings


RULE = Rule(
    name="default-security-group-closed",
    description="Every VPC's default security group must be managed with no ingress and no egress rules.",
    control="segmented network",
    severity=Severity.HIGH,
    remediation="Declare aws.ec2.DefaultSecurityGroup(vpc_id=<vpc>.id, ingress=[], egress=[]) and "
                "give every workload its own security group.",
    stack_check=default_security_group_closed,
    suppressible=False,
)
