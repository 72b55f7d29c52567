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

The expiry must also be near: no date of those conditions may be later than now plus the longest
elevation the catalogue accepts (`MAX_GRANT_MINUTES`, 720 minutes), give or take `CLOCK_SKEW`
between the machine that runs the pack and AWS. A trust admitting someone until next year is a
standing grant with a date on it. The same bound holds for the window policy the JIT API writes on
the role (`ztai-jit-window`): a Deny of everything from `aws:CurrentTime` `DateGreaterThan[Equals]`
the expiry, found in any permission policy of the role, may not deny later than that either. When
a condition lists several dates, IAM holds it when any of them does, so the latest counts.

When the trust does not carry a near expiry on every Allow, the permissions are read: the role's
inline policies, its `RolePolicy` resources and the managed policies the stack attaches; a managed
policy the stack does not declare (an AWS managed one) cannot carry the expiry and is a finding.
`...IfExists` does not count. Deny statements (the revocation's deny of older sessions) need none.
An elevation role with no policies passes: the grant is written when the elevation is approved.
Policies not known yet (a real preview) are checked when they are. Not suppressible: a standing
grant on an elevation role is exactly the access just-in-time elevation removes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
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
_WINDOW_OPERATORS = {"dategreaterthan", "dategreaterthanequals"}
_CURRENT_TIME = "aws:currenttime"
# The catalogue's longest elevation: components/jit_catalogue.py MAX_MINUTES (the pack imports
# nothing of the project; tests/policy_packs/iam checks the two agree).
MAX_GRANT_MINUTES = 720
# The machine running the pack and AWS may disagree on the time by a little.
CLOCK_SKEW = timedelta(minutes=5)


def _date(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def latest_allowed() -> datetime:
    """The latest expiry a grant written now may carry."""
    return _now() + timedelta(minutes=MAX_GRANT_MINUTES) + CLOCK_SKEW


def expiry(statement: Mapping[str, Any]) -> datetime | None:
    """When an Allow's DateLessThan aws:CurrentTime conditions stop holding, or None without one.
    Several dates in one condition: it holds until the latest; several conditions: all must hold."""
    ends = []
    for operator, key, values in conditions(statement):
        if operator in _OPERATORS and key == _CURRENT_TIME and values:
            dates = [_date(v) for v in values]
            if all(dates):
                ends.append(max(d for d in dates if d is not None))
    return min(ends) if ends else None


def expires(statement: Mapping[str, Any]) -> bool:
    return expiry(statement) is not None


def _late(moment: datetime, latest: datetime) -> str:
    return (f"{moment.isoformat()} is later than now plus {MAX_GRANT_MINUTES} minutes (the longest "
            f"elevation of the catalogue, {latest.isoformat(timespec='seconds')}): a standing grant "
            "with a date on it")


def window_problems(document: Mapping[str, Any], label: str, latest: datetime) -> list[str]:
    """A window Deny (DateGreaterThan[Equals] aws:CurrentTime) that ends the grant too late."""
    problems = []
    for sid, statement in statements(document):
        if statement.get("Effect") != "Deny":
            continue
        starts = []
        for operator, key, values in conditions(statement):
            if operator in _WINDOW_OPERATORS and key == _CURRENT_TIME and values:
                dates = [_date(v) for v in values]
                if all(dates):
                    starts.append(min(d for d in dates if d is not None))
        # All conditions must hold for the Deny to apply: it applies from the latest start.
        if starts and (start := max(starts)) > latest:
            problems.append(f"{label} statement {sid} ends the grant at {_late(start, latest)}")
    return problems


def document_problems(document: Any, label: str, latest: datetime, *, trust_expires: bool) -> list[str]:
    """The window Denies of a permission policy, and, when the trust does not carry a near expiry,
    every Allow's."""
    if document is None:
        return [] if trust_expires else [
            f"{label} is not declared by the stack, so it carries no expiry: a standing grant"]
    try:
        parsed = parse(document, label)
    except DocumentError as error:
        return [str(error)]
    if parsed is UNKNOWN or not isinstance(parsed, Mapping):
        return []
    problems = window_problems(parsed, label, latest)
    if trust_expires:
        return problems
    for sid, statement in statements(parsed):
        if statement.get("Effect") != "Allow":
            continue
        ends = expiry(statement)
        if ends is None:
            problems.append(f"{label} statement {sid} allows without a DateLessThan aws:CurrentTime "
                            "condition, and the role's trust does not carry one on every Allow "
                            "either: a grant that outlives its elevation if revocation never runs")
        elif ends > latest:
            problems.append(f"{label} statement {sid} allows until {_late(ends, latest)}")
    return problems


def trust_problems(role: Resource, latest: datetime) -> tuple[bool | None, list[str]]:
    """(Does every Allow of the role's trust carry a near expiry? None while the trust is not
    known; the trust's expiries that are too far away)."""
    label = f"elevation role {role.name} trust policy"
    try:
        parsed = parse(known(role, "assumeRolePolicy"), label)
    except DocumentError:
        return False, []  # iam-role-trust-restricted names the problem
    if parsed is UNKNOWN or not isinstance(parsed, Mapping):
        return None, []
    near, problems = True, []
    for sid, statement in statements(parsed):
        if statement.get("Effect") != "Allow":
            continue
        ends = expiry(statement)
        if ends is None:
            near = False
        elif ends > latest:
            near = False
            problems.append(f"{label} statement {sid} admits until {_late(ends, latest)}")
    return near, problems


def jit_grant_expiry(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    permissions = Permissions(resources)
    latest = latest_allowed()
    findings: list[Finding] = []
    for role in permissions.roles:
        if loosely(access_tag(role)) != JIT_ELEVATION:
            continue
        near, problems = trust_problems(role, latest)
        findings += [Finding(role.urn, problem) for problem in problems]
        for label, document in permissions.documents(role):
            findings += [Finding(role.urn, problem) for problem in document_problems(
                document, f"elevation role {role.name} {label}", latest, trust_expires=near is not False)]
    return findings


RULE = Rule(
    name="jit-grant-expiry",
    description="Roles tagged ztai:access=jit-elevation must carry a DateLessThan aws:CurrentTime "
                "condition, no later than the catalogue's longest elevation from now, on every Allow "
                "of their trust, or of their permission policies.",
    control="just-in-time access",
    severity=Severity.CRITICAL,
    remediation="Create elevation roles with JustInTimeAccess, whose trust admits nobody until a "
                "grant and then only until its expiry (DateLessThan aws:CurrentTime, at most "
                "720 minutes away); a role whose trust is open needs that condition on every "
                "Allow of its policies.",
    stack_check=jit_grant_expiry,
    suppressible=False,
)
