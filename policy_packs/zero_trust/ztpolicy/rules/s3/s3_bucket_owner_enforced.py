"""Every bucket disables ACLs: object ownership `BucketOwnerEnforced` (controls: encryption and key
management, data durability).

With ACLs on, the writer of an object (another account, a partner) owns it and can grant access
to it outside the bucket policy; `BucketOwnerEnforced` makes the bucket owner own every object and
ignores ACLs, so the bucket policy alone decides. S3 has used that setting for new buckets since
April 2023, but an administrator can change it; declaring it (`aws.s3.BucketOwnershipControls`,
as components/buckets.py does) lets a refresh show the change as drift. An inline `acl` or
`grants` on the bucket is reported too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import BUCKETS, OWNERSHIP_CONTROLS, bucket_findings
from ztpolicy.graph import UNKNOWN, known, known_field, known_items, of_type
from ztpolicy.rule import Finding, Resource, Rule

ENFORCED = "BucketOwnerEnforced"
# Canned ACLs that grant nobody but the owner: what S3 accepts while ACLs are disabled.
_OWNER_ONLY_ACLS = {"private", "bucket-owner-full-control"}


def _problems(controls: Resource, bucket: Resource, _resources: Sequence[Resource]) -> list[str]:
    ownership = known_field(known(controls, "rule"), "objectOwnership")
    if ownership is UNKNOWN or ownership == ENFORCED:
        return []
    return [f"bucket {bucket.name}: ownership controls {controls.name} set object ownership "
            f"{ownership!r}: ACLs stay in force, so an object's writer can grant access to it "
            f"outside the bucket policy; use {ENFORCED}"]


def _acl_problems(bucket: Resource) -> list[str]:
    acl = known(bucket, "acl")
    problems = []
    if isinstance(acl, str) and acl and acl not in _OWNER_ONLY_ACLS:
        problems.append(f"bucket {bucket.name} sets the canned ACL {acl!r}: ACLs must be disabled "
                        f"({ENFORCED}) and grant nothing")
    if known_items(known(bucket, "grants")):
        problems.append(f"bucket {bucket.name} sets ACL grants: ACLs must be disabled ({ENFORCED})")
    return problems


def s3_bucket_owner_enforced(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    findings = bucket_findings(
        resources, (OWNERSHIP_CONTROLS,), _problems,
        lambda bucket: f"bucket {bucket.name} declares no ownership controls: nothing records that "
                       f"ACLs are disabled ({ENFORCED}), so turning them back on goes unnoticed")
    return findings + [Finding(bucket.urn, message) for bucket in of_type(resources, *BUCKETS)
                       for message in _acl_problems(bucket)]


RULE = Rule(
    name="s3-bucket-owner-enforced",
    description="Every S3 bucket must declare object ownership BucketOwnerEnforced (ACLs disabled).",
    control="private buckets",
    severity=Severity.HIGH,
    remediation="Create buckets with components.buckets.private_bucket, or add an "
                "aws.s3.BucketOwnershipControls with rule.object_ownership=\"BucketOwnerEnforced\"; "
                "remove acl and grants from the bucket.",
    stack_check=s3_bucket_owner_enforced,
)
