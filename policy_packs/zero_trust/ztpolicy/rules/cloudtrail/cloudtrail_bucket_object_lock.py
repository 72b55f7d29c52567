"""A trail writes to a bucket whose Object Lock is in compliance mode (control: logs that last).

Log file validation shows that a log file was deleted; only S3 Object Lock in COMPLIANCE mode
stops it: "a protected object version can't be overwritten or deleted by any user, including the
root user", and its retention cannot be shortened (S3 User Guide, "Locking objects with Object
Lock"). GOVERNANCE mode can be bypassed by anyone allowed s3:BypassGovernanceRetention.

For each `aws.cloudtrail.Trail`, the bucket it names (`s3BucketName`, by property dependency in a
preview, by name or id otherwise) must be a bucket of this stack with `objectLockEnabled` true
(or `Enabled`, or an inline `objectLockConfiguration`) and an
`aws.s3.BucketObjectLockConfiguration` (or `...V2`, or the inline block) whose default retention
is `COMPLIANCE` for at least `minRetentionDays` (default 1; a year counts 365 days; prod's
policy configuration, stacks/policy/prod-keys.json, sets 365: a year of evidence nobody can
shorten). Its policy (`aws.s3.BucketPolicy`) must also deny `s3:DeleteObject` and
`s3:DeleteObjectVersion` on every one of its objects to everyone, with no condition: what keeps a
log file once its retention ends. "Every object" means a Resource pattern that covers
`<bucket arn>/*` whatever the key (`*`, `<bucket arn>/*`, or a wider pattern such as
`arn:aws:s3:::zero-trust-ai-*`); one that names some keys only (`<bucket arn>/x`,
`<bucket arn>/AWSLogs/*`) leaves the others deletable. A bucket has one policy, so exactly one
`aws.s3.BucketPolicy` may name the archive: with two, whichever the last update wrote wins and the
two overwrite each other on every update, so a second policy that drops the deny (or merely exists)
is a finding. A bucket outside the stack is a finding: its lock cannot be seen here. Values unknown in
a preview are checked when they are known.

Excludable, with a reason (a trail delivering to an archive account's bucket, which that account's
stack checks).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import BUCKET_POLICY, BUCKETS, attached
from ztpolicy.graph import UNKNOWN, as_list, known, known_field, of_type, refers_to, refers_to_by_value
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.trails import trails

OBJECT_LOCK = ("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
               "aws:s3/bucketObjectLockConfigurationV2:BucketObjectLockConfigurationV2")


def _the_bucket(resources: Sequence[Resource], trail: Resource) -> Resource | None:
    return next((bucket for bucket in of_type(resources, *BUCKETS)
                 if refers_to_by_value(trail, "s3BucketName", bucket, "bucket")), None)


DAYS_PER_YEAR = 365
# What the archive's policy denies everyone, whatever IAM allows (components/audit.py
# DELETE_ACTIONS): once a retention ends, only this keeps a log file.
DELETE_ACTIONS = ("s3:DeleteObject", "s3:DeleteObjectVersion")
_EVERYONE = ("*", {"AWS": "*"}, {"AWS": ["*"]})


def _glob(pattern: str) -> re.Pattern[str]:
    """An IAM Resource pattern as a regex: `*` any run of characters, `?` any one; nothing else is
    special (IAM has no character classes, unlike fnmatch)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                      re.DOTALL)


def covers_every_object(pattern: str, bucket_arn: str) -> bool:
    """Does the IAM Resource `pattern` match `<bucket_arn>/<key>` for every key? It does when it
    ends in `*` and what comes before that `*` matches a prefix of `<bucket_arn>/` (the `*` then
    takes the rest of any key); `*` alone is the empty prefix. A pattern ending otherwise matches
    only keys of some shape (a probe such as `<arn>/x` would wrongly accept `<arn>/?`)."""
    if not pattern.endswith("*"):
        return False
    return _glob(pattern[:-1]).match(f"{bucket_arn}/") is not None


def _denies_deletion(statement: Mapping[str, Any], bucket_arn: str | None) -> bool:
    """A Deny to everyone, with no condition, of deleting the bucket's objects and versions."""
    if (statement.get("Effect") != "Deny" or statement.get("Principal") not in _EVERYONE
            or {"NotPrincipal", "NotAction", "NotResource", "Condition"} & set(statement)):
        return False
    actions = [str(a).lower() for a in as_list(statement.get("Action"))]
    if not all(any(fnmatchcase(wanted.lower(), a) for a in actions) for wanted in DELETE_ACTIONS):
        return False
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    return bucket_arn is None or any(covers_every_object(r, bucket_arn) for r in resources)


