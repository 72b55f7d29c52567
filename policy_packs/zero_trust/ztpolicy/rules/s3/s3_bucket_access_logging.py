"""Buckets that hold data keep S3 server access logs (control: logs that last).

Who read or wrote which object of the training data or the model weights must be on record, from
S3 itself and beside CloudTrail's data events. Every bucket needs an `aws.s3.BucketLogging` (or
`BucketLoggingV2`) naming it as its `bucket`, with a target bucket, or, without one, the bucket's
own `logging` block (`aws.s3.Bucket`) / `loggings[]` (`aws.s3.BucketV2`) with a `targetBucket`.

Not held to it:

- a bucket this stack delivers access logs to (`ztpolicy.buckets.log_destination`): logging its
  deliveries would log each delivery again, and a bucket that logs into itself never settles;
- a bucket whose `data-classification` tag is one of `exemptClassifications` (default `public`
  and `internal`: what the stack publishes anyway, like the API's truststore of public CA
  certificates). A bucket without the tag is held to the rule: the exemption is asked for, never
  assumed.

Suppressible, with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import BUCKET_LOGGING, BUCKETS, log_destination
from ztpolicy.graph import UNKNOWN, as_list, known, known_field, known_items, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

CLASSIFICATION_TAG = "data-classification"
DEFAULT_EXEMPT = ["public", "internal"]


def _classification(bucket: Resource) -> Any:
    for prop in ("tags", "tagsAll"):
        tags = known(bucket, prop)
        if isinstance(tags, Mapping) and isinstance(tags.get(CLASSIFICATION_TAG), str):
            return tags[CLASSIFICATION_TAG]
    return None


def _names_a_target(target: Any) -> bool:
    return target is UNKNOWN or (isinstance(target, str) and bool(target))


def _targets(block: Any) -> bool:
    """Does a bucket's inline logging block name a target bucket?"""
    return _names_a_target(known_field(block, "targetBucket"))


def _inline_logging(bucket: Resource) -> bool:
    blocks = ([known(bucket, "logging")] if bucket.type == BUCKETS[0]
              else known_items(known(bucket, "loggings")))
    return any(block is UNKNOWN or (isinstance(block, Mapping) and _targets(block)) for block in blocks)


def s3_bucket_access_logging(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    exempt = {str(value).strip().lower() for value in as_list(config.get("exemptClassifications",
                                                                         DEFAULT_EXEMPT))}
    loggings = of_type(resources, *BUCKET_LOGGING)
    findings: list[Finding] = []
    for bucket in of_type(resources, *BUCKETS):
        classification = _classification(bucket)
        if isinstance(classification, str) and classification.strip().lower() in exempt:
            continue
        if log_destination(resources, bucket):
            continue
        linked = [logging for logging in loggings if refers_to(logging, "bucket", bucket)]
        if linked and any(_names_a_target(known(logging, "targetBucket")) for logging in linked):
            continue
        if not linked and _inline_logging(bucket):
            continue
        label = f"{CLASSIFICATION_TAG}={classification}" if classification is not None else \
            f"no {CLASSIFICATION_TAG} tag"
        findings.append(Finding(bucket.urn, (
            f"bucket {bucket.name} ({label}) keeps no S3 server access logs: who read or wrote "
            "which object is not on record; add an aws.s3.BucketLogging into an access-log bucket")))
    return findings


RULE = Rule(
    name="s3-bucket-access-logging",
    description="Every S3 bucket that holds data (not an access-log destination, not tagged "
                "data-classification public or internal) must write S3 server access logs.",
    control="logs that last",
    severity=Severity.MEDIUM,
    remediation="Log into an access-log bucket with components.buckets.access_log_bucket and "
                "log_to, as TrainingDataBucket and EnclaveInferenceFleet do for their buckets.",
    stack_check=s3_bucket_access_logging,
    config={
        "exemptClassifications": {
            "type": "array", "items": {"type": "string", "minLength": 1}, "default": DEFAULT_EXEMPT,
            "description": "Values of a bucket's data-classification tag that need no server "
                           "access logs (what the stack publishes anyway)."},
    },
)
