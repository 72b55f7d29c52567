"""Every bucket blocks public access, all four settings (controls: encryption and key management,
data durability, secure API gateway).

A bucket holding weights, training data or the API's truststore must never become public through
an ACL or a policy, whoever writes one later. Each bucket needs an `aws.s3.BucketPublicAccessBlock`
with `blockPublicAcls`, `ignorePublicAcls`, `blockPublicPolicy` and `restrictPublicBuckets` all
true (components/buckets.py `private_bucket` declares it). The account-wide block is a further
layer, not a substitute: an administrator of the account can lift it for every bucket at once.
A setting not known yet (a real preview) is checked when it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import PUBLIC_ACCESS_BLOCK, bucket_findings
from ztpolicy.graph import UNKNOWN, known
from ztpolicy.rule import Finding, Resource, Rule

SETTINGS = ("blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy", "restrictPublicBuckets")


def _problems(block: Resource, bucket: Resource, _resources: Sequence[Resource]) -> list[str]:
    off = [name for name in SETTINGS if (value := known(block, name)) is not UNKNOWN and value is not True]
    if not off:
        return []
    return [f"bucket {bucket.name}: public access block {block.name} leaves {', '.join(off)} off: "
            "an ACL or bucket policy could make its objects public"]


def s3_bucket_public_access_blocked(resources: Sequence[Resource],
                                    _config: Mapping[str, Any]) -> list[Finding]:
    return bucket_findings(
        resources, (PUBLIC_ACCESS_BLOCK,), _problems,
        lambda bucket: f"bucket {bucket.name} has no public access block: nothing stops an ACL or "
                       "a bucket policy from making its objects public")


RULE = Rule(
    name="s3-bucket-public-access-blocked",
    description="Every S3 bucket must have a public access block with all four settings on.",
    control="private buckets",
    severity=Severity.CRITICAL,
    remediation="Create buckets with components.buckets.private_bucket, or add an "
                "aws.s3.BucketPublicAccessBlock with block_public_acls, ignore_public_acls, "
                "block_public_policy and restrict_public_buckets set to True.",
    stack_check=s3_bucket_public_access_blocked,
)
