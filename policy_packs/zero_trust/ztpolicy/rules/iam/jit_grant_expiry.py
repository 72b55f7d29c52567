"""Just-in-time grants carry their own expiry (control: just-in-time access).

A role tagged `ztai:access=jit-elevation` (case and spaces ignored) must carry its expiry in one of
two places, with `DateLessThan` (or `DateLessThanEquals`) on `aws:CurrentTime` and a date-time IAM
can read (ISO 8601, e.g. `2026-01-31T12:00:00Z`), so that the grant is harmless even if revocation
never runs:

- its trust policy: every Allow carries the condition, so nobody can assume the role after the
  expiry (a role whose trust admits nobody until a grant, under a date in the past, passes), and a
  session issued before it lasts at most `maxSessionDuration`, which `iam-role-session-duration`
  holds to an hour; or
- its permissions: every Allow of every permission policy carries the condition.

When the trust does not, the permissions are read: the role's inline policies, its `RolePolicy`
resources and the managed policies the stack attaches; a managed policy the stack does not
declare (an AWS managed one) cannot carry the expiry and is a finding. `...IfExists` does not
count. Deny statements (the revocation's deny of older sessions) need none. An elevation role
with no policies passes: the grant is written when the elevation is approved. Policies not known
yet (a real preview) are checked when they are. Not suppressible: a standing grant on an
elevation role is exactly the access just-in-time elevation removes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.iam import (
    JIT_ELEVATION,
    DocumentError,
    Permissions,
    access_tag,
    conditions,
    loosely,
    parse,
    statements,
)
from ztpolicy.rule import Finding, Resource, Rule

_OPERATORS = {"datelessthan", "datelessthanequals"}
_CURRENT_TIME = "aws:currenttime"


def _a_date(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def expires(statement: Mapping[str, Any]) -> bool:
    return any(operator in _OPERATORS and key == _CURRENT_TIME and values and all(_a_date(v) for v in values)
               for operator, key, values in conditions(statement))


def document_problems(document: Any, label: str) -> list[str]:
    if document is None:
        return [f"{label} is not declared by the stack, so it carries no expiry: a standing grant"]
    try:
        parsed = parse(document, label)
    except DocumentError as error:
        return [str(error)]
    if parsed is UNKNOWN or not isinstance(parsed, Mapping):
        return []
    return [f"{label} statement {sid} allows without a DateLessThan aws:CurrentTime condition, and "
            "the role's trust does not carry one on every Allow either: a grant that outlives its "
            "elevation if revocation never runs"
            for sid, statement in statements(parsed)
            if statement.get("Effect") == "Allow" and not expires(statement)]


def trust_expires(role: Resource) -> bool | None:
    """Does every Allow of the role's trust carry the expiry? None while the trust is not known."""
    try:
        parsed = parse(known(role, "assumeRolePolicy"), f"role {role.name} trust policy")
    except DocumentError:
        return False  # iam-role-trust-restricted names the problem
    if parsed is UNKNOWN or not isinstance(parsed, Mapping):
        return None
    allows = [statement for _, statement in statements(parsed) if statement.get("Effect") == "Allow"]
    return all(expires(statement) for statement in allows)


def jit_grant_expiry(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    permissions = Permissions(resources)
    findings: list[Finding] = []
    for role in permissions.roles:
        if loosely(access_tag(role)) != JIT_ELEVATION or trust_expires(role) is not False:
            continue
        for label, document in permissions.documents(role):
            findings += [Finding(role.urn, problem)
                         for problem in document_problems(document, f"elevation role {role.name} {label}")]
    return findings


RULE = Rule(
    name="jit-grant-expiry",
    description="Roles tagged ztai:access=jit-elevation must carry a DateLessThan aws:CurrentTime "
                "condition on every Allow of their trust, or of their permission policies.",
    control="just-in-time access",
    severity=Severity.CRITICAL,
    remediation="Create elevation roles with JustInTimeAccess, whose trust admits nobody until a "
                "grant and then only until its expiry (DateLessThan aws:CurrentTime); a role "
                "whose trust is open needs that condition on every Allow of its policies.",
    stack_check=jit_grant_expiry,
    suppressible=False,
)
