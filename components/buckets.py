"""The project's private bucket: one definition shared by every component that stores objects.

Public access blocked, ACLs disabled (bucket owner enforced), versioned, encrypted by default
with a customer managed key, and a policy that refuses plain HTTP and any object not encrypted
with that key. Given an access-log bucket, S3 server access logs of the bucket go there.

The access-log bucket (`access_log_bucket`) is the one exception to the customer managed key:
S3 delivers server access logs only to a target whose default encryption is SSE-S3 (S3 User
Guide, "Enabling Amazon S3 server access logging": SSE-KMS targets are not supported), and Elastic
Load Balancing writes access logs with the log delivery service, which a CMK would have to admit
in its key policy. It is private, versioned, TLS only, and written only by those two services for
this account: `logging.s3.amazonaws.com` for the named source buckets, `delivery.logs.amazonaws.com`
for this account's load balancers.
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


ELB_LOG_PREFIX = "elb"  # load balancer access logs: <prefix>/AWSLogs/<account>/...
S3_LOG_PREFIX = "s3/"  # server access logs: s3/<source bucket>/...


_BucketBase = tuple[aws.s3.Bucket, aws.s3.BucketPublicAccessBlock, aws.s3.BucketVersioning]


def closed_versioned_bucket(name: str, *, tags: Mapping[str, str], protect: bool,
                             parent: pulumi.Resource,
                             bucket_name: pulumi.Input[str] | None = None,
                             object_lock_enabled: bool = False,
                             retain_on_delete: bool = False) -> _BucketBase:
    """What every bucket of the stack has: public access blocked (all four settings), ACLs off
    (BucketOwnerEnforced) and versioning on, as `<name>-public-access`, `-ownership` and
    `-versioning`, children of the bucket; never force-destroyed. `object_lock_enabled`: S3
    Object Lock, which can only be turned on when the bucket is created (the provider replaces
    the bucket to change it); its retention is the caller's (`BucketObjectLockConfiguration`).
    `retain_on_delete`: `pulumi destroy` leaves the bucket in AWS (an archive under retention)."""
    bucket = aws.s3.Bucket(name, bucket=bucket_name, force_destroy=False, tags=dict(tags),
                           object_lock_enabled=object_lock_enabled or None,
                           opts=pulumi.ResourceOptions(parent=parent, protect=protect,
                                                       retain_on_delete=retain_on_delete or None))
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
    return bucket, public_access, versioning


# The services that deliver access logs into the access-log bucket: ELB (delivery.logs) and S3
# server access logging.
LOG_DELIVERY_SERVICES = ("delivery.logs.amazonaws.com", "logging.s3.amazonaws.com")


def access_log_bucket_policy(*, partition: str, region: str, account_id: str, bucket_arn: str,
                             source_bucket_arns: list[str]) -> str:
    """TLS only; log delivery for this account only (aws:SourceAccount, aws:SourceArn), each
    service under its own prefix. Statements as the ELB guide ("Enable access logs for your
    Network Load Balancer") and the S3 User Guide ("Permissions for log delivery") give them."""
    statements: list[dict[str, Any]] = [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
         "Resource": [bucket_arn, f"{bucket_arn}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        # Only the log-delivery services write here, whatever IAM allows anyone else: the bucket
        # must use SSE-S3 (S3 server access logs accept no other default encryption), so it
        # must never hold anything but logs. aws:PrincipalServiceName is set only when a service
        # principal calls (IAM User Guide, global condition keys); absent for a role, the
        # negated operator holds and the Deny applies. s3:ReplicateObject too: replication
        # writes objects with the replication role's s3:ReplicateObject, not s3:PutObject (S3
        # User Guide, "Setting up permissions for live replication"), so a replication rule of
        # another bucket pointed here would otherwise fill it with SSE-S3 copies.
        {"Sid": "DenyWritesButLogDelivery", "Effect": "Deny", "Principal": {"AWS": "*"},
         "Action": ["s3:PutObject", "s3:ReplicateObject"], "Resource": f"{bucket_arn}/*",
         "Condition": {"StringNotEquals": {"aws:PrincipalServiceName": list(LOG_DELIVERY_SERVICES)}}},
        {"Sid": "ElbLogDeliveryAclCheck", "Effect": "Allow",
         "Principal": {"Service": "delivery.logs.amazonaws.com"}, "Action": "s3:GetBucketAcl",
         "Resource": bucket_arn,
         "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                       "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"}}},
        {"Sid": "ElbLogDeliveryWrite", "Effect": "Allow",
         "Principal": {"Service": "delivery.logs.amazonaws.com"}, "Action": "s3:PutObject",
         "Resource": f"{bucket_arn}/{ELB_LOG_PREFIX}/AWSLogs/{account_id}/*",
         "Condition": {"StringEquals": {"aws:SourceAccount": account_id,
                                        "s3:x-amz-acl": "bucket-owner-full-control"},
                       "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"}}},
    ]
    if source_bucket_arns:
        statements.append(
            {"Sid": "S3ServerAccessLogDelivery", "Effect": "Allow",
             "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
             "Resource": f"{bucket_arn}/{S3_LOG_PREFIX}*",
             "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                           "ArnLike": {"aws:SourceArn": sorted(source_bucket_arns)}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


@dataclass(frozen=True)
class AccessLogBucket:
    bucket: aws.s3.Bucket
    policy: aws.s3.BucketPolicy


def access_log_bucket(name: str, *, partition: str, region: str, account_id: pulumi.Input[str],
                      source_bucket_arns: list[pulumi.Input[str]], tags: Mapping[str, str],
                      protect: bool, parent: pulumi.Resource,
                      bucket_name: pulumi.Input[str] | None = None) -> AccessLogBucket:
    """The bucket `name` for access logs (see the module's docstring), with `<name>-public-access`,
    `-ownership`, `-versioning`, `-encryption` (SSE-S3) and `-policy`, children of the bucket.
    source_bucket_arns: the buckets whose server access logs it receives (under s3/)."""
    bucket, public_access, _ = closed_versioned_bucket(name, tags=tags, protect=protect, parent=parent,
                                                       bucket_name=bucket_name)
    child = pulumi.ResourceOptions(parent=bucket)
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption", bucket=bucket.id,
        rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=aws.s3.
            BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"))],
        opts=child)
    policy = aws.s3.BucketPolicy(
        f"{name}-policy", bucket=bucket.id,
        policy=pulumi.Output.all(bucket.arn, account_id, *source_bucket_arns).apply(
            lambda values: access_log_bucket_policy(
                partition=partition, region=region, account_id=values[1], bucket_arn=values[0],
                source_bucket_arns=list(values[2:]))),
        opts=pulumi.ResourceOptions(parent=bucket, depends_on=[public_access]))
    return AccessLogBucket(bucket, policy)


def log_to(name: str, *, bucket: aws.s3.Bucket, log_bucket: aws.s3.Bucket,
           after: pulumi.Resource) -> aws.s3.BucketLogging:
    """S3 server access logs of `bucket` into `log_bucket` under s3/<bucket name>/; created after
    `after` (the log bucket's policy, which admits the logging service)."""
    return aws.s3.BucketLogging(
        name, bucket=bucket.id, target_bucket=log_bucket.id,
        target_prefix=bucket.bucket.apply(lambda source: f"{S3_LOG_PREFIX}{source}/"),
        opts=pulumi.ResourceOptions(parent=bucket, depends_on=[after]))


@dataclass(frozen=True)
class PrivateBucket:
    bucket: aws.s3.Bucket
    versioning: aws.s3.BucketVersioning
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    policy: aws.s3.BucketPolicy


def private_bucket(name: str, *, key_arn: pulumi.Input[str], tags: Mapping[str, str], protect: bool,
                   parent: pulumi.Resource,
                   bucket_name: pulumi.Input[str] | None = None) -> PrivateBucket:
    """The bucket `name` and its controls, named `<name>-public-access`, `-ownership`,
    `-versioning`, `-encryption` and `-policy`, children of the bucket. `bucket_name`: the
    bucket's name in S3 when it must be known in advance (default: Pulumi's auto-name)."""
    bucket, public_access, versioning = closed_versioned_bucket(name, tags=tags, protect=protect,
                                                                 parent=parent, bucket_name=bucket_name)
    child = pulumi.ResourceOptions(parent=bucket)
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
