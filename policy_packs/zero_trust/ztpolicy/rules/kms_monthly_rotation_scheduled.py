"""Every symmetric encryption key is rotated at least monthly by a scheduled function (§4.2).

KMS automatic rotation runs every 90 days at best, so monthly rotation is on-demand rotation
driven by a schedule (components/key_rotation.py). A key passes when one of its aliases is named in
the input (`{"aliases": [...]}`) of an `aws.scheduler.Schedule` that

- is enabled and has no end date (rotation must not quietly expire),
- targets a Lambda function (a function of the stack, or a Lambda function ARN), and
- runs at least once in every calendar month: `cron(...)` every month and year with a day of the
  month that every month has (1-28, `L`, `*`, or weekday forms that recur each month), or
  `rate(n minutes|hours|days)` of at most 31 days.

Keys KMS cannot rotate on demand are not applicable: HMAC, asymmetric and custom-key-store keys,
and replicas (their primary rotates them). Unknown values in a real preview skip only what they
hide; the rule runs again with known values on `pulumi up`. The only way to waive it for a key is
an exclusion with a reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, as_list, known, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
SCHEDULE = "aws:scheduler/schedule:Schedule"
FUNCTION = "aws:lambda/function:Function"

_LAMBDA_ARN = re.compile(r"^arn:aws[\w-]*:lambda:[\w-]+:\d{12}:function:[\w-]+(:[\w$-]+)?$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_MINUTES_PER = {"minute": 1, "hour": 60, "day": 1440}
MONTH_MINUTES = 31 * 1440
# Days of the month that every month has; 29-31 skip February (and 31 five other months).
_EVERY_MONTH_DAY = 28


def _every_month_day(token: str) -> bool:
    """A day-of-month element of a Scheduler cron that falls in every month."""
    if token in ("*", "L", "LW"):
        return True
    base = token.split("/")[0].split("-")[0].removesuffix("W")
    if base == "*":
        return True
    return base.isdigit() and 1 <= int(base) <= _EVERY_MONTH_DAY


def _every_month_weekday(token: str) -> bool:
    """A day-of-week element: plain days recur weekly, `X#n` monthly only up to the 4th."""
    if "#" in token:
        nth = token.split("#")[1]
        return nth.isdigit() and 1 <= int(nth) <= 4
    return bool(token) and token != "?"


def runs_at_least_monthly(expression: Any) -> bool:
    """True when a Scheduler expression fires at least once in every calendar month."""
    if not isinstance(expression, str):
        return False
    expression = expression.strip()
    if (rate := _RATE.match(expression)) is not None:
        count, unit = int(rate.group(1)), rate.group(2).removesuffix("s")
        return 1 <= count * _MINUTES_PER[unit] <= MONTH_MINUTES
    if not (expression.startswith("cron(") and expression.endswith(")")):
        return False  # at(...) runs once
    fields = expression[len("cron("):-1].split()
    if len(fields) != 6:
        return False
    _minute, _hour, day_of_month, month, day_of_week, year = fields
    if month != "*" or year != "*":
        return False
    if day_of_month == "?":
        return all(_every_month_weekday(t) for t in day_of_week.split(","))
    return day_of_week == "?" and any(_every_month_day(t) for t in day_of_month.split(","))


def _invokes_function(schedule: Resource, target: Mapping[str, Any],
                      functions: Sequence[Resource]) -> bool:
    dependencies = schedule.property_dependencies.get("target", ())
    if any(function.urn in dependencies for function in functions):
        return True
    try:
        arn = target.get("arn")
    except UnknownValueError:
        return False  # computed from something that is not a function of this stack
    return isinstance(arn, str) and (
        bool(_LAMBDA_ARN.match(arn)) or any(arn == known(f, "arn") for f in functions))


def scheduled_aliases(resources: Sequence[Resource]) -> tuple[set[str], bool]:
    """Aliases named by qualifying schedules, and whether some qualifying input is unknown."""
    functions = of_type(resources, FUNCTION)
    names: set[str] = set()
    undecided = False
    for schedule in of_type(resources, SCHEDULE):
        if known(schedule, "state", "ENABLED") == "DISABLED" or known(schedule, "endDate"):
            continue
        if not runs_at_least_monthly(known(schedule, "scheduleExpression")):
            continue
        target = known(schedule, "target")
        if not isinstance(target, Mapping) or not _invokes_function(schedule, target, functions):
            continue
        try:
            document = target.get("input")
        except UnknownValueError:
            undecided = True
            continue
        try:
            parsed = json.loads(document) if isinstance(document, str) else None
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, Mapping):
            names.update(a for a in as_list(parsed.get("aliases")) if isinstance(a, str))
    return names, undecided


def _rotatable_on_demand(key: Resource) -> bool:
    return (known(key, "customerMasterKeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
            and known(key, "keyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT"
            and not known(key, "customKeyStoreId") and not known(key, "xksKeyId"))


def kms_monthly_rotation_scheduled(resources: Sequence[Resource],
                                   _config: Mapping[str, Any]) -> list[Finding]:
    scheduled, undecided = scheduled_aliases(resources)
    aliases = of_type(resources, ALIAS)
    findings = []
    for key in of_type(resources, KEY):
        if not _rotatable_on_demand(key):
            continue
        names = [known(alias, "name") for alias in aliases if refers_to(alias, "targetKeyId", key)]
        if any(name is UNKNOWN for name in names) or any(name in scheduled for name in names):
            continue
        if undecided:
            continue  # a schedule's input is not known yet: it may name this key
        if not names:
            findings.append(Finding(key.urn, f"key {key.name} has no alias, so no monthly rotation "
                                    "schedule can name it"))
            continue
        findings.append(Finding(key.urn, f"key {key.name} ({', '.join(sorted(names))}) is not rotated "
                                "monthly: no enabled schedule that runs at least monthly and invokes "
                                "a Lambda function names its alias in its input"))
    return findings


RULE = Rule(
    name="kms-monthly-rotation-scheduled",
    description="Symmetric encryption KMS keys must be rotated at least monthly by a scheduled "
                "function (automatic rotation alone is every 90 days at best).",
    section="4.2",
    severity=Severity.HIGH,
    remediation="Add the key's alias to MonthlyKeyRotationArgs.key_aliases (components/"
                "key_rotation.py) and grant the rotation role with KeyHierarchy.grant_key_rotation; "
                "or add an exclusion with a reason.",
    stack_check=kms_monthly_rotation_scheduled,
)
