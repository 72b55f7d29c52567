"""firehose-encrypted-with-cmk (control: SIEM stream): a Firehose stream encrypted with a customer
managed key of the stack that backs up what fails to a bucket of the stack passes; the AWS-owned
key, no encryption, a destination without an encrypted backup, a key or a backup bucket not of
the stack (another account's included) is caught; read from inputs (a preview) and outputs (an
export), directly and through the pack's analyzer."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import PACK_DIR
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.firehose.firehose_encrypted_with_cmk import FIREHOSE_STREAM, firehose_encrypted_with_cmk
from ztpolicy.rules.kms.kms_key_policy_least_privilege import KEY as KEY_TYPE

KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET = "arn:aws:s3:::zero-trust-ai-dev-siem-bucket"
SSE = {"enabled": True, "keyType": "CUSTOMER_MANAGED_CMK", "keyArn": KEY}
BACKUP = {"bucketArn": BUCKET, "kmsKeyArn": KEY, "roleArn": "arn:aws:iam::111122223333:role/r",
          "prefix": "failed/"}
# What SiemStream registers (inputs), and the same with what the provider adds (outputs).
S3_INPUTS: dict[str, Any] = {
    "name": "zero-trust-ai-dev-combined-siem", "destination": "extended_s3", "serverSideEncryption": SSE,
    "extendedS3Configuration": {**BACKUP, "prefix": "events/",
                                "errorOutputPrefix": "failed/!{firehose:error-output-type}/"}}
HTTP_INPUTS: dict[str, Any] = {
    "name": "zero-trust-ai-dev-combined-siem", "destination": "http_endpoint", "serverSideEncryption": SSE,
    "httpEndpointConfiguration": {"url": "https://siem.example.com", "s3BackupMode": "FailedDataOnly",
                                  "s3Configuration": BACKUP}}


def outputs(inputs: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(inputs), "id": inputs["name"], "versionId": "1",
            "arn": f"arn:aws:firehose:eu-west-1:111122223333:deliverystream/{inputs['name']}"}


BUCKET_TYPE = "aws:s3/bucket:Bucket"
FOREIGN_KEY = "arn:aws:kms:eu-west-1:999988887777:key/0b1c2d3e-aaaa-bbbb-cccc-000011112222"
FOREIGN_BUCKET = "arn:aws:s3:::someone-elses-bucket"


def stream(props: dict[str, Any], dependencies: Mapping[str, tuple[str, ...]] | None = None) -> Resource:
    return Resource(type=FIREHOSE_STREAM, name="siem-stream",
                    urn=f"urn:pulumi:dev::zero-trust-ai::{FIREHOSE_STREAM}::siem-stream",
                    props=unknown_checking_proxy(props), property_dependencies=dict(dependencies or {}))


def stack_key() -> Resource:
    return Resource(type=KEY_TYPE, name="keys-logs",
                    urn=f"urn:pulumi:dev::zero-trust-ai::{KEY_TYPE}::keys-logs",
                    props={"arn": KEY, "keyId": KEY.rsplit("/", 1)[1], "id": KEY.rsplit("/", 1)[1]})


def stack_bucket(with_arn: bool = True) -> Resource:
    name = BUCKET.split(":::", 1)[1]
    return Resource(type=BUCKET_TYPE, name="siem-bucket",
                    urn=f"urn:pulumi:dev::zero-trust-ai::{BUCKET_TYPE}::siem-bucket",
                    props={"bucket": name, **({"arn": BUCKET, "id": name} if with_arn else {})})


def problems(subject: Resource, *others: Resource) -> list[str]:
    """The rule's messages on the stream, in a stack holding `others` (by default the stack's logs
    key and the backup bucket, as SiemStream builds them)."""
    stack = [*(others or (stack_key(), stack_bucket())), subject]
    return [f.message for f in firehose_encrypted_with_cmk(stack, {})]


def changed(props: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(props)
    target = result
    for key in path[:-1]:
        target = target[key]
    if value is None:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return result


@pytest.mark.parametrize("props", [S3_INPUTS, outputs(S3_INPUTS), HTTP_INPUTS, outputs(HTTP_INPUTS)])
def test_an_encrypted_stream_with_an_encrypted_backup_passes(props: dict[str, Any]) -> None:
    assert problems(stream(props)) == []
    # A preview where the bucket's ARN is not known yet: its name in the ARN decides.
    assert problems(stream(props), stack_key(), stack_bucket(with_arn=False)) == []


@pytest.mark.parametrize("as_outputs", [False, True])
@pytest.mark.parametrize(("path", "value"), [
    (("serverSideEncryption",), None),
    (("serverSideEncryption", "enabled"), False),
    (("serverSideEncryption", "keyType"), "AWS_OWNED_CMK"),
    (("serverSideEncryption", "keyArn"), None),
])
def test_a_stream_not_under_a_customer_managed_key_is_caught(as_outputs: bool, path: tuple[str, ...],
                                                             value: Any) -> None:
    props = changed(S3_INPUTS, path, value)
    [message] = problems(stream(outputs(props) if as_outputs else props))
    assert "not encrypted with a customer managed key" in message


@pytest.mark.parametrize("as_outputs", [False, True])
@pytest.mark.parametrize(("base", "path", "value", "expected"), [
    (S3_INPUTS, ("extendedS3Configuration", "kmsKeyArn"), None, "without a kmsKeyArn"),
    (S3_INPUTS, ("extendedS3Configuration", "errorOutputPrefix"), None, "errorOutputPrefix"),
    (HTTP_INPUTS, ("httpEndpointConfiguration", "s3Configuration", "kmsKeyArn"), None, "no encrypted backup"),
    (HTTP_INPUTS, ("httpEndpointConfiguration", "s3Configuration"), None, "no encrypted backup"),
    (HTTP_INPUTS, ("httpEndpointConfiguration", "s3BackupMode"), None, "no encrypted backup"),
])
def test_a_destination_without_an_encrypted_backup_is_caught(
        as_outputs: bool, base: dict[str, Any], path: tuple[str, ...], value: Any, expected: str) -> None:
    props = changed(base, path, value)
    [message] = problems(stream(outputs(props) if as_outputs else props))
    assert expected in message


def test_a_key_not_known_yet_is_checked_later() -> None:
    props = changed(S3_INPUTS, ("serverSideEncryption", "keyArn"), UNKNOWN_STRING_VALUE)
    assert problems(stream(props)) == []


@pytest.mark.parametrize("as_outputs", [False, True])
@pytest.mark.parametrize(("base", "path"), [
    (S3_INPUTS, ("serverSideEncryption", "keyArn")),
    (S3_INPUTS, ("extendedS3Configuration", "kmsKeyArn")),
    (HTTP_INPUTS, ("serverSideEncryption", "keyArn")),
    (HTTP_INPUTS, ("httpEndpointConfiguration", "s3Configuration", "kmsKeyArn")),
])
def test_a_key_not_of_the_stack_is_caught(as_outputs: bool, base: dict[str, Any],
                                          path: tuple[str, ...]) -> None:
    props = changed(base, path, FOREIGN_KEY)
    [message] = problems(stream(outputs(props) if as_outputs else props))
    assert f"{'.'.join(path)} names {FOREIGN_KEY}, a key of account 999988887777" in message


@pytest.mark.parametrize("as_outputs", [False, True])
@pytest.mark.parametrize(("base", "path"), [
    (S3_INPUTS, ("extendedS3Configuration", "bucketArn")),
    (HTTP_INPUTS, ("httpEndpointConfiguration", "s3Configuration", "bucketArn")),
])
def test_a_backup_bucket_not_of_the_stack_is_caught(as_outputs: bool, base: dict[str, Any],
                                                   path: tuple[str, ...]) -> None:
    props = changed(base, path, FOREIGN_BUCKET)
    [message] = problems(stream(outputs(props) if as_outputs else props))
    assert f"backs up to {FOREIGN_BUCKET}, no bucket of this stack" in message
    # Even with the bucket's ARN not known yet, its name does not match.
    assert problems(stream(props), stack_key(), stack_bucket(with_arn=False))


def test_a_preview_links_key_and_bucket_by_their_dependencies() -> None:
    unknown = changed(changed(S3_INPUTS, ("serverSideEncryption", "keyArn"), UNKNOWN_STRING_VALUE),
                      ("extendedS3Configuration", "bucketArn"), UNKNOWN_STRING_VALUE)
    key, bucket = stack_key(), stack_bucket()
    linked = {"serverSideEncryption": (key.urn,), "extendedS3Configuration": (bucket.urn,)}
    assert problems(stream(unknown, linked)) == []
    elsewhere = {"serverSideEncryption": ("urn:pulumi:dev::zero-trust-ai::aws:s3/bucket:Bucket::x",),
                 "extendedS3Configuration": ("urn:pulumi:dev::zero-trust-ai::aws:kms/key:Key::x",)}
    found = problems(stream(unknown, elsewhere))
    assert len(found) == 2 and "computed from no bucket of this stack" in found[1]


# -- through the analyzer ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def violated(pack: PolicyPackProcess, props: dict[str, Any]) -> set[str]:
    resource = AnalyzedResource(urn=f"urn:pulumi:test::zero-trust-ai::{FIREHOSE_STREAM}::siem-stream",
                                type=FIREHOSE_STREAM, name="siem-stream", properties=props)
    others = [AnalyzedResource(urn=r.urn, type=r.type, name=r.name, properties=dict(r.props))
              for r in (stack_key(), stack_bucket())]
    result = analyze(pack, [*others, resource], user_config=None, project="zero-trust-ai", stack="test")
    return {v.policy for v in result.violations if v.urn == resource.urn}


@pytest.mark.parametrize("props", [S3_INPUTS, outputs(HTTP_INPUTS)])
def test_the_analyzer_passes_the_secure_stream(pack: PolicyPackProcess, props: dict[str, Any]) -> None:
    assert "firehose-encrypted-with-cmk" not in violated(pack, props)


@pytest.mark.parametrize("props", [changed(S3_INPUTS, ("serverSideEncryption", "keyType"), "AWS_OWNED_CMK"),
                                   outputs(changed(HTTP_INPUTS, ("httpEndpointConfiguration",
                                                                 "s3Configuration"), None)),
                                   outputs(changed(S3_INPUTS, ("serverSideEncryption", "keyArn"),
                                                   FOREIGN_KEY)),
                                   changed(HTTP_INPUTS, ("httpEndpointConfiguration", "s3Configuration",
                                                         "bucketArn"), FOREIGN_BUCKET)])
def test_the_analyzer_reports_the_insecure_stream(pack: PolicyPackProcess, props: dict[str, Any]) -> None:
    assert "firehose-encrypted-with-cmk" in violated(pack, props)
