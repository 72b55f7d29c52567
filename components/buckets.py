"""The project's private bucket: one definition shared by every component that stores objects.

Public access blocked, ACLs disabled (bucket owner enforced), versioned, encrypted by default
with a customer managed key, and a policy that refuses plain HTTP and any object not encrypted
with that key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws


def kms_only_bucket_policy(bucket_arn: str, key_arn: str) -> str:
    """TLS only, and every object encrypted with the bucket's key (no SSE-S3, no other key)."""
    def deny(sid: str, action: str, resource: Any, condition: dict[str, Any]) -> dict[str, Any]:
        return {"Sid": sid, "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": action,
                "Resource": resource, "Condition": condition}

    return json.dumps({"Version": "2012-10-17", "Statement": [
        deny("DenyInsecureTransport", "s3:*", [bucket_arn, f"{bucket_arn}/*"],
             {"Bool": {"aws:SecureTransport": "false"}}),
        deny("DenyOtherEncryption", "s3:PutObject", f"{bucket_arn}/*",
             {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}),
        deny("DenyOtherKey", "s3:PutObject", f"{bucket_arn}/*",
             {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn}}),
    ]}, sort_keys=True)


@dataclass(frozen=True)
class PrivateBucket:
    bucket: aws.s3.Bucket
    versioning: aws.s3.BucketVersioning
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    policy: aws.s3.BucketPolicy


def private_bucket(name: str, *, key_arn: pulumi.Input[str], tags: Mapping[str, str], protect: bool,
                   parent: pulumi.Resource) -> PrivateBucket:
    """The bucket `name` and its controls, named `<name>-public-access`, `-ownership`,
    `-versioning`, `-encryption` and `-policy`, children of the bucket."""
    bucket = aws.s3.Bucket(name, force_destroy=False, tags=dict(tags),
                           opts=pulumi.ResourceOptions(parent=parent, protect=protect))
    child = pulumi.ResourceOptions(parent=bucket)
    public_access = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
        ignore_public_acls=True, restrict_public_buckets=True, opts=child)
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership", bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child)
    versioning = aws.s3.BucketVersioning(
        f"{name}-versioning", bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        opts=child)
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption", bucket=bucket.id,
        rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=aws.s3.
            BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="aws:kms", kms_master_key_id=key_arn),
            bucket_key_enabled=True)],
        opts=child)
    policy = aws.s3.BucketPolicy(
        f"{name}-policy", bucket=bucket.id,
        policy=pulumi.Output.all(bucket.arn, key_arn).apply(
            lambda values: kms_only_bucket_policy(values[0], values[1])),
        # A bucket policy is public-access-checked: the block must be in place first.
        opts=pulumi.ResourceOptions(parent=bucket, depends_on=[public_access]))
    return PrivateBucket(bucket, versioning, encryption, policy)
