"""firehose-encrypted-with-cmk (control: SIEM stream): a Firehose stream encrypted with a customer
managed key that backs up what fails passes; the AWS-owned key, no encryption, or a destination
without an encrypted backup is caught; read from inputs (a preview) and outputs (an export),
directly and through the pack's analyzer."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import PACK_DIR
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.firehose.firehose_encrypted_with_cmk import FIREHOSE_STREAM, firehose_encrypted_with_cmk

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


def stream(props: dict[str, Any]) -> Resource:
    return Resource(type=FIREHOSE_STREAM, name="siem-stream",
                    urn=f"urn:pulumi:dev::zero-trust-ai::{FIREHOSE_STREAM}::siem-stream",
                    props=unknown_checking_proxy(props))


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
    assert firehose_encrypted_with_cmk(stream(props), {}) == []


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
    [message] = firehose_encrypted_with_cmk(stream(outputs(props) if as_outputs else props), {})
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
    [message] = firehose_encrypted_with_cmk(stream(outputs(props) if as_outputs else props), {})
    assert expected in message


def test_a_key_not_known_yet_is_checked_later() -> None:
    props = changed(S3_INPUTS, ("serverSideEncryption", "keyArn"), UNKNOWN_STRING_VALUE)
    assert firehose_encrypted_with_cmk(stream(props), {}) == []


# -- through the analyzer ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def violated(pack: PolicyPackProcess, props: dict[str, Any]) -> set[str]:
    resource = AnalyzedResource(urn=f"urn:pulumi:test::zero-trust-ai::{FIREHOSE_STREAM}::siem-stream",
                                type=FIREHOSE_STREAM, name="siem-stream", properties=props)
    result = analyze(pack, [resource], user_config=None, project="zero-trust-ai", stack="test")
    return {v.policy for v in result.violations}


@pytest.mark.parametrize("props", [S3_INPUTS, outputs(HTTP_INPUTS)])
def test_the_analyzer_passes_the_secure_stream(pack: PolicyPackProcess, props: dict[str, Any]) -> None:
    assert "firehose-encrypted-with-cmk" not in violated(pack, props)


@pytest.mark.parametrize("props", [changed(S3_INPUTS, ("serverSideEncryption", "keyType"), "AWS_OWNED_CMK"),
                                   outputs(changed(HTTP_INPUTS, ("httpEndpointConfiguration",
                                                                 "s3Configuration"), None))])
def test_the_analyzer_reports_the_insecure_stream(pack: PolicyPackProcess, props: dict[str, Any]) -> None:
    assert "firehose-encrypted-with-cmk" in violated(pack, props)
