"""Every bucket encrypts by default with a customer managed KMS key, named by its ARN (control:
encryption and key management).

SSE-S3 (`AES256`) is decrypted for anyone S3 lets read the object; with a customer managed key
(SSE-KMS, or DSSE-KMS) reading also needs kms:Decrypt under the key policy, which the key's owner
writes and CloudTrail logs. Each bucket needs an `aws.s3.BucketServerSideEncryptionConfiguration`
(or `...V2`; without one, the bucket's inline configuration) whose every rule applies
`aws:kms` / `aws:kms:dsse` with `kmsMasterKeyId` set to a key ARN or id: not empty (the AWS
managed `aws/s3` key, whose policy lets every principal of the account use it through S3), not
an alias (whoever can move the alias chooses the key the next object is encrypted under). A key
created in the same update (unknown in a preview) counts as set.

The key must also be one this stack manages: an `aws.kms.Key` (or `ReplicaKey`) of the stack,
matched by its ARN or id when the value is known, by the property dependency when it is not
(a key created in the same update), or an ARN listed in this rule's `trustedBucketKeyArns`
(default none: a key managed elsewhere, whose policy this pack never sees, is a reviewed,
named exception). Any other ARN is a finding, the AWS managed aws/s3 key given by its ARN
included, and a key of an account other than the one the stack's keys live in always is,
listed or not: whoever administers that account decides who decrypts the bucket.

A split deployment's workload (stack key `layer: workload`, docs/deploying.md) holds no key: its
buckets use the keys of its key layer, whose ARNs it reads through a stack reference. There a key
also counts as the stack's when it is one of the `keyArns` outputs of the
`pulumi:pulumi:StackReference` whose stack is the workload's configured `keyLayerStack` (the
engine records the reference, with the outputs it read, among the workload's resources). The stack
named in the stack config decides, not whichever reference the program makes: a reference to
another stack (another environment's keys, an insider's own stack) does not count, and nor does
any reference in a stack whose config does not say it is a workload. What the key layer's
policies, rotation and deletion are is checked in the key layer's own stack.

One exception, in one shape: an access-log destination that only the log-delivery services can
write, and that the stack actually delivers access logs to and writes nothing else into
(`ztpolicy.buckets.log_delivery_only`), may use SSE-S3 (`AES256`) and nothing weaker, because
S3 server access logs are delivered only to SSE-S3 buckets. And the same shape with CloudTrail as
the only writer, for an audit trail's archive (`ztpolicy.buckets.cloudtrail_archive_only`): a trail
of the stack names it and encrypts every log file with its own KMS key, while CloudTrail writes the
digest files with SSE-S3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import (
    ENCRYPTION,
    KMS_ALGORITHMS,
    bucket_findings,
    cloudtrail_archive_only,
    default_encryptions,
    encryption_key,
    log_delivery_only,
)
from ztpolicy.graph import UNKNOWN, known, known_field, names_key, of_type
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.kms.kms_key_policy_least_privilege import KEY, REPLICA_KEY
from ztpolicy.stack import stack_settings

STACK_REFERENCE = "pulumi:pulumi:StackReference"

# The property of each encryption holder that carries the key; its dependencies stand in for an
# unknown key.
_KEY_PROPERTY = {"aws:s3/bucket:Bucket": "serverSideEncryptionConfiguration",
                 "aws:s3/bucketV2:BucketV2": "serverSideEncryptionConfigurations",
                 "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": "serverSideEncryption"}


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


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" and parts[4] else None


def key_layer_arns(resources: Sequence[Resource], config: Mapping[str, Any]) -> set[str] | None:
    """The key ARNs a workload reads from its configured key layer (`keyArns` of the stack
    reference to `keyLayerStack`); empty for any other stack; None when not known yet."""
    settings = stack_settings(config)
    if not settings.is_workload or not settings.key_layer_stack:
        return set()
    arns: set[str] = set()
    for reference in of_type(resources, STACK_REFERENCE):
        if known(reference, "name") != settings.key_layer_stack:
            continue
        outputs = known(reference, "outputs")
        key_arns = known_field(outputs, "keyArns")
        if key_arns is UNKNOWN:
            return None
        if isinstance(key_arns, Mapping):
            for purpose in list(key_arns):
                if isinstance(arn := known_field(key_arns, purpose), str) and arn:
                    arns.add(arn)
    return arns


def stack_key_problem(key: Any, holder: Resource, resources: Sequence[Resource],
                      config: Mapping[str, Any]) -> str | None:
    """Why the key `holder` encrypts under is not a key this stack manages (or trusts by name)."""
    keys = of_type(resources, KEY, REPLICA_KEY)
    if key is UNKNOWN:
        dependencies = holder.property_dependencies.get(_KEY_PROPERTY.get(holder.type, "rules"), ())
        if not dependencies or any(k.urn in dependencies for k in keys):
            return None  # a key of this update, or nothing recorded to tell: decided when known
        return "names a key computed from no KMS key of this stack"
    if not isinstance(key, str) or any(names_key(key, k) for k in keys):
        return None
    accounts = {account for k in keys if isinstance(arn := known(k, "arn"), str)
                and (account := _account_of(arn)) is not None}
    account = _account_of(key) if key.startswith("arn:") else None
    if account is not None and accounts and account not in accounts:
        return (f"names {key}, a key of account {account}, not of this stack's account "
                f"({', '.join(sorted(accounts))}): whoever administers that account decides who "
                "decrypts the bucket")
    if key in {str(arn) for arn in config.get("trustedBucketKeyArns") or []}:
        return None
    layer_arns = key_layer_arns(resources, config)
    if layer_arns is None or key in layer_arns:
        return None  # a key of the workload's key layer (or its outputs are not read yet)
    if any(known(k, "arn") is UNKNOWN or known(k, "id") is UNKNOWN for k in keys) and \
            any(k.urn in holder.property_dependencies.get(_KEY_PROPERTY.get(holder.type, "rules"), ())
                for k in keys):
        return None  # linked to a key whose id is not known yet
    return (f"names {key}, which is no KMS key of this stack: its policy, rotation and deletion "
            "are out of this pack's sight (the AWS managed aws/s3 key, or a key managed "
            "elsewhere); use a key of the stack, or list the ARN in trustedBucketKeyArns")


def block_problems(blocks: list[Any] | None, where: str, holder: Resource | None = None,
                   resources: Sequence[Resource] = (),
                   config: Mapping[str, Any] | None = None) -> list[str]:
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
        else:
            key = encryption_key(block)
            problem = key_problem(key)
            if problem is None and holder is not None:
                problem = stack_key_problem(key, holder, resources, config or {})
            if problem is not None:
                problems.append(f"{where}'s default encryption {problem}")
    return problems


def s3_bucket_encrypted_with_cmk(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    def problems(configuration: Resource, bucket: Resource, _resources: Sequence[Resource]) -> list[str]:
        blocks = default_encryptions(configuration)
        if blocks and all(block is not UNKNOWN and known_field(block, "sseAlgorithm") == "AES256"
                          for block in blocks):
            exceptions = (log_delivery_only(resources, bucket), cloudtrail_archive_only(resources, bucket))
            if any(exceptions):
                # An access-log destination (SSE-S3 is the only encryption S3 delivers logs to), or
                # an audit trail's archive (each log file SSE-KMS, the digests SSE-S3).
                return []
            if None in exceptions:
                return []  # its policy is not known yet (a first preview): decided once it is
        return block_problems(blocks, f"bucket {bucket.name} (encryption {configuration.name})",
                              configuration, resources, config)

    def inline_problems(bucket: Resource) -> list[str] | None:
        blocks = default_encryptions(bucket)
        return None if blocks is None else block_problems(blocks, f"bucket {bucket.name}", bucket,
                                                          resources, config)

    return bucket_findings(
        resources, ENCRYPTION, problems,
        lambda bucket: f"bucket {bucket.name} declares no default encryption: S3 applies SSE-S3 "
                       "(AES256), readable by anyone S3 lets read an object; use a customer "
                       "managed KMS key",
        inline_problems)


RULE = Rule(
    name="s3-bucket-encrypted-with-cmk",
    description="Every S3 bucket must encrypt by default with a customer managed KMS key of the "
                "stack (or trustedBucketKeyArns) named by its ARN (SSE-KMS), not SSE-S3, the "
                "aws/s3 key, an alias or a key of another account.",
    control="private buckets",
    severity=Severity.HIGH,
    remediation="Create buckets with components.buckets.private_bucket(key_arn=...), or add an "
                "aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm=\"aws:kms\" and "
                "kms_master_key_id set to the key's ARN.",
    stack_check=s3_bucket_encrypted_with_cmk,
    config={"trustedBucketKeyArns": {
        "type": "array", "items": {"type": "string", "pattern": "^arn:[^:]+:kms:[^:]*:[0-9]{12}:key/.+$"},
        "default": [],
        "description": "ARNs of KMS keys managed outside this stack that buckets may encrypt "
                       "under (keys of another account are refused even when listed)."}},
)
