"""Every bucket encrypts by default with a customer managed KMS key, named by its ARN (§4.2).

SSE-S3 (`AES256`) is decrypted for anyone S3 lets read the object; with a customer managed key
(SSE-KMS, or DSSE-KMS) reading also needs kms:Decrypt under the key policy, which the key's owner
writes and CloudTrail logs. Each bucket needs an `aws.s3.BucketServerSideEncryptionConfiguration`
(or `...V2`; without one, the bucket's inline configuration) whose every rule applies
`aws:kms` / `aws:kms:dsse` with `kmsMasterKeyId` set to a key ARN or id: not empty (the AWS
managed `aws/s3` key, whose policy lets every principal of the account use it through S3), not
an alias (whoever can move the alias chooses the key the next object is encrypted under). A key
created in the same update (unknown in a preview) counts as set.

One exception, in one shape: an access-log destination that only the log-delivery services can
write (`ztpolicy.buckets.log_delivery_only`) may use SSE-S3 (`AES256`) and nothing weaker, because
S3 server access logs are delivered only to SSE-S3 buckets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import (
    ENCRYPTION,
    KMS_ALGORITHMS,
    bucket_findings,
    default_encryptions,
    encryption_key,
    log_delivery_only,
)
from ztpolicy.graph import UNKNOWN, known_field
from ztpolicy.rule import Finding, Resource, Rule


def key_problem(key: Any) -> str | None:
    """Why a `kmsMasterKeyId` does not name one customer managed key; None when it does."""
    if key is UNKNOWN:
        return None
    if not isinstance(key, str) or not key:
        return "names no key, so S3 uses the AWS managed aws/s3 key, which every principal of the " \
               "account may use through S3"
    if key.startswith("alias/") or ":alias/" in key:
        if key.endswith("alias/aws/s3"):
            return f"names the AWS managed key {key}, which every principal of the account may use " \
                   "through S3"
        return f"names the alias {key}: whoever moves the alias chooses the key; give the key ARN"
    return None


def block_problems(blocks: list[Any] | None, where: str) -> list[str]:
    if blocks is None or not blocks:
        return [f"{where} sets no default encryption: objects get SSE-S3 (AES256), which anyone S3 "
                "lets read the object can read, with no key policy in the way"]
    problems = []
    for block in blocks:
        if block is UNKNOWN:
            continue
        algorithm = known_field(block, "sseAlgorithm")
        if algorithm is UNKNOWN:
            continue
        if algorithm not in KMS_ALGORITHMS:
            problems.append(f"{where} encrypts by default with {algorithm!r}, not a customer managed "
                            "KMS key (aws:kms): anyone S3 lets read an object reads it, with no key "
                            "policy in the way")
        elif (problem := key_problem(encryption_key(block))) is not None:
            problems.append(f"{where}'s default encryption {problem}")
    return problems


def _problems(configuration: Resource, bucket: Resource, resources: Sequence[Resource]) -> list[str]:
    blocks = default_encryptions(configuration)
    if blocks and all(block is not UNKNOWN and known_field(block, "sseAlgorithm") == "AES256"
                      for block in blocks):
        log_delivery = log_delivery_only(resources, bucket)
        if log_delivery is None:
            return []  # its policy is not known yet (a first preview): decided once it is
        if log_delivery:
            return []  # an access-log destination: SSE-S3 is the only encryption S3 delivers logs to
    return block_problems(blocks, f"bucket {bucket.name} (encryption {configuration.name})")


def _inline_problems(bucket: Resource) -> list[str] | None:
    blocks = default_encryptions(bucket)
    return None if blocks is None else block_problems(blocks, f"bucket {bucket.name}")


def s3_bucket_encrypted_with_cmk(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    return bucket_findings(
        resources, ENCRYPTION, _problems,
        lambda bucket: f"bucket {bucket.name} declares no default encryption: S3 applies SSE-S3 "
                       "(AES256), readable by anyone S3 lets read an object; use a customer "
                       "managed KMS key",
        _inline_problems)


RULE = Rule(
    name="s3-bucket-encrypted-with-cmk",
    description="Every S3 bucket must encrypt by default with a customer managed KMS key named by "
                "its ARN (SSE-KMS), not SSE-S3, the aws/s3 key or an alias.",
    section="4.2",
    severity=Severity.HIGH,
    remediation="Create buckets with components.buckets.private_bucket(key_arn=...), or add an "
                "aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm=\"aws:kms\" and "
                "kms_master_key_id set to the key's ARN.",
    stack_check=s3_bucket_encrypted_with_cmk,
)
