"""What the S3 bucket rules share: a bucket and the resources that configure it.

In pulumi-aws v7 a bucket's controls are separate resources (public access block, ownership
controls, versioning, default encryption, policy), each naming the bucket in its `bucket`
property. `graph.refers_to` links them: by property dependency in a preview, where the bucket's
name may still be unknown, and by the bucket's id (its name) in an export.

A control set on the bucket itself (the deprecated inline `versioning`,
`serverSideEncryptionConfiguration`, `policy` of `aws.s3.Bucket`; the plural lists of
`aws.s3.BucketV2`) counts only when no separate resource configures it: the bucket's own copy of
those attributes is read when the bucket is, so in state it is stale once a separate resource
changed the setting, and the separate resource is what the next update writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ztpolicy.graph import UNKNOWN, known, known_field, known_items, of_type, refers_to
from ztpolicy.rule import Finding, Resource

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP_CONTROLS = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning",
              "aws:s3/bucketVersioningV2:BucketVersioningV2")
ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
              "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
KMS_ALGORITHMS = {"aws:kms", "aws:kms:dsse"}

# (companion, bucket, all resources) -> problems of that companion
CompanionCheck = Callable[[Resource, Resource, Sequence[Resource]], list[str]]
# bucket -> None when the bucket sets nothing inline, else the problems of what it sets
InlineCheck = Callable[[Resource], list[str] | None]


def attached(resources: Sequence[Resource], bucket: Resource, *types: str) -> list[Resource]:
    """The resources of `types` whose `bucket` property names `bucket`."""
    return [resource for resource in of_type(resources, *types) if refers_to(resource, "bucket", bucket)]


def bucket_findings(resources: Sequence[Resource], companion_types: Sequence[str],
                    companion_problems: CompanionCheck, missing: Callable[[Resource], str],
                    inline_problems: InlineCheck | None = None) -> list[Finding]:
    """For every bucket: the problems of each resource of `companion_types` attached to it (all
    must be right: S3 keeps whichever wrote last), else of what the bucket sets inline, else
    `missing(bucket)`."""
    findings: list[Finding] = []
    for bucket in of_type(resources, *BUCKETS):
        linked = attached(resources, bucket, *companion_types)
        if linked:
            for companion in linked:
                findings += [Finding(companion.urn, message)
                             for message in companion_problems(companion, bucket, resources)]
            continue
        inline = inline_problems(bucket) if inline_problems is not None else None
        if inline is None:
            findings.append(Finding(bucket.urn, missing(bucket)))
        else:
            findings += [Finding(bucket.urn, message) for message in inline]
    return findings


def _blocks(value: Any) -> list[Any]:
    """A nested block that is a single object in one provider version and a list in another."""
    return known_items(value) if isinstance(value, Sequence) and not isinstance(value, str) \
        else [value]


def default_encryptions(resource: Resource) -> list[Any] | None:
    """The `applyServerSideEncryptionByDefault` blocks a default-encryption resource or a bucket
    declares (each a mapping, or UNKNOWN), or None when it declares no rule at all.

    Shapes: the separate resource, `rules[].applyServerSideEncryptionByDefault`; `aws.s3.Bucket`,
    `serverSideEncryptionConfiguration.rule.applyServerSideEncryptionByDefault`;
    `aws.s3.BucketV2`, `serverSideEncryptionConfigurations[].rules[].applyServerSideEncryptionByDefaults[]`.
    """
    if resource.type in ENCRYPTION:
        rules = known(resource, "rules")
    elif resource.type == BUCKETS[0]:
        configuration = known(resource, "serverSideEncryptionConfiguration")
        rules = known_field(configuration, "rule") if configuration else None
    else:
        rules = [rule for configuration in known_items(known(resource, "serverSideEncryptionConfigurations"))
                 for rule in _blocks(known_field(configuration, "rules"))]
    if rules is UNKNOWN:
        return [UNKNOWN]
    if not rules:
        return None
    found: list[Any] = []
    for rule in _blocks(rules):
        for name in ("applyServerSideEncryptionByDefault", "applyServerSideEncryptionByDefaults"):
            value = known_field(rule, name)
            if value:
                found += _blocks(value) if value is not UNKNOWN else [UNKNOWN]
    return found


def encryption_key(block: Any) -> Any:
    """The `kmsMasterKeyId` of one default-encryption block (UNKNOWN, None, or the value)."""
    return known_field(block, "kmsMasterKeyId") if isinstance(block, Mapping) or block is UNKNOWN \
        else None


def bucket_keys(resources: Sequence[Resource], bucket: Resource) -> list[Any]:
    """The KMS keys the bucket's default encryption names (from its separate resources, else
    inline): what its policy must pin."""
    sources = attached(resources, bucket, *ENCRYPTION) or [bucket]
    return [encryption_key(block) for source in sources for block in default_encryptions(source) or []]
