"""Just-in-time grants carry their own expiry (control: just-in-time access).

Every Allow of every permission policy of a role tagged `ztai:access=jit-elevation` (case and
spaces ignored) must carry `DateLessThan` (or `DateLessThanEquals`) on `aws:CurrentTime` with a
date-time IAM can read (ISO 8601, e.g. `2026-01-31T12:00:00Z`): the grant is then harmless even
if revocation never runs. The policies read are the role's inline policies, its `RolePolicy`
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

from ztpolicy.graph import UNKNOWN
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
    return [f"{label} statement {sid} allows without a DateLessThan aws:CurrentTime condition: a "
            "grant that outlives its elevation if revocation never runs"
            for sid, statement in statements(parsed)
            if statement.get("Effect") == "Allow" and not expires(statement)]


def jit_grant_expiry(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    permissions = Permissions(resources)
    findings: list[Finding] = []
    for role in permissions.roles:
        if loosely(access_tag(role)) != JIT_ELEVATION:
            continue
        for label, document in permissions.documents(role):
            findings += [Finding(role.urn, problem)
                         for problem in document_problems(document, f"elevation role {role.name} {label}")]
    return findings


RULE = Rule(
    name="jit-grant-expiry",
    description="Policies of roles tagged ztai:access=jit-elevation must carry a DateLessThan "
                "aws:CurrentTime condition on every Allow.",
    control="just-in-time access",
    severity=Severity.CRITICAL,
    remediation="Leave elevation roles without standing policies (JustInTimeAccess writes each "
                "approved grant at run time with its expiry); a grant declared by hand needs "
                "DateLessThan aws:CurrentTime on every Allow.",
    stack_check=jit_grant_expiry,
    suppressible=False,
)
