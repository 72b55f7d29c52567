"""Every bucket keeps versions (controls: data durability, secure API gateway).

An overwritten or deleted model, truststore or evidence object must stay recoverable, and Object
Lock needs versioning. Each bucket needs an `aws.s3.BucketVersioning` (or `BucketVersioningV2`)
with status `Enabled` (components/buckets.py declares it), or, without one, the bucket's own
`versioning.enabled` (`aws.s3.Bucket`) / `versionings[].enabled` (`aws.s3.BucketV2`). `Suspended`
keeps old versions but stops making new ones: a violation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import BUCKETS, VERSIONING, bucket_findings
from ztpolicy.graph import UNKNOWN, known, known_field, known_items
from ztpolicy.rule import Finding, Resource, Rule


def _problems(versioning: Resource, bucket: Resource, _resources: Sequence[Resource]) -> list[str]:
    status = known_field(known(versioning, "versioningConfiguration"), "status")
    if status is UNKNOWN or status == "Enabled":
        return []
    return [f"bucket {bucket.name}: versioning {versioning.name} has status {status!r}: an "
            "overwritten or deleted object cannot be recovered; set Enabled"]


def _inline_problems(bucket: Resource) -> list[str] | None:
    blocks = ([known(bucket, "versioning")] if bucket.type == BUCKETS[0]
              else known_items(known(bucket, "versionings")))
    blocks = [block for block in blocks if block is not None]
    if not blocks:
        return None
    enabled = [known_field(block, "enabled") for block in blocks]
    if all(flag is True or flag is UNKNOWN for flag in enabled):
        return []
    return [f"bucket {bucket.name} is not versioned: an overwritten or deleted object cannot be "
            "recovered"]


def s3_bucket_versioning_enabled(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    return bucket_findings(
        resources, VERSIONING, _problems,
        lambda bucket: f"bucket {bucket.name} is not versioned: an overwritten or deleted object "
                       "cannot be recovered",
        _inline_problems)


RULE = Rule(
    name="s3-bucket-versioning-enabled",
    description="Every S3 bucket must have versioning enabled.",
    control="private buckets",
    severity=Severity.HIGH,
    remediation="Create buckets with components.buckets.private_bucket, or add an "
                "aws.s3.BucketVersioning with versioning_configuration.status=\"Enabled\".",
    stack_check=s3_bucket_versioning_enabled,
)
