"""Every egress-free VPC says so in the tag the organisation guardrails key on (control:
organisation guardrails).

The network SCP denies peering, internet gateways, egress-only gateways and NAT gateways for VPCs
tagged `ztai:egress=none` (aws:ResourceTag). The pack treats an untagged VPC as egress-free (fail
closed), but the SCP cannot: a VPC without the tag, or with another value than `nat`, can be given
a way out by any account administrator. So every VPC carries `ztai:egress` = `none` or `nat`
(the network component sets it on each segment)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import VPC
from ztpolicy.guardrails import EGRESS_FREE_VALUE, EGRESS_TAG, EGRESS_VALUE
from ztpolicy.rule import Resource, Rule


def guardrail_vpc_egress_tagged(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    value = resource.tags().get(EGRESS_TAG)
    if value in (EGRESS_FREE_VALUE, EGRESS_VALUE):
        return []
    shown = "no" if value is None else f"{EGRESS_TAG}={value!r}, not a"
    return [f"VPC {resource.name} has {shown} {EGRESS_TAG} tag of {EGRESS_FREE_VALUE} or {EGRESS_VALUE}: "
            f"the organisation guardrail that keeps egress-free VPCs without a way out covers only "
            f"VPCs tagged {EGRESS_TAG}={EGRESS_FREE_VALUE}"]


RULE = Rule(
    name="guardrail-vpc-egress-tagged",
    description=f"Every VPC is tagged {EGRESS_TAG}={EGRESS_FREE_VALUE} (or {EGRESS_VALUE}), which the "
                "organisation guardrails key on.",
    control="organisation guardrails",
    severity=Severity.HIGH,
    remediation=f"Create VPCs with SegmentedNetwork (it tags each segment), or tag the VPC "
                f"{EGRESS_TAG}={EGRESS_FREE_VALUE}.",
    resource_check=guardrail_vpc_egress_tagged,
    resource_types=frozenset({VPC}),
)
