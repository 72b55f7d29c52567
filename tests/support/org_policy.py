"""AWS Organizations' policies on top of the IAM evaluator (tests/support/key_policy.py): service
control policies (SCPs) and resource control policies (RCPs), as the IAM User Guide's "Policy
evaluation logic" and the Organizations User Guide describe them.

- SCPs filter the account's own principals; they never grant. A request passes the SCPs only if
  some SCP allows it (FullAWSAccess, attached by default, allows everything) and none denies it;
  an Allow in an SCP alone grants nothing: the identity or resource policy must still allow.
- RCPs filter what anyone may do to the account's resources, whoever the caller; they never grant.
  RCPFullAWSAccess is always attached; a Deny in any RCP wins.
- Neither applies to the management account (its principals and its resources); SCPs do not
  apply to service-linked roles nor to principals outside the organisation: request flags here.

Statements are evaluated with key_policy.evaluate: SCP statements have no Principal (identity
style), RCP statements have Principal "*".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from tests.support.key_policy import Decision, Request, evaluate, evaluate_session

FULL_AWS_ACCESS = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
RCP_FULL_AWS_ACCESS = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})


@dataclass(frozen=True)
class Caller:
    """Facts about the request that policies do not show."""

    management_account: bool = False  # the caller (for SCPs) / resource (for RCPs) is there
    service_linked_role: bool = False  # SCPs never restrict service-linked roles
    # a principal of another organisation (or an AWS service): our SCPs do not reach it
    outside_organization: bool = False


def scp_decision(request: Request, scps: Sequence[str]) -> Decision:
    """What the SCPs let through: explicit-deny, implicit-deny (no SCP allows) or allow."""
    decisions = [evaluate(scp, request, identity=True) for scp in scps]
    denies = tuple(sid for d in decisions if d.effect == "explicit-deny" for sid in d.statements)
    if denies:
        return Decision("explicit-deny", denies)
    if not any(d.effect == "allow" for d in decisions):
        return Decision("implicit-deny", ())
    return Decision("allow", ())


def rcp_decision(request: Request, rcps: Sequence[str]) -> Decision:
    decisions = [evaluate(rcp, request) for rcp in (RCP_FULL_AWS_ACCESS, *rcps)]
    denies = tuple(sid for d in decisions if d.effect == "explicit-deny" for sid in d.statements)
    return Decision("explicit-deny", denies) if denies else Decision("allow", ())


def evaluate_in_organization(request: Request, *, scps: Sequence[str] = (), rcps: Sequence[str] = (),
                             identity_policies: Sequence[str] = (), resource_policy: str | None = None,
                             boundary: str | None = None, caller: Caller = Caller(),
                             full_aws_access: bool = True) -> Decision:
    """The decision for a role session in a member account: the RCPs, then the SCPs (with
    FullAWSAccess unless full_aws_access=False), then IAM within the account. Any explicit Deny
    wins; an SCP's or RCP's Allow never grants."""
    if not caller.management_account:
        rcp = rcp_decision(request, rcps)
        if rcp.effect != "allow":
            return rcp
        if not (caller.service_linked_role or caller.outside_organization):
            scp = scp_decision(request, [*((FULL_AWS_ACCESS,) if full_aws_access else ()), *scps])
            if scp.effect != "allow":
                return scp
    return evaluate_session(request, identity_policies=identity_policies, boundary=boundary,
                            resource_policy=resource_policy)
