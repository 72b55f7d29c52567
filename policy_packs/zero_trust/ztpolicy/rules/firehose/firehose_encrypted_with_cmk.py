"""Firehose streams are encrypted with a customer managed key and back up what fails (controls:
SIEM stream, logs that last).

A Direct PUT stream buffers events at rest inside Firehose, up to the delivery: without
server-side encryption, or with the AWS-owned key (`AWS_OWNED_CMK`, the default), nothing in the
account's key policies decides who reads them, and disabling the stack's logs key does not stop
them. So every `aws.kinesis.FirehoseDeliveryStream` needs `serverSideEncryption` enabled with
`keyType` `CUSTOMER_MANAGED_CMK` and a `keyArn`.

And nothing the SIEM refuses may vanish: each destination keeps what it could not deliver (or
transform) in an S3 bucket encrypted under a key the stack names:

- `extended_s3`: the bucket is the destination itself; it needs a `kmsKeyArn` and an
  `errorOutputPrefix` (where transform failures land);
- `http_endpoint`, `splunk`, `opensearch`: an `s3Configuration` with a `bucketArn` and a
  `kmsKeyArn`, and an `s3BackupMode` (failed records only, or all).

Both keys (the stream's and the backup's) must be keys of this stack, decided as
`s3-bucket-encrypted-with-cmk` decides a bucket's key (`stack_key_problem`): an `aws.kms.Key` of
the stack by ARN or id, or in a workload one of its key layer's `keyArns`; a key of another
account is always a finding. The backup bucket (`bucketArn`) must be a bucket of this stack: the
`arn` of an `aws.s3.Bucket` (or `BucketV2`) it declares, or, while that ARN is not known, the
bucket's name in the ARN or the property dependency Pulumi records. A bucket elsewhere is one
whose policy and lock nobody here checks, and another account's receives the failed events.

A value not known yet in a preview (a key created in the same update) counts as set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import BUCKETS
from ztpolicy.graph import UNKNOWN, known, known_field, of_type
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.s3.s3_bucket_encrypted_with_cmk import stack_key_problem

FIREHOSE_STREAM = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
# destination -> its configuration block, as the provider names them in the state.
_BLOCKS = {"http_endpoint": "httpEndpointConfiguration", "splunk": "splunkConfiguration",
           "opensearch": "opensearchConfiguration", "elasticsearch": "elasticsearchConfiguration",
           "opensearchserverless": "opensearchserverlessConfiguration",
           "redshift": "redshiftConfiguration", "snowflake": "snowflakeConfiguration",
           "iceberg": "icebergConfiguration"}


def _missing(value: Any) -> bool:
    return value is not UNKNOWN and not value


def _names_bucket(value: str, bucket: Resource) -> bool:
    """Does the ARN `value` name `bucket`: its `arn` when known, else its name after `:::`."""
    arn = known(bucket, "arn")
    if isinstance(arn, str) and arn:
        return value == arn
    name = known(bucket, "bucket")
    return ":::" in value and isinstance(name, str) and value.split(":::", 1)[1] == name


def _bucket_problem(value: Any, stream: Resource, prop: str, resources: Sequence[Resource]) -> str | None:
    """Why the backup `bucketArn` (in the block `prop`) is no bucket of this stack, or None."""
    buckets = of_type(resources, *BUCKETS)
    if value is UNKNOWN:
        dependencies = stream.property_dependencies.get(prop, ())
        if not dependencies or any(bucket.urn in dependencies for bucket in buckets):
            return None
        return f"Firehose stream {stream.name} backs up to a bucket computed from no bucket of this stack"
    if not isinstance(value, str) or not value or any(_names_bucket(value, b) for b in buckets):
        return None
    return (f"Firehose stream {stream.name} backs up to {value}, no bucket of this stack: its policy "
            "and lock are out of this pack's sight, and another account's bucket receives the "
            "events the SIEM refused")


def _key_problems(stream: Resource, keys: list[tuple[str, Any]], resources: Sequence[Resource],
                  config: Mapping[str, Any]) -> list[str]:
    problems = []
    for label, key in keys:
        if key is UNKNOWN and label != "serverSideEncryption.keyArn":
            continue  # only the stream's own key has its dependency recorded alone
        if not key:
            continue  # reported as missing
        problem = stack_key_problem(key, stream, resources, config)
        if problem is not None:
            problems.append(f"Firehose stream {stream.name}'s {label} {problem}")
    return problems


def firehose_encrypted_with_cmk(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    return [Finding(stream.urn, message) for stream in of_type(resources, FIREHOSE_STREAM)
            for message in stream_problems(stream, resources, config)]


def stream_problems(resource: Resource, resources: Sequence[Resource],
                    config: Mapping[str, Any]) -> list[str]:
    messages = []
    sse = known(resource, "serverSideEncryption")
    enabled, key_type, key = (known_field(sse, "enabled"), known_field(sse, "keyType"),
                              known_field(sse, "keyArn"))
    if sse is not UNKNOWN and ((enabled is not UNKNOWN and enabled is not True)
                               or (key_type is not UNKNOWN and key_type != "CUSTOMER_MANAGED_CMK")
                               or _missing(key)):
        messages.append(f"Firehose stream {resource.name} is not encrypted with a customer managed key "
                        f"(serverSideEncryption enabled={enabled!r}, keyType={key_type!r}): the events it "
                        "buffers are readable under a key no key policy of the stack controls")
    keys: list[tuple[str, Any]] = [("serverSideEncryption.keyArn", key)]
    destination = known(resource, "destination")
    if destination is UNKNOWN:
        return messages + _key_problems(resource, keys, resources, config)
    if destination == "extended_s3":
        block = known(resource, "extendedS3Configuration")
        if block is not UNKNOWN and (_missing(known_field(block, "kmsKeyArn"))
                                     or _missing(known_field(block, "errorOutputPrefix"))):
            messages.append(f"Firehose stream {resource.name} writes its bucket without a kmsKeyArn or "
                            "without an errorOutputPrefix for the records it fails to transform")
        keys.append(("extendedS3Configuration.kmsKeyArn", known_field(block, "kmsKeyArn")))
        messages += _key_problems(resource, keys, resources, config)
        if problem := _bucket_problem(known_field(block, "bucketArn"), resource,
                                      "extendedS3Configuration", resources):
            messages.append(problem)
        return messages
    prop = _BLOCKS.get(str(destination), "")
    block = known(resource, prop)
    if block is UNKNOWN:
        return messages + _key_problems(resource, keys, resources, config)
    backup = known_field(block, "s3Configuration")
    mode = known_field(block, "s3BackupMode")
    no_backup = backup is not UNKNOWN and (
        not isinstance(backup, Mapping) or _missing(known_field(backup, "bucketArn"))
        or _missing(known_field(backup, "kmsKeyArn")))
    if no_backup or _missing(mode):
        messages.append(f"Firehose stream {resource.name} ({destination}) has no encrypted backup of "
                        "the records it fails to deliver (s3Configuration with bucketArn and "
                        "kmsKeyArn, and s3BackupMode): what the SIEM refuses would be lost")
    if isinstance(backup, Mapping):
        keys.append((f"{prop}.s3Configuration.kmsKeyArn", known_field(backup, "kmsKeyArn")))
        if problem := _bucket_problem(known_field(backup, "bucketArn"), resource, prop, resources):
            messages.append(problem)
    return messages + _key_problems(resource, keys, resources, config)


RULE = Rule(
    name="firehose-encrypted-with-cmk",
    description="Firehose streams must be encrypted with a customer managed key of the stack and "
                "back up failed records to a bucket of the stack under such a key.",
    control="SIEM stream",
    severity=Severity.HIGH,
    remediation="Build the stream with components/siem_stream.py's SiemStream, or set "
                "server_side_encryption={enabled: True, key_type: 'CUSTOMER_MANAGED_CMK', key_arn: "
                "<logs key>} and an s3_configuration with kms_key_arn for failed records.",
    stack_check=firehose_encrypted_with_cmk,
)
