"""Every symmetric encryption key is rotated at least monthly by a scheduled function (control:
encryption and key management).

KMS automatic rotation runs every 90 days at best, so monthly rotation is on-demand rotation
driven by a schedule (components/key_rotation.py). A key passes when one of its aliases is named in
the input (`{"aliases": [...]}`) of an `aws.scheduler.Schedule` that

- is enabled, has no end date (rotation must not quietly expire) and no start date later than
  the time of the check (a schedule that starts next year rotates nothing until then; once the date
  has passed, the next preview accepts it);
- targets a Lambda function of the stack whose handler is `ztai_runtime.rotation.handler`: a
  function that merely accepts the input would pass otherwise. A function of another stack,
  named only by its ARN, cannot be checked and does not count (exclude the key, with a reason);
- runs at least once in every calendar month: `cron(...)` every month and year with a day of the
  month that every month has (1-28, `L`, `*`, or weekday forms that recur each month), or
  `rate(n minutes|hours|days)` of at most 28 days (a longer rate can skip February or a 31-day
  month entirely).

Symmetric encryption keys that KMS cannot rotate on demand are violations whether scheduled or
not: imported key material (`aws.kms.ExternalKey`) and keys in a custom key store (CloudHSM or
external). HMAC and asymmetric keys are not applicable (no on-demand rotation exists for them), nor
are replicas (their primary rotates them). Unknown values in a real preview skip only what they
hide; the rule runs again with known values on `pulumi up`. The only way to waive it for a key is
an exclusion with a reason.

A split deployment (stack key `layer`, docs/deploying.md) puts the keys in one stack and the
rotation schedule and function in another, and a per-stack check sees one of them. The rule then
checks each half against the name both halves share, the alias every key of the hierarchy has,
`alias/zero-trust-ai/<environment>/<purpose>` (components/keys.py alias_name):

- a key layer (`layer: keys`): each symmetric encryption key must be one KMS can rotate on demand
  (as above) and be named by the alias of one of the rotated purposes (`ROTATED_PURPOSES`) of the
  stack's environment. The schedule is not in this stack, so it is not looked for; a key under
  any other alias, or none, is a finding, because no workload check would require a schedule for it;
- a workload (`layer: workload`): one qualifying schedule of this stack (as above: enabled,
  started, no end, at least monthly, invoking this stack's rotation function) must name the alias
  of every rotated purpose of the stack's environment; each one missing is a finding.

Together the two halves hold what the combined check holds, provided both stacks are of the same
environment and the key layer the workload reads is that environment's (the workload's
`keyLayerStack`; checked by s3-bucket-encrypted-with-cmk's reading of the reference, not here).
What neither half sees: a key layer deployed without its workload never rotates; the drift check
(`ztai verify`) and the key layer's `keyAliases` output are where that shows. A stack whose
environment the config does not give is a finding in both layers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, as_list, known, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.stack import StackSettings, alias_for, stack_settings

KEY = "aws:kms/key:Key"
EXTERNAL_KEY = "aws:kms/externalKey:ExternalKey"
ALIAS = "aws:kms/alias:Alias"
SCHEDULE = "aws:scheduler/schedule:Schedule"
FUNCTION = "aws:lambda/function:Function"
STACK = "pulumi:pulumi:Stack"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
# The symmetric encryption keys of the hierarchy (components/keys.py SYMMETRIC_PURPOSES; a test
# keeps them equal): the workload's schedule rotates these.
ROTATED_PURPOSES = ("training-data", "model-weights", "logs", "secrets", "inference", "audit")
# The rotation function's entry point (components/key_rotation.py HANDLER; a test keeps them equal).
ROTATION_HANDLER = "ztai_runtime.rotation.handler"

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_MINUTES_PER = {"minute": 1, "hour": 60, "day": 1440}
# The shortest month: a run at most every 28 days falls in every calendar month.
MONTH_MINUTES = 28 * 1440
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


def started_by(start_date: Any, now: datetime) -> bool:
    """Whether a schedule's `startDate` (absent, or ISO 8601 in UTC) lies at or before `now`."""
    if start_date is None or start_date == "":
        return True
    if not isinstance(start_date, str):
        return False
    try:
        start = datetime.fromisoformat(start_date.replace("Z", "+00:00"))
    except ValueError:
        return False  # Scheduler would refuse it; it certainly schedules nothing
    return (start if start.tzinfo else start.replace(tzinfo=UTC)) <= now


def _runs_rotation_function(schedule: Resource, target: Mapping[str, Any],
                            functions: Sequence[Resource]) -> bool | None:
    """Does the target invoke a function of the stack with the rotation handler? None: unknown."""
    try:
        arn = target.get("arn")
    except UnknownValueError:
        arn = UNKNOWN
    if isinstance(arn, str):
        # Known ARN (an export, or a mock preview): the function it names, qualifier or not.
        candidates = [f for f in functions if isinstance(known(f, "arn"), str)
                      and (arn == known(f, "arn") or arn.startswith(f"{known(f, 'arn')}:"))]
    else:
        # A real preview: the functions the target was computed from.
        dependencies = schedule.property_dependencies.get("target", ())
        candidates = [f for f in functions if f.urn in dependencies]
    if not candidates:
        return False
    handlers = [known(f, "handler") for f in candidates]
    if any(h is UNKNOWN for h in handlers):
        return None
    return all(h == ROTATION_HANDLER for h in handlers)


