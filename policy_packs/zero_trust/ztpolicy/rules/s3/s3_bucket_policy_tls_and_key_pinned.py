"""Every bucket's policy refuses plain HTTP and any object not encrypted with the bucket's key
(controls: encryption and key management, secure API gateway).

Default encryption only applies when a writer asks for nothing: a writer may still send SSE-S3 or
another KMS key (one it can decrypt itself) in the request. So the bucket policy (one
`aws.s3.BucketPolicy`, else the bucket's inline `policy`) must hold, for every principal (`*`),
in the shape components/buckets.py `kms_only_bucket_policy` writes:

- a Deny of `s3:*` on the bucket and its objects whose only condition is
  `Bool aws:SecureTransport = false`;
- a Deny of `s3:PutObject` on the objects whose only condition is `StringNotEquals[IfExists]
  s3:x-amz-server-side-encryption` with `aws:kms` (or `aws:kms:dsse`);
- a separate Deny of `s3:PutObject` on the objects whose only condition is `StringNotEquals[IfExists]
  s3:x-amz-server-side-encryption-aws-kms-key-id` with the ARN of the key of the bucket's default
  encryption, and nothing else. The keys of one condition block are ANDed, so one statement with
  both keys would deny only a request wrong in both (SSE-KMS under another key would pass).
  Negated operators hold when the key is absent, so a request naming no key is denied too.

S3 compares that condition key with the key ARN a request names (S3 User Guide, "Bucket policy
examples using condition keys"; Service Authorization Reference, Amazon S3 condition keys). A Deny
with `NotPrincipal`, `NotAction`, `NotResource` or a further condition is narrower and does not
count. A policy not known yet (a real preview) is checked when it is.

An access-log destination that only the log-delivery services can write
(`ztpolicy.buckets.log_delivery_only`: a Deny of PutObject to everyone but them) needs the TLS
Deny only: its objects are SSE-S3 by necessity (S3 server access logs), and nobody else can write.
So does an audit trail's archive that only CloudTrail can write (`cloudtrail_archive_only`): the
trail asks for SSE-KMS under its key on every log file itself, and writes digests with SSE-S3.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import (
    BUCKET_POLICY,
    KMS_ALGORITHMS,
    bucket_findings,
    bucket_keys,
    cloudtrail_archive_only,
    log_delivery_only,
)
from ztpolicy.graph import UNKNOWN, as_list, key_id_of, known
from ztpolicy.rule import Finding, Resource, Rule

TLS_KEY = "aws:securetransport"
SSE_KEY = "s3:x-amz-server-side-encryption"
SSE_KEY_ID = "s3:x-amz-server-side-encryption-aws-kms-key-id"
_UNLESS = {"stringnotequals", "stringnotequalsifexists"}


def _for_everyone(statement: Mapping[str, Any]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in [str(p) for p in as_list(principal.get("AWS"))]


def _unnarrowed_deny(statement: Mapping[str, Any]) -> bool:
    return (statement.get("Effect") == "Deny" and _for_everyone(statement)
            and not {"NotPrincipal", "NotAction", "NotResource"} & set(statement))


def _covers(patterns: Any, value: str) -> bool:
    return any(fnmatchcase(value.lower(), str(p).lower()) for p in as_list(patterns))


def _single_condition(statement: Mapping[str, Any]) -> tuple[str, str, list[str]] | None:
    """(operator, key, values) of a condition with exactly one operator and one key, lower-cased."""
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping) or len(condition) != 1:
        return None
    [(operator, block)] = condition.items()
    if not isinstance(block, Mapping) or len(block) != 1:
        return None
    [(key, values)] = block.items()
    return str(operator).lower(), str(key).lower(), [str(v) for v in as_list(values)]


def _denies_insecure_transport(statement: Mapping[str, Any], bucket_arn: Any) -> bool:
    condition = _single_condition(statement)
    if condition is None or condition[:2] != ("bool", TLS_KEY) or \
            [v.lower() for v in condition[2]] != ["false"]:
        return False
    if not _covers(statement.get("Action"), "s3:*"):
        return False
    if not isinstance(bucket_arn, str) or not bucket_arn:
        return True  # the bucket's ARN is not known yet: the rest of the shape is checked
    resources = statement.get("Resource")
    return _covers(resources, bucket_arn) and _covers(resources, f"{bucket_arn}/any-object")


def _put_object_unless(statement: Mapping[str, Any], key: str, bucket_arn: Any) -> list[str] | None:
    """The values of a Deny of PutObject whose only condition is "`key` is none of these"."""
    condition = _single_condition(statement)
    if condition is None or condition[0] not in _UNLESS or condition[1] != key:
        return None
    if not _covers(statement.get("Action"), "s3:PutObject"):
        return None
    if isinstance(bucket_arn, str) and bucket_arn and \
            not _covers(statement.get("Resource"), f"{bucket_arn}/any-object"):
        return None
    return condition[2]


def policy_problems(document: Any, label: str, bucket_arn: Any, keys: list[Any],
                    log_delivery: bool = False) -> list[str]:
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError as error:
        return [f"{label} is not valid JSON ({error.msg})"]
    if not isinstance(parsed, Mapping):
        return [f"{label} is not a JSON object"]
    denies = [s for s in as_list(parsed.get("Statement")) if isinstance(s, Mapping) and _unnarrowed_deny(s)]
    problems = []
    if not any(_denies_insecure_transport(s, bucket_arn) for s in denies):
        problems.append(f"{label} does not deny s3:* on the bucket and its objects to every principal "
                        "when aws:SecureTransport is false: requests over plain HTTP are served")
    if log_delivery:
        return problems
    algorithms = [values for s in denies if (values := _put_object_unless(s, SSE_KEY, bucket_arn))]
    if not any(set(values) <= KMS_ALGORITHMS for values in algorithms):
        problems.append(f"{label} does not deny s3:PutObject to every principal unless "
                        f"{SSE_KEY} is aws:kms: a writer can store objects under SSE-S3")
    pinned = [values for s in denies if (values := _put_object_unless(s, SSE_KEY_ID, bucket_arn))]
    known_keys = {key_id_of(key) for key in keys if isinstance(key, str) and key}
    if not pinned:
        problems.append(f"{label} does not deny s3:PutObject to every principal unless {SSE_KEY_ID} "
                        "is the bucket's key ARN: a writer can encrypt under a key it controls")
    for values in pinned:
        not_arns = [v for v in values if not (v.startswith("arn:") and ":key/" in v)]
        if not_arns:
            problems.append(f"{label} pins {SSE_KEY_ID} to {not_arns}: S3 compares it with the key "
                            "ARN a request names; give the key ARN")
        elif known_keys and {key_id_of(v) for v in values} != known_keys:
            problems.append(f"{label} pins {SSE_KEY_ID} to {values}, but the bucket encrypts by "
                            f"default under {sorted(str(k) for k in keys)}: pin that key, and only it")
    return problems


def _problems(policy: Resource, bucket: Resource, resources: Sequence[Resource]) -> list[str]:
    document = known(policy, "policy")
    if document is UNKNOWN:
        return []
    label = f"bucket {bucket.name}'s policy {policy.name}"
    if not document:
        return [f"{label} is empty"]
    return policy_problems(document, label, known(bucket, "arn"), bucket_keys(resources, bucket),
                           bool(log_delivery_only(resources, bucket)
                                or cloudtrail_archive_only(resources, bucket)))


def _inline_problems(bucket: Resource, resources: Sequence[Resource]) -> list[str] | None:
    document = known(bucket, "policy")
    if document is UNKNOWN:
        return []
    if not document:
        return None
    return policy_problems(document, f"bucket {bucket.name}'s inline policy", known(bucket, "arn"),
                           bucket_keys(resources, bucket))


def s3_bucket_policy_tls_and_key_pinned(resources: Sequence[Resource],
                                        _config: Mapping[str, Any]) -> list[Finding]:
    return bucket_findings(
        resources, (BUCKET_POLICY,), _problems,
        lambda bucket: f"bucket {bucket.name} has no bucket policy: plain HTTP is served and a "
                       "writer can store objects under SSE-S3 or a key of its own",
        lambda bucket: _inline_problems(bucket, resources))


RULE = Rule(
    name="s3-bucket-policy-tls-and-key-pinned",
    description="Every S3 bucket's policy must deny plain HTTP and any PutObject not encrypted "
                "with SSE-KMS under the bucket's own key.",
    control="private buckets",
    severity=Severity.HIGH,
    remediation="Create buckets with components.buckets.private_bucket, whose policy is "
                "kms_only_bucket_policy(bucket_arn, key_arn): Deny s3:* when aws:SecureTransport is "
                "false; Deny s3:PutObject unless s3:x-amz-server-side-encryption is aws:kms; Deny "
                "s3:PutObject unless s3:x-amz-server-side-encryption-aws-kms-key-id is the key ARN.",
    stack_check=s3_bucket_policy_tls_and_key_pinned,
)
