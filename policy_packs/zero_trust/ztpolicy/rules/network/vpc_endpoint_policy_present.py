"""Every gateway and interface VPC endpoint carries a policy (control: network segmentation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.network.vpc_endpoint_policy_restrictive import ENDPOINT, ENDPOINT_POLICY, POLICY_TYPES


def vpc_endpoint_policy_present(resources: Sequence[Resource],
                                _config: Mapping[str, Any]) -> list[Finding]:
    attached = of_type(resources, ENDPOINT_POLICY)
    findings = []
    for endpoint in of_type(resources, ENDPOINT):
        if endpoint.get("vpcEndpointType", "Gateway") not in POLICY_TYPES:
            continue
        inline = known(endpoint, "policy")
        if inline is UNKNOWN or inline:
            continue  # present; vpc-endpoint-policy-restrictive checks what it says
        if any(refers_to(policy, "vpcEndpointId", endpoint) for policy in attached):
            continue
        findings.append(Finding(endpoint.urn, f"endpoint {endpoint.name} has no endpoint policy: "
                                "the AWS default allows any principal, any action, any resource "
                                "(including other accounts' buckets and keys)"))
    return findings


RULE = Rule(
    name="vpc-endpoint-policy-present",
    description="Gateway and interface VPC endpoints must have an endpoint policy.",
    control="data perimeter",
    severity=Severity.HIGH,
    remediation="Set policy= on the endpoint (or attach an aws.ec2.VpcEndpointPolicy) with the "
                "data-perimeter statements SegmentedNetwork writes.",
    stack_check=vpc_endpoint_policy_present,
)
