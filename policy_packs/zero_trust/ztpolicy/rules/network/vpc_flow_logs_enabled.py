"""Every VPC records all of its traffic in flow logs (controls: network segmentation, audit logging)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import VPC, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

FLOW_LOG = "aws:ec2/flowLog:FlowLog"


def vpc_flow_logs_enabled(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    flow_logs = of_type(resources, FLOW_LOG)
    findings = []
    for vpc in of_type(resources, VPC):
        logs = [log for log in flow_logs if refers_to(log, "vpcId", vpc)]
        if not logs:
            findings.append(Finding(vpc.urn, f"VPC {vpc.name} has no flow log"))
        elif not any(log.get("trafficType") == "ALL" for log in logs):
            findings.append(Finding(vpc.urn, f"VPC {vpc.name} logs only "
                                    f"{', '.join(sorted({str(log.get('trafficType')) for log in logs}))}"
                                    " traffic; exfiltration is ACCEPTed traffic, log ALL"))
    return findings


RULE = Rule(
    name="vpc-flow-logs-enabled",
    description="Every VPC must have a flow log that records ALL traffic.",
    control="segmented network",
    severity=Severity.HIGH,
    remediation="Create an aws.ec2.FlowLog with vpc_id=<vpc>.id and traffic_type='ALL' into an "
                "encrypted log group (SegmentedNetwork does this for every segment).",
    stack_check=vpc_flow_logs_enabled,
    # Without flow logs there is no evidence to investigate an insider with: never waived.
    suppressible=False,
)
