"""The key layer's trail records every API call of every region, signed, under a two-person key of
the stack, and a workload holds no trail (control: logs that last).

Whether the stack must hold a trail depends on its layer (stack key `layer`, read by the pack from
the stack's config, ztpolicy.stack): a combined stack or a key layer must declare one; a workload
must declare none, since the trail is the key layer's and a workload's deployer who held a trail
could narrow what it records, move it or stop it. `requireTrail: false` (default true) lets a
combined stack or a key layer go without one, for a fork whose account an organisation trail of
another stack records (the management account's, which this stack cannot see); a workload's trail
is a finding whatever it says. The organisation and bootstrap stacks (`layer: organization`,
`bootstrap`) are not required to hold one. A stack is recognised as one of this program's by its config, which
always names an `environment` (a required stack key): resources checked without a stack's config
(a test's, an export analysed with no config) are not required to hold a trail.

For each `aws.cloudtrail.Trail` of the stack:

- `isMultiRegionTrail` true: a single-region trail misses what an insider does in a region
  nobody watches;
- `enableLogFileValidation` true: without digest files nothing shows that a log file was
  altered, deleted or left out (`ztai trail verify` checks them);
- `kmsKeyId` a KMS key of this stack (by its value once known, else by the dependency Pulumi
  records; a value not known in a preview counts): a key outside the stack is one whose policy
  this stack neither writes nor checks;
- `includeGlobalServiceEvents` not false: IAM, STS and CloudFront calls are global, and without
  them a multi-region trail misses who made a role or assumed one;
- `enableLogging` not false (false stops the trail);
- `cloudWatchLogsGroupArn` names an `aws.cloudwatch.LogGroup` of this stack (its `arn`, with or
  without CloudTrail's `:*` suffix; by the group's name when its ARN is not known yet; by the
  property dependency in a preview where the value is not known), and `cloudWatchLogsRoleArn` is
  set: the near-real-time copy the alarms and the SIEM stream read. A group outside the stack is
  one `log-group-subscribed-to-siem` never sees, so the trail's events would never reach the SIEM
  while the stack's own trail group stays empty; a group of the stack is one that rule requires to
  be subscribed;
- `insightSelectors` with `ApiCallRateInsight` and `ApiErrorRateInsight` (CloudTrail Insights);
- every management event, KMS included: an advanced selector whose only field is
  `eventCategory` Equals `Management` (a `readOnly`, `eventSource` or `eventName` field, or any
  other, narrows it and does not count), or, for a trail with basic `eventSelectors`, one with
  `readWriteType` All, `includeManagementEvents` true and no `excludeManagementEventSources`;
- and its key keeps the two-person deny: the key's effective policy denies TWO_PERSON_ACTIONS to
  everyone but the stack's JIT API role and its key-admin elevations, checked exactly as
  kms-two-person-key-administration checks the model key (`two_person_findings`). Otherwise one
  key administrator could disable the key or drop CloudTrail's statement, and the trail would
  stop delivering the very record of it. A key layer's key before its first seal (the key's
  creation policy, no `aws.kms.KeyPolicy` yet) is accepted, as that rule accepts it.

Values unknown in a preview are checked when they are known. Not excludable: a trail excused
from these would defeat the other audit controls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field, known_items, of_type, refers_to_key
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.kms.kms_key_policy_least_privilege import KEY, REPLICA_KEY
from ztpolicy.rules.kms.kms_two_person_key_administration import two_person_findings
from ztpolicy.stack import stack_settings
from ztpolicy.trails import logs_every_management_event, stack_anchor, trails

INSIGHT_TYPES = ("ApiCallRateInsight", "ApiErrorRateInsight")
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _is_true(value: Any) -> bool:
    return value is UNKNOWN or value is True


def _stack_key(resources: Sequence[Resource], trail: Resource) -> tuple[Resource | None, bool]:
    """(the stack's key the trail encrypts with or None, whether a preview cannot tell yet)."""
    keys = of_type(resources, KEY, REPLICA_KEY)
    for key in keys:
        if refers_to_key(trail, "kmsKeyId", key, among=keys):
            return key, False
    unknown = known(trail, "kmsKeyId") is UNKNOWN and not trail.property_dependencies.get("kmsKeyId")
    return None, bool(unknown)


def _names_group(value: str, group: Resource) -> bool:
    """Does the trail's `cloudWatchLogsGroupArn` (`<group arn>:*`) name `group`? By the group's ARN
    when known, else by the name the ARN carries after `:log-group:`."""
    arn = value[:-2] if value.endswith(":*") else value
    group_arn = known(group, "arn")
    if isinstance(group_arn, str) and group_arn:
        return arn == group_arn
    name = known(group, "name")
    return ":log-group:" in arn and isinstance(name, str) and arn.split(":log-group:", 1)[1] == name


def _log_group_problem(resources: Sequence[Resource], trail: Resource) -> str | None:
    """Why the trail's CloudWatch Logs copy is not in a log group of this stack, or None."""
    value = known(trail, "cloudWatchLogsGroupArn")
    groups = of_type(resources, LOG_GROUP)
    if value is UNKNOWN:
        dependencies = trail.property_dependencies.get("cloudWatchLogsGroupArn", ())
        if not dependencies or any(group.urn in dependencies for group in groups):
            return None  # a group of this update (or nothing recorded to tell): checked once known
        return ("delivers its CloudWatch Logs copy to a group computed from no log group of this "
                "stack (cloudWatchLogsGroupArn)")
    if not (isinstance(value, str) and value.strip()):
        return ("delivers to no CloudWatch Logs group (cloudWatchLogsGroupArn), which the alarms and "
                "the SIEM stream read")
    if not any(_names_group(value, group) for group in groups):
        return (f"delivers its CloudWatch Logs copy to {value}, no log group of this stack "
                "(cloudWatchLogsGroupArn): the stack's SIEM subscriptions never see it, so its "
                "events never reach the SIEM")
    role = known(trail, "cloudWatchLogsRoleArn")
    if role is not UNKNOWN and not (isinstance(role, str) and role.strip()):
        return ("has no role to write its CloudWatch Logs copy (cloudWatchLogsRoleArn), so "
                "CloudTrail delivers nothing to the group")
    return None


def _insights_missing(trail: Resource) -> list[str] | None:
    selectors = known(trail, "insightSelectors")
    if selectors is UNKNOWN:
        return None
    kinds = [known_field(s, "insightType") for s in known_items(selectors)]
    if UNKNOWN in kinds or any(s is UNKNOWN for s in known_items(selectors)):
        return None
    return [kind for kind in INSIGHT_TYPES if kind not in kinds]


def _trail_problems(resources: Sequence[Resource], trail: Resource) -> list[str]:
    problems = []
    if not _is_true(known(trail, "isMultiRegionTrail")):
        problems.append("is not multi-region (isMultiRegionTrail), so other regions go unrecorded")
    if not _is_true(known(trail, "enableLogFileValidation")):
        problems.append("has no log file validation (enableLogFileValidation), so an altered or "
                        "missing log file cannot be shown")
    if _stack_key(resources, trail) == (None, False):
        problems.append("is not encrypted with a KMS key of this stack (kmsKeyId), whose policy the "
                        "stack writes and the pack checks")
    if known(trail, "includeGlobalServiceEvents") is False:
        problems.append("leaves out global service events (includeGlobalServiceEvents false): IAM "
                        "and STS calls go unrecorded")
    if known(trail, "enableLogging") is False:
        problems.append("is stopped (enableLogging false)")
    if group_problem := _log_group_problem(resources, trail):
        problems.append(group_problem)
    if missing := _insights_missing(trail):
        problems.append(f"has no CloudTrail Insights {' or '.join(missing)} (insightSelectors)")
    if logs_every_management_event(trail) is False:
        problems.append("does not log every management event: no advanced selector whose only field "
                        "is eventCategory Equals Management (a readOnly, eventSource or eventName "
                        "field narrows it), nor a basic one with readWriteType All, "
                        "includeManagementEvents true and no excludeManagementEventSources")
    return problems


def cloudtrail_trail_secure(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    settings = stack_settings(config)
    found = trails(resources)
    if settings.is_workload:
        return [Finding(trail.urn, (
            f"trail {trail.name} is declared in a workload stack: the audit trail is the key "
            "layer's (components.audit.AuditTrail in compose_audit), where the workload's deployer "
            "can neither narrow its selectors, nor move it, nor stop it")) for trail in found]
    if not found:
        # Only a stack of this program is held to it: its config names an environment (a
        # required stack key); resources checked without a stack's config are not a stack.
        # The organisation and bootstrap stacks hold no environment's trail: the key layer does.
        if (config.get("requireTrail", True) is False or settings.environment is None
                or settings.account_setup):
            return []
        return [Finding(stack_anchor(resources), (
            f"the stack ({settings.layer} layer) declares no CloudTrail trail: nothing records who "
            "did what; a combined stack or a key layer builds components.audit.AuditTrail "
            "(requireTrail false only when another stack's organisation trail records the account)"))]
    findings: list[Finding] = []
    for trail in found:
        problems = _trail_problems(resources, trail)
        if problems:
            findings.append(Finding(trail.urn, f"trail {trail.name} " + "; ".join(problems)))
        key, _ = _stack_key(resources, trail)
        if key is not None:
            findings += two_person_findings(
                key, resources, settings, f"trail {trail.name}'s key",
                "disable the key or drop CloudTrail's statement (the trail stops, unseen)")
    return findings


RULE = Rule(
    name="cloudtrail-trail-secure",
    description="A combined stack or a key layer declares a CloudTrail trail (a workload none): "
                "multi-region, validated, logging every management event and global service "
                "events, with Insights and a CloudWatch Logs copy in a log group of the stack, under "
                "a two-person key of the stack.",
    control="logs that last",
    severity=Severity.CRITICAL,
    remediation="Build the trail with components.audit.AuditTrail in the key layer (compose_audit): "
                "multi-region, log file validation, every management event, Insights, the log "
                "group, and the two-person `audit` key (twoPersonKeys, an audit key-admin "
                "elevation).",
    stack_check=cloudtrail_trail_secure,
    suppressible=False,
    config={
        "requireTrail": {
            "type": "boolean", "default": True,
            "description": "A combined stack or a key layer without a CloudTrail trail is a finding. "
                           "Set false only when an organisation trail of another stack records the "
                           "account; a workload's trail is a finding whatever this says."},
    },
)
