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

A value not known yet in a preview (a key created in the same update) counts as set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field
from ztpolicy.rule import Resource, Rule

FIREHOSE_STREAM = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
# destination -> its configuration block, as the provider names them in the state.
_BLOCKS = {"http_endpoint": "httpEndpointConfiguration", "splunk": "splunkConfiguration",
           "opensearch": "opensearchConfiguration", "elasticsearch": "elasticsearchConfiguration",
           "opensearchserverless": "opensearchserverlessConfiguration",
           "redshift": "redshiftConfiguration", "snowflake": "snowflakeConfiguration",
           "iceberg": "icebergConfiguration"}


def _missing(value: Any) -> bool:
    return value is not UNKNOWN and not value


def firehose_encrypted_with_cmk(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
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
    destination = known(resource, "destination")
    if destination is UNKNOWN:
        return messages
    if destination == "extended_s3":
        block = known(resource, "extendedS3Configuration")
        if block is not UNKNOWN and (_missing(known_field(block, "kmsKeyArn"))
                                     or _missing(known_field(block, "errorOutputPrefix"))):
            messages.append(f"Firehose stream {resource.name} writes its bucket without a kmsKeyArn or "
                            "without an errorOutputPrefix for the records it fails to transform")
        return messages
    block = known(resource, _BLOCKS.get(str(destination), ""))
    if block is UNKNOWN:
        return messages
    backup = known_field(block, "s3Configuration")
    mode = known_field(block, "s3BackupMode")
    no_backup = backup is not UNKNOWN and (
        not isinstance(backup, Mapping) or _missing(known_field(backup, "bucketArn"))
        or _missing(known_field(backup, "kmsKeyArn")))
    if no_backup or _missing(mode):
        messages.append(f"Firehose stream {resource.name} ({destination}) has no encrypted backup of "
                        "the records it fails to deliver (s3Configuration with bucketArn and "
                        "kmsKeyArn, and s3BackupMode): what the SIEM refuses would be lost")
    return messages


RULE = Rule(
    name="firehose-encrypted-with-cmk",
    description="Firehose streams must be encrypted with a customer managed key and back up failed "
                "records to an encrypted bucket.",
    control="SIEM stream",
    severity=Severity.HIGH,
    remediation="Build the stream with components/siem_stream.py's SiemStream, or set "
                "server_side_encryption={enabled: True, key_type: 'CUSTOMER_MANAGED_CMK', key_arn: "
                "<logs key>} and an s3_configuration with kms_key_arn for failed records.",
    resource_check=firehose_encrypted_with_cmk,
    resource_types=frozenset({FIREHOSE_STREAM}),
)
