"""Interoperability with the official AWS Encryption SDK for Python, both ways, under moto's KMS."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import aws_encryption_sdk
import boto3
import pytest
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy
from moto import mock_aws

from ztai_runtime.weights import (
    KmsDataKeySource,
    KmsUnwrapper,
    WeightsFormatError,
    decrypt_stream,
    encrypt_stream,
)

CONTEXT = {"model": "digits-classifier", "version": "7"}


@pytest.fixture
def kms_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        kms = boto3.client("kms", region_name="eu-west-1")
        yield kms, kms.create_key()["KeyMetadata"]["Arn"]


def official() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


@pytest.mark.parametrize(("size", "frame_length"), [
    (0, 4096), (1, 4096), (4096, 4096), (4097, 4096), (3 * 4096, 4096), (200_003, 4096),
    (3 * 1024 * 1024 + 5, 1024 * 1024),
])
def test_official_sdk_decrypts_our_messages(kms_key: tuple[Any, str], size: int, frame_length: int) -> None:
    kms, arn = kms_key
    data = os.urandom(size)
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(data), sink, KmsDataKeySource(kms, arn), CONTEXT, frame_length=frame_length)
    plaintext, header = official().decrypt(
        source=sink.getvalue(), key_provider=aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn]))
    assert plaintext == data
    assert header.encryption_context == CONTEXT
    assert header.algorithm == Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    assert header.frame_length == frame_length


@pytest.mark.parametrize(("size", "frame_length"), [
    (0, 4096), (1, 4096), (4096, 4096), (4097, 4096), (3 * 4096, 4096), (200_003, 4096),
    (1024 * 1024 + 3, 256 * 1024),
])
def test_we_decrypt_the_official_sdks_messages(kms_key: tuple[Any, str], size: int,
                                               frame_length: int) -> None:
    kms, arn = kms_key
    data = os.urandom(size)
    message, _ = official().encrypt(
        source=data, encryption_context=CONTEXT, frame_length=frame_length,
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        key_provider=aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn]))
    sink = io.BytesIO()
    info = decrypt_stream(io.BytesIO(message), sink, KmsUnwrapper(kms, key_arns=[arn]),
                          expected_context=CONTEXT)
    assert sink.getvalue() == data
    assert info.encryption_context == CONTEXT and info.key_provider_infos == (arn,)


@pytest.mark.parametrize(("options", "complaint"), [
    ({"algorithm": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384}, "0x0578"),
    ({"algorithm": Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, "frame_length": 0}, "non-framed"),
])
def test_official_messages_outside_our_suite_are_refused(kms_key: tuple[Any, str], options: dict[str, Any],
                                                         complaint: str) -> None:
    kms, arn = kms_key
    message, _ = official().encrypt(
        source=b"weights", encryption_context=CONTEXT,
        key_provider=aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn]), **options)
    with pytest.raises(WeightsFormatError, match=complaint):
        decrypt_stream(io.BytesIO(message), io.BytesIO(), KmsUnwrapper(kms, key_arns=[arn]))


def test_non_committing_messages_are_refused(kms_key: tuple[Any, str]) -> None:
    kms, arn = kms_key
    legacy = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)
    message, _ = legacy.encrypt(source=b"weights", encryption_context=CONTEXT,
                                algorithm=Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA256,
                                key_provider=aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn]))
    with pytest.raises(WeightsFormatError, match="message version 1"):
        decrypt_stream(io.BytesIO(message), io.BytesIO(), KmsUnwrapper(kms, key_arns=[arn]))