def scheduled_aliases(resources: Sequence[Resource],
                      now: datetime | None = None) -> tuple[set[str], bool]:
    """Aliases named by qualifying schedules, and whether some qualifying input is unknown."""
    now = now or datetime.now(UTC)
    functions = of_type(resources, FUNCTION)
    names: set[str] = set()
    undecided = False
    for schedule in of_type(resources, SCHEDULE):
        if known(schedule, "state", "ENABLED") == "DISABLED" or known(schedule, "endDate"):
            continue
        start_date = known(schedule, "startDate")
        if start_date is UNKNOWN:
            undecided = True
            continue
        if not started_by(start_date, now):
            continue
        if not runs_at_least_monthly(known(schedule, "scheduleExpression")):
            continue
        target = known(schedule, "target")
        if not isinstance(target, Mapping):
            continue
        runs_rotation = _runs_rotation_function(schedule, target, functions)
        if runs_rotation is None:
            undecided = True
            continue
        if not runs_rotation:
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


def _symmetric_encryption(key: Resource) -> bool:
    spec_property = "keySpec" if key.type == EXTERNAL_KEY else "customerMasterKeySpec"
    return bool(known(key, spec_property, "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
                and known(key, "keyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT")


def _why_not_rotatable(key: Resource) -> str | None:
    """Why KMS cannot rotate this symmetric encryption key on demand, or None."""
    if key.type == EXTERNAL_KEY:
        return "has imported key material (aws.kms.ExternalKey)"
    # An unknown value is still a value: the key is in some custom key store.
    if known(key, "customKeyStoreId") or known(key, "xksKeyId"):
        return "is in a custom key store"
    return None


def _key_layer_finding(key: Resource, names: Sequence[Any], settings: StackSettings) -> Finding | None:
    """A key of a key layer: named by a rotated purpose's alias of the stack's environment?"""
    if any(name is UNKNOWN for name in names):
        return None
    if settings.environment is None:
        return Finding(key.urn, f"key {key.name}: the stack config gives no environment (dev, "
                       "staging or prod), so the alias the workload's rotation schedule must name "
                       "is not known")
    expected = {alias_for(settings.environment, purpose) for purpose in ROTATED_PURPOSES}
    if any(name in expected for name in names):
        return None
    shown = ", ".join(sorted(str(n) for n in names)) or "no alias"
    return Finding(key.urn, f"key {key.name} ({shown}) is in a key layer, whose rotation schedule is "
                   "the workload's, but is named by none of the aliases that schedule must rotate "
                   f"(alias/zero-trust-ai/{settings.environment}/<{'|'.join(ROTATED_PURPOSES)}>): "
                   "nothing would rotate it monthly")


def _workload_findings(resources: Sequence[Resource], scheduled: set[str], undecided: bool,
                       settings: StackSettings) -> list[Finding]:
    """A workload: its schedule names the alias of every rotated purpose of its environment."""
    anchors = [r.urn for r in resources if r.type == STACK_REFERENCE] or \
        [r.urn for r in resources if r.type == STACK] or [""]
    if settings.environment is None:
        return [Finding(anchors[0], "the stack config gives no environment (dev, staging or prod), "
                        "so the aliases of the key layer's keys that the rotation schedule must "
                        "name are not known")]
    if undecided:
        return []  # a schedule's input, start or function is not known yet
    missing = [alias for purpose in ROTATED_PURPOSES
               if (alias := alias_for(settings.environment, purpose)) not in scheduled]
    if not missing:
        return []
    return [Finding(anchors[0], f"this workload rotates the key layer's keys, but no enabled, started "
                    "schedule without end date that runs at least monthly and invokes a function of "
                    f"this stack with handler {ROTATION_HANDLER} names {', '.join(missing)} in its "
                    "input: those keys would not be rotated monthly")]


def kms_monthly_rotation_scheduled(resources: Sequence[Resource],
                                   config: Mapping[str, Any]) -> list[Finding]:
    settings = stack_settings(config)
    scheduled, undecided = scheduled_aliases(resources)
    findings = _workload_findings(resources, scheduled, undecided, settings) if settings.is_workload else []
    aliases = of_type(resources, ALIAS)
    for key in of_type(resources, KEY, EXTERNAL_KEY):
        if not _symmetric_encryption(key):
            continue  # HMAC and asymmetric keys: KMS has no on-demand rotation for them at all
        if (why := _why_not_rotatable(key)) is not None:
            findings.append(Finding(key.urn, f"key {key.name} {why}: KMS cannot rotate it on demand, "
                                    "so it cannot be rotated monthly"))
            continue
        names = [known(alias, "name") for alias in aliases if refers_to(alias, "targetKeyId", key)]
        if any(name is UNKNOWN for name in names) or any(name in scheduled for name in names):
            continue
        if settings.is_keys:
            if (finding := _key_layer_finding(key, names, settings)) is not None:
                findings.append(finding)
            continue
        if undecided:
            continue  # a schedule's input, start or function is not known yet: it may name this key
        if not names:
            findings.append(Finding(key.urn, f"key {key.name} has no alias, so no monthly rotation "
                                    "schedule can name it"))
            continue
        findings.append(Finding(key.urn, f"key {key.name} ({', '.join(sorted(names))}) is not rotated "
                                "monthly: no enabled, started schedule without end date that runs at "
                                f"least monthly and invokes a function of this stack with handler "
                                f"{ROTATION_HANDLER} names its alias in its input"))
    return findings


RULE = Rule(
    name="kms-monthly-rotation-scheduled",
    description="Symmetric encryption KMS keys must be rotated at least monthly by a scheduled "
                "function (automatic rotation alone is every 90 days at best).",
    control="monthly key rotation",
    severity=Severity.HIGH,
    remediation="Add the key's alias to MonthlyKeyRotationArgs.key_aliases (components/"
                "key_rotation.py) and grant the rotation role with KeyHierarchy.grant_key_rotation; "
                "use KMS-generated key material outside custom key stores; or add an exclusion "
                "with a reason.",
    stack_check=kms_monthly_rotation_scheduled,
)