def _deletion_problem(resources: Sequence[Resource], bucket: Resource) -> str | None:
    """Why the archive's policy does not deny deleting log files to everyone, or None (also when
    a policy is not known yet)."""
    policies = attached(resources, bucket, BUCKET_POLICY)
    if len(policies) > 1:
        return (f"has {len(policies)} bucket policies ({', '.join(p.name for p in policies)}): a "
                "bucket keeps one, whichever was written last, so one of them can drop the deny of "
                "deleting log files; keep a single aws.s3.BucketPolicy")
    arn = known(bucket, "arn")
    bucket_arn = arn if isinstance(arn, str) and arn else None
    for policy in policies:
        document = known(policy, "policy")
        if document is UNKNOWN:
            return None
        try:
            parsed = json.loads(document) if isinstance(document, str) else document
        except json.JSONDecodeError:
            continue
        statements = as_list(parsed.get("Statement")) if isinstance(parsed, Mapping) else []
        if any(isinstance(s, Mapping) and _denies_deletion(s, bucket_arn) for s in statements):
            return None
    return (f"has no policy that denies {' and '.join(DELETE_ACTIONS)} on every object "
            "(<bucket arn>/* or wider) to everyone without a condition (DenyDeletion): once a "
            "retention ends, anyone IAM allows could delete the log files")


def _retention_problem(rule: Any, min_days: int) -> str | None:
    """Why a lock configuration's `rule` is not a compliance default retention of at least
    `min_days`, or None (also when not known yet)."""
    retention = known_field(rule, "defaultRetention")
    if rule is UNKNOWN or retention is UNKNOWN:
        return None
    mode = known_field(retention, "mode")
    if mode is UNKNOWN:
        return None
    if mode != "COMPLIANCE":
        return f"has a default retention in {mode or 'no'} mode, not COMPLIANCE"
    days, years = known_field(retention, "days"), known_field(retention, "years")
    if UNKNOWN in (days, years):
        return None
    # Numbers reach the analyzer as floats (protobuf Struct).
    if not any(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1 for v in (days, years)):
        return "has a default retention of no days or years"
    total = sum(v * factor for v, factor in ((days, 1), (years, DAYS_PER_YEAR))
                if isinstance(v, (int, float)) and not isinstance(v, bool))
    if total < min_days:
        unit = "day" if total == 1 else "days"
        return (f"keeps each log file {total:g} {unit} (default retention), less than the "
                f"{min_days} days minRetentionDays requires")
    return None


def _lock_problem(resources: Sequence[Resource], bucket: Resource, min_days: int) -> str | None:
    enabled = known(bucket, "objectLockEnabled")
    inline = known(bucket, "objectLockConfiguration")
    if enabled is UNKNOWN or inline is UNKNOWN:
        return None
    inline_on = known_field(inline, "objectLockEnabled") == "Enabled"
    if enabled not in (True, "Enabled") and not inline_on:
        return "has no Object Lock (objectLockEnabled), which can only be turned on at its creation"
    rules = [known(lock, "rule") for lock in of_type(resources, *OBJECT_LOCK)
             if refers_to(lock, "bucket", bucket)]
    if inline_on:
        rules.append(known_field(inline, "rule"))
    rules = [rule for rule in rules if rule is not None]
    if not rules:
        return "has Object Lock but no default retention (aws.s3.BucketObjectLockConfiguration)"
    problems = [p for p in (_retention_problem(rule, min_days) for rule in rules) if p]
    return problems[0] if problems else None


def cloudtrail_bucket_object_lock(resources: Sequence[Resource],
                                  config: Mapping[str, Any]) -> list[Finding]:
    # Numbers reach the pack as floats (protobuf Struct); the schema holds it to whole days >= 1.
    raw = config.get("minRetentionDays", 1)
    min_days = int(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw >= 1 else 1
    findings: list[Finding] = []
    for trail in trails(resources):
        if known(trail, "s3BucketName") is UNKNOWN and not trail.property_dependencies.get("s3BucketName"):
            continue
        bucket = _the_bucket(resources, trail)
        if bucket is None:
            findings.append(Finding(trail.urn, (
                f"trail {trail.name} writes to a bucket this stack does not declare, whose Object "
                "Lock cannot be checked here")))
            continue
        problem = _lock_problem(resources, bucket, min_days) or _deletion_problem(resources, bucket)
        if problem:
            findings.append(Finding(trail.urn, (
                f"trail {trail.name} writes to bucket {bucket.name}, whose log files can be deleted: "
                f"the bucket {problem}")))
    return findings


RULE = Rule(
    name="cloudtrail-bucket-object-lock",
    description="The bucket a CloudTrail trail writes to must have S3 Object Lock with a COMPLIANCE "
                "default retention of at least minRetentionDays.",
    control="logs that last",
    severity=Severity.HIGH,
    remediation="Build the trail with components.audit.AuditTrail: its log-archive bucket is "
                "created with Object Lock and a COMPLIANCE retention (retention_days).",
    stack_check=cloudtrail_bucket_object_lock,
    config={
        "minRetentionDays": {
            "type": "integer", "minimum": 1, "maximum": 36500, "default": 1,
            "description": "The shortest COMPLIANCE default retention, in days, the trail's archive "
                           "may keep each log file (prod: 365)."},
    },
)
