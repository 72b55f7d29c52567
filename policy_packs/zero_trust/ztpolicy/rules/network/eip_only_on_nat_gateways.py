"""An Elastic IP on a network interface belongs to a NAT gateway, never to a workload (control:
network segmentation).

`instance-no-public-ip` checks Elastic IPs one by one and cannot tell a NAT gateway's address
(whose `networkInterface` shows the gateway's interface once refreshed) from one a program put on
a workload's interface. This stack rule can: every `aws:ec2/eip:Eip` with `networkInterface` set
must be the allocation of a NAT gateway of the stack (`aws:ec2/natGateway:NatGateway`
`allocationId`, linked by property dependency in a preview or by id in an export). An interface
not known yet in a preview is checked again when known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

EIP = "aws:ec2/eip:Eip"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"


def eip_only_on_nat_gateways(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    gateways = of_type(resources, NAT_GATEWAY)
    findings = []
    for eip in of_type(resources, EIP):
        interface = known(eip, "networkInterface")
        if interface is UNKNOWN or not interface:
            continue
        if not any(refers_to(gateway, "allocationId", eip) for gateway in gateways):
            findings.append(Finding(eip.urn, f"Elastic IP {eip.name} is on network interface "
                                    f"{interface}, which is no NAT gateway's: a workload gets a "
                                    "public address"))
    return findings


RULE = Rule(
    name="eip-only-on-nat-gateways",
    description="Elastic IPs on network interfaces must be NAT gateways' allocations, never a "
                "workload's address.",
    control="segmented network",
    severity=Severity.HIGH,
    remediation="Remove the Elastic IP from the interface (or its network_interface argument); "
                "publish services through the API gateway and reach instances through SSM.",
    stack_check=eip_only_on_nat_gateways,
)
