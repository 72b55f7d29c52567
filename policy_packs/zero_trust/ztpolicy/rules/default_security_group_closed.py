"""Every VPC's default security group is owned and has no rules (§2.1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import VPC, as_list, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"


def default_security_group_closed(resources: Sequence[Resource],
                                  _config: Mapping[str, Any]) -> list[Finding]:
    groups = of_type(resources, DEFAULT_SECURITY_GROUP)
    findings = []
    for group in groups:
        rules = [direction for direction in ("ingress", "egress") if as_list(group.get(direction))]
        if rules:
            findings.append(Finding(group.urn, f"default security group {group.name} has "
                                    f"{' and '.join(rules)} rules"))
    for vpc in of_type(resources, VPC):
        if not any(refers_to(group, "vpcId", vpc) for group in groups):
            # AWS's default group admits all traffic among its members and all egress.
            findings.append(Finding(vpc.urn, f"VPC {vpc.name} leaves its default security group "
                                    "as AWS created it (all egress, all traffic between members)"))
    return findings


RULE = Rule(
    name="default-security-group-closed",
    description="Every VPC's default security group must be managed with no ingress and no egress rules.",
    section="2.1",
    severity=Severity.HIGH,
    remediation="Declare aws.ec2.DefaultSecurityGroup(vpc_id=<vpc>.id, ingress=[], egress=[]) and "
                "give every workload its own security group.",
    stack_check=default_security_group_closed,
    suppressible=False,
)
