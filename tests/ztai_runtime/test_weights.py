"""The weights message format: round trips, and refusal of every kind of tampering."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from moto import mock_aws

from ztai_runtime.weights import (
    AuthenticationError,
    DestinationExistsError,
    EncryptedDataKey,
    KmsDataKeySource,
    KmsUnwrapper,
    StaticUnwrapper,
    UnwrapError,
    WeightsFormatError,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
)
from ztai_runtime.weights import format as fmt

CONTEXT = {"model": "digits-classifier", "version": "7"}


class StaticKeySource:
    """A fixed data key wrapped by nothing: tests the format without KMS."""

    def __init__(self, data_key: bytes | None = None) -> None:
        self.data_key = data_key or os.urandom(32)

    def generate(self, context: Mapping[str, str]) -> tuple[bytes, list[EncryptedDataKey]]:
        return self.data_key, [EncryptedDataKey("test", b"static", b"\x01" * 8)]


class CountingUnwrapper(StaticUnwrapper):
    def __init__(self, data_key: bytes) -> None:
        super().__init__(data_key)
        self.calls = 0

    def unwrap(self, encrypted_data_keys: Sequence[EncryptedDataKey], context: Mapping[str, str]) -> bytes:
        self.calls += 1
        return super().unwrap(encrypted_data_keys, context)


def encrypt(data: bytes, source: StaticKeySource, frame_length: int = 1024,
            context: Mapping[str, str] = CONTEXT, workers: int | None = None) -> bytes:
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(data), sink, source, context, frame_length=frame_length, workers=workers)
    return sink.getvalue()


def decrypt(message: bytes, data_key: bytes, **options: Any) -> bytes:
    sink = io.BytesIO()
    decrypt_stream(io.BytesIO(message), sink, StaticUnwrapper(data_key), **options)
    return sink.getvalue()


@pytest.fixture
def key_source() -> StaticKeySource:
    return StaticKeySource()


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 3 * 1024, 5000])
@pytest.mark.parametrize("workers", [0, 2])
def test_round_trip_at_frame_boundaries(size: int, workers: int, key_source: StaticKeySource) -> None:
    data = os.urandom(size)
    message = encrypt(data, key_source, workers=workers)
    assert decrypt(message, key_source.data_key, workers=workers) == data
    # An exact multiple of the frame length ends with a full final frame (the spec's SHOULD).
    frames = max(1, -(-size // 1024))
    header, _ = fmt.read_header(io.BytesIO(message))
    assert len(message) == (len(header.serialized) + fmt.TAG_LENGTH + frames * (4 + 12 + 16) + 8 + size)


def test_parallel_path_with_large_frames(key_source: StaticKeySource) -> None:
    data = os.urandom(5 * 256 * 1024 + 17)
    message = encrypt(data, key_source, frame_length=256 * 1024, workers=2)
    for workers in (0, 1, 2):
        assert decrypt(message, key_source.data_key, workers=workers) == data


def test_header_carries_context_and_key_info(key_source: StaticKeySource) -> None:
    header, _ = fmt.read_header(io.BytesIO(encrypt(b"w", key_source)))
    assert header.encryption_context == CONTEXT
    assert header.encrypted_data_keys == (EncryptedDataKey("test", b"static", b"\x01" * 8),)
    assert header.frame_length == 1024


def message_and_key() -> tuple[bytes, bytes, bytes]:
    source = StaticKeySource()
    data = os.urandom(5000)
    return encrypt(data, source), source.data_key, data


def body_offset(message: bytes) -> int:
    header, _ = fmt.read_header(io.BytesIO(message))
    return len(header.serialized) + fmt.TAG_LENGTH


def test_every_flipped_header_byte_and_sampled_body_byte_is_refused() -> None:
    message, data_key, _ = message_and_key()
    positions = [*range(body_offset(message) + 40), *range(body_offset(message) + 40, len(message), 37),
                 len(message) - 1]
    for position in positions:
        tampered = bytearray(message)
        tampered[position] ^= 0x01
        with pytest.raises(WeightsFormatError):
            decrypt(bytes(tampered), data_key)


def test_every_truncation_is_refused() -> None:
    message, data_key, _ = message_and_key()
    for length in [*range(0, body_offset(message) + 64), *range(body_offset(message) + 64, len(message), 23)]:
        with pytest.raises(WeightsFormatError):
            decrypt(message[:length], data_key)


def frames(message: bytes, frame_length: int = 1024) -> tuple[bytes, list[bytes], bytes]:
    """(header+auth, regular frames, final frame) of a message with regular frames of `frame_length`."""
    start = body_offset(message)
    regular = 4 + 12 + frame_length + 16
    body = message[start:]
    parts = []
    while not body.startswith(b"\xff\xff\xff\xff"):
        parts.append(body[:regular])
        body = body[regular:]
    return message[:start], parts, body


def test_reordered_dropped_and_duplicated_frames_are_refused() -> None:
    message, data_key, _ = message_and_key()
    head, regular, final = frames(message)
    assert len(regular) == 4
    variants = {
        "swapped": head + regular[1] + regular[0] + b"".join(regular[2:]) + final,
        "dropped": head + b"".join(regular[1:]) + final,
        "duplicated": head + regular[0] + b"".join(regular) + final,
        "final frame dropped": head + b"".join(regular),
        "final frame moved": head + regular[0] + final,
    }
    for name, variant in variants.items():
        with pytest.raises(AuthenticationError):
            decrypt(variant, data_key)
            pytest.fail(f"{name} frames were accepted")


def test_renumbered_frame_fails_its_tag() -> None:
    message, data_key, _ = message_and_key()
    head, regular, final = frames(message)
    # Swap frames 1 and 2 and fix their sequence numbers: the AAD binds the number, so the tag fails.
    first = struct.pack(">I", 1) + regular[1][4:]
    second = struct.pack(">I", 2) + regular[0][4:]
    with pytest.raises(AuthenticationError, match="frame 1 failed authentication"):
        decrypt(head + first + second + b"".join(regular[2:]) + final, data_key)


def test_frame_from_another_message_under_the_same_data_key_is_refused() -> None:
    source = StaticKeySource()
    one = encrypt(os.urandom(5000), source)
    two = encrypt(os.urandom(5000), source)
    head, regular, final = frames(one)
    _, other_regular, _ = frames(two)
    # Message ids differ, so derived keys and AADs differ even though the data key is the same.
    with pytest.raises(AuthenticationError):
        decrypt(head + other_regular[0] + b"".join(regular[1:]) + final, source.data_key)


def test_trailing_data_and_concatenation_are_refused() -> None:
    message, data_key, _ = message_and_key()
    with pytest.raises(AuthenticationError, match="after the final frame"):
        decrypt(message + b"\x00", data_key)
    with pytest.raises(AuthenticationError, match="after the final frame"):
        decrypt(message + message, data_key)


def test_wrong_data_key_fails_the_commitment() -> None:
    message, _, _ = message_and_key()
    with pytest.raises(AuthenticationError, match="commitment"):
        decrypt(message, os.urandom(32))


def test_expected_context_is_checked_before_any_unwrap() -> None:
    message, data_key, data = message_and_key()
    unwrapper = CountingUnwrapper(data_key)
    for expected in ({"model": "other"}, {"tenant": "a"}):
        with pytest.raises(AuthenticationError, match="encryption context does not match"):
            decrypt_stream(io.BytesIO(message), io.BytesIO(), unwrapper, expected_context=expected)
    assert unwrapper.calls == 0
    assert decrypt(message, data_key, expected_context={"model": "digits-classifier"}) == data


def test_context_rules_on_encrypt(key_source: StaticKeySource) -> None:
    with pytest.raises(WeightsFormatError, match="reserved"):
        encrypt(b"x", key_source, context={"aws-crypto-public-key": "x"})
    with pytest.raises(WeightsFormatError, match="65535"):
        encrypt(b"x", key_source, context={"k": "v" * 70000})
    with pytest.raises(WeightsFormatError, match="empty key"):
        encrypt(b"x", key_source, context={"": "v"})


def crafted_header(edk_count: int = 1, frame_length: int = 1024, content_type: int = 2,
                   suite: int = fmt.SUITE_ID, version: int = 2) -> bytes:
    edks = [EncryptedDataKey("aws-kms", b"arn", b"x")] * edk_count
    header = bytearray(fmt.serialize_header(os.urandom(32), CONTEXT, edks, 1024, os.urandom(32)))
    header[0] = version
    header[1:3] = struct.pack(">H", suite)
    trailer = len(header) - 32 - 5
    header[trailer:trailer + 5] = struct.pack(">BI", content_type, frame_length)
    return bytes(header) + os.urandom(16)


@pytest.mark.parametrize(("header", "complaint"), [
    (crafted_header(version=1), "message version 1"),
    (crafted_header(suite=0x0178), "suite 0x0178"),
    (crafted_header(suite=0x0578), "suite 0x0578"),
    (crafted_header(content_type=1), "non-framed"),
    (crafted_header(frame_length=0), "frame length of 0"),
    (crafted_header(frame_length=fmt.MAX_FRAME_LENGTH + 1), "exceeds"),
    (crafted_header(edk_count=fmt.MAX_ENCRYPTED_DATA_KEYS + 1), "encrypted data keys"),
    (b"not an encryption sdk message at all", "message version 110"),
])
def test_headers_outside_what_we_accept_are_refused_before_unwrap(header: bytes, complaint: str) -> None:
    unwrapper = CountingUnwrapper(os.urandom(32))
    with pytest.raises(WeightsFormatError, match=complaint):
        decrypt_stream(io.BytesIO(header), io.BytesIO(), unwrapper)
    assert unwrapper.calls == 0


def reordered_context_message(duplicate: bool) -> tuple[bytes, bytes]:
    """A valid message whose context pairs are written in non-byte order (as the JavaScript SDK
    may), or with one key twice; the header auth tag is recomputed, as a real writer's would be."""
    source = StaticKeySource()
    message_id = os.urandom(32)
    key, commitment = fmt.derive_keys(source.data_key, message_id)
    pairs = ([(b"model", b"a"), (b"model", b"b")] if duplicate
             else [(b"version", b"7"), (b"model", b"digits")])
    aad = struct.pack(">H", 2) + b"".join(struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
                                          for k, v in pairs)
    edk = EncryptedDataKey("test", b"static", b"\x01")
    header = bytearray(fmt.serialize_header(message_id, {}, [edk], 1024, commitment))
    header[35:37] = struct.pack(">H", len(aad))
    header[37:37] = aad
    aead = AESGCM(key)
    body = (struct.pack(">II", fmt.FINAL_FRAME_MARKER, 1) + fmt.frame_iv(1) + struct.pack(">I", 2)
            + aead.encrypt(fmt.frame_iv(1), b"ok", fmt.body_aad(message_id, True, 1, 2)))
    return bytes(header) + aead.encrypt(fmt.HEADER_AUTH_IV, b"", bytes(header)) + body, source.data_key


def test_context_pairs_in_any_order_are_read_but_duplicates_are_refused() -> None:
    message, data_key = reordered_context_message(duplicate=False)
    sink = io.BytesIO()
    info = decrypt_stream(io.BytesIO(message), sink, StaticUnwrapper(data_key))
    assert sink.getvalue() == b"ok" and info.encryption_context == {"model": "digits", "version": "7"}
    message, data_key = reordered_context_message(duplicate=True)
    with pytest.raises(WeightsFormatError, match="'model' appears twice"):
        decrypt_stream(io.BytesIO(message), io.BytesIO(), StaticUnwrapper(data_key))


class TrickleReader(io.RawIOBase):
    """Returns at most 7 bytes per call, as a pipe or a vsock stream may."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(7, len(buffer), len(self.data))
        memoryview(buffer).cast("B")[:count] = self.data[:count]
        self.data = self.data[count:]
        return count


@pytest.mark.parametrize("frame_length", [1024, 64 * 1024])
def test_short_reads_are_not_truncation(frame_length: int, key_source: StaticKeySource) -> None:
    data = os.urandom(3 * frame_length + 5)
    message = encrypt(data, key_source, frame_length=frame_length)
    sink = io.BytesIO()
    decrypt_stream(TrickleReader(message), sink, StaticUnwrapper(key_source.data_key))  # type: ignore[arg-type]
    assert sink.getvalue() == data
    with pytest.raises(AuthenticationError, match="truncated"):
        decrypt_stream(TrickleReader(message[:-1]), io.BytesIO(),  # type: ignore[arg-type]
                       StaticUnwrapper(key_source.data_key))


PARALLEL_FRAME = 64 * 1024  # the smallest frame that goes through the worker threads


@pytest.mark.parametrize("workers", [1, 2])
def test_tampering_is_refused_on_the_parallel_path(workers: int, key_source: StaticKeySource) -> None:
    data = os.urandom(6 * PARALLEL_FRAME + 100)
    message = encrypt(data, key_source, frame_length=PARALLEL_FRAME, workers=workers)
    assert decrypt(message, key_source.data_key, workers=workers) == data
    head, regular, final = frames(message, PARALLEL_FRAME)
    start = body_offset(message)
    for position in (start + 20, start + 3 * len(regular[0]) + 100, len(message) - 1):
        tampered = bytearray(message)
        tampered[position] ^= 0x04
        with pytest.raises(AuthenticationError, match="failed authentication"):
            decrypt(bytes(tampered), key_source.data_key, workers=workers)
    with pytest.raises(AuthenticationError, match="out of order"):
        decrypt(head + regular[1] + regular[0] + b"".join(regular[2:]) + final, key_source.data_key,
                workers=workers)
    with pytest.raises(AuthenticationError, match="truncated"):
        decrypt(message[:start + 4 * len(regular[0]) + 10], key_source.data_key, workers=workers)


def test_refused_message_leaves_no_plaintext_in_the_buffers(key_source: StaticKeySource,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from ztai_runtime.weights import stream
    pipelines: list[Any] = []
    original = stream._Pipeline.__init__

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        pipelines.append(self)

    monkeypatch.setattr(stream._Pipeline, "__init__", recording_init)
    data = b"\x5a" * (4 * PARALLEL_FRAME)
    message = bytearray(encrypt(data, key_source, frame_length=PARALLEL_FRAME, workers=1))
    message[-1] ^= 1  # the final frame fails after three frames decrypted into the buffers
    with pytest.raises(AuthenticationError):
        decrypt(bytes(message), key_source.data_key, workers=1)
    buffers = [buffer for pair in pipelines[-1]._all for buffer in pair]
    assert buffers and all(not any(buffer) for buffer in buffers)


class FailingSink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(28, "No space left on device")


def test_a_failing_sink_stops_the_workers_and_propagates(key_source: StaticKeySource) -> None:
    import threading
    message = encrypt(os.urandom(8 * PARALLEL_FRAME), key_source, frame_length=PARALLEL_FRAME, workers=2)
    before = threading.active_count()
    with pytest.raises(OSError, match="No space left"):
        decrypt_stream(io.BytesIO(message), FailingSink(), StaticUnwrapper(key_source.data_key),  # type: ignore[arg-type]
                       workers=2)
    assert threading.active_count() == before


class SyntheticReader(io.RawIOBase):
    """`size` bytes of a repeating pattern, produced on demand (nothing held in memory)."""

    def __init__(self, size: int) -> None:
        self.remaining = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.remaining)
        view = memoryview(buffer).cast("B")
        view[:count] = bytes(range(256)) * (count // 256) + bytes(range(count % 256))
        self.remaining -= count
        return count


class CountingSink(io.RawIOBase):
    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.count += len(data)
        return len(data)


def test_memory_stays_bounded_whatever_the_size(tmp_path: Path, key_source: StaticKeySource) -> None:
    size, frame_length = 48 * 1024 * 1024, 1024 * 1024
    path = tmp_path / "big.enc"
    with open(path, "wb") as sink:
        encrypt_stream(SyntheticReader(size), sink, key_source, CONTEXT,  # type: ignore[arg-type]
                       frame_length=frame_length)
    tracemalloc.start()
    try:
        with open(path, "rb", buffering=0) as source:
            counting = CountingSink()
            decrypt_stream(source, counting, StaticUnwrapper(key_source.data_key))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counting.count == size
    # Four frames in flight, an input and an output buffer each: 8 MiB for a 48 MiB file.
    assert peak < 12 * 1024 * 1024, peak


# -- files ------------------------------------------------------------------------------------------

def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".ztai-partial-"))


def test_file_round_trip_and_refusal_leave_nothing_behind(tmp_path: Path,
                                                          key_source: StaticKeySource) -> None:
    plain = tmp_path / "weights.bin"
    plain.write_bytes(os.urandom(300_000))
    sealed = tmp_path / "weights.enc"
    encrypt_file(plain, sealed, key_source, CONTEXT, frame_length=65536)
    out = tmp_path / "out.bin"
    info = decrypt_file(sealed, out, StaticUnwrapper(key_source.data_key))
    assert out.read_bytes() == plain.read_bytes()
    assert info.frames == 5 and info.plaintext_length == 300_000
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    tampered = bytearray(sealed.read_bytes())
    tampered[-1] ^= 1  # last byte of the final frame's tag: every frame before it verifies first
    (tmp_path / "tampered.enc").write_bytes(tampered)
    refused = tmp_path / "refused.bin"
    with pytest.raises(AuthenticationError):
        decrypt_file(tmp_path / "tampered.enc", refused, StaticUnwrapper(key_source.data_key))
    assert not refused.exists()
    assert leftovers(tmp_path) == []


def test_existing_destination_is_kept_unless_overwrite(tmp_path: Path, key_source: StaticKeySource) -> None:
    plain = tmp_path / "w.bin"
    plain.write_bytes(b"weights")
    existing = tmp_path / "w.enc"
    existing.write_bytes(b"precious")
    with pytest.raises(DestinationExistsError):
        encrypt_file(plain, existing, key_source, CONTEXT)
    assert existing.read_bytes() == b"precious"
    encrypt_file(plain, existing, key_source, CONTEXT, overwrite=True)
    assert existing.read_bytes() != b"precious"


def test_refused_overwrite_keeps_the_old_destination(tmp_path: Path, key_source: StaticKeySource) -> None:
    sealed = tmp_path / "w.enc"
    plain = tmp_path / "w.bin"
    plain.write_bytes(os.urandom(5000))
    encrypt_file(plain, sealed, key_source, CONTEXT, frame_length=1024)
    destination = tmp_path / "model.bin"
    destination.write_bytes(b"the previous model")
    with pytest.raises(AuthenticationError):
        decrypt_file(sealed, destination, StaticUnwrapper(os.urandom(32)), overwrite=True)
    assert destination.read_bytes() == b"the previous model"
    assert leftovers(tmp_path) == []


class InterruptingUnwrapper:
    def unwrap(self, encrypted_data_keys: Sequence[EncryptedDataKey], context: Mapping[str, str]) -> bytes:
        raise KeyboardInterrupt


def test_interrupt_removes_the_partial_file(tmp_path: Path, key_source: StaticKeySource) -> None:
    plain = tmp_path / "w.bin"
    plain.write_bytes(b"w" * 10)
    sealed = tmp_path / "w.enc"
    encrypt_file(plain, sealed, key_source, CONTEXT)
    with pytest.raises(KeyboardInterrupt):
        decrypt_file(sealed, tmp_path / "out.bin", InterruptingUnwrapper())
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.bin").exists()


# -- KMS --------------------------------------------------------------------------------------------

@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("kms", region_name="eu-west-1")


def test_kms_data_key_is_bound_to_the_context(kms: Any) -> None:
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/weights", TargetKeyId=arn)
    sink = io.BytesIO()
    info = encrypt_stream(io.BytesIO(b"weights"), sink, KmsDataKeySource(kms, "alias/weights"), CONTEXT)
    assert info.key_provider_infos == (arn,)  # the ARN, not the alias: alias moves do not matter
    header, _ = fmt.read_header(io.BytesIO(sink.getvalue()))
    (edk,) = header.encrypted_data_keys
    # KMS itself refuses the wrapped key under another context.
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=edk.ciphertext, EncryptionContext={"model": "other"})
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(sink.getvalue()), out, KmsUnwrapper(kms, key_arns=[arn]))
    assert out.getvalue() == b"weights"


def test_kms_unwrapper_tries_only_allowed_keys(kms: Any) -> None:
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    other = kms.create_key()["KeyMetadata"]["Arn"]
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(b"weights"), sink, KmsDataKeySource(kms, arn), CONTEXT)
    with pytest.raises(UnwrapError, match="not an allowed key"):
        decrypt_stream(io.BytesIO(sink.getvalue()), io.BytesIO(), KmsUnwrapper(kms, key_arns=[other]))
    with pytest.raises(UnwrapError, match="not an allowed key"):
        decrypt_stream(io.BytesIO(sink.getvalue()), io.BytesIO(),
                       KmsUnwrapper(kms, discovery_accounts=["999999999999"]))
    account = arn.split(":")[4]
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(sink.getvalue()), out, KmsUnwrapper(kms, discovery_accounts=[account]))
    assert out.getvalue() == b"weights"
    with pytest.raises(ValueError, match="not a KMS key ARN"):
        KmsUnwrapper(kms, key_arns=["alias/weights"])


def test_kms_refusal_is_an_unwrap_error_naming_key_and_code(kms: Any) -> None:
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(b"weights"), sink, KmsDataKeySource(kms, arn), CONTEXT)
    # moto decrypts under a disabled key; what KMS answers (a refusal) is stubbed instead.
    refusing = boto3.client("kms", region_name="eu-west-1")
    with Stubber(refusing) as stubber:
        stubber.add_client_error("decrypt", service_error_code="DisabledException",
                                 service_message=f"{arn} is disabled.")
        with pytest.raises(UnwrapError, match=f"{arn}: DisabledException"):
            decrypt_stream(io.BytesIO(sink.getvalue()), io.BytesIO(), KmsUnwrapper(refusing, key_arns=[arn]))


def test_kms_answer_for_another_key_is_not_accepted(kms: Any) -> None:
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(b"weights"), sink, KmsDataKeySource(kms, arn), CONTEXT)
    lying = boto3.client("kms", region_name="eu-west-1")
    with Stubber(lying) as stubber:
        stubber.add_response("decrypt", {"KeyId": arn.replace(arn[-4:], "ffff"), "Plaintext": b"k" * 32,
                                         "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
        with pytest.raises(UnwrapError, match="answered for another key"):
            decrypt_stream(io.BytesIO(sink.getvalue()), io.BytesIO(), KmsUnwrapper(lying, key_arns=[arn]))


@pytest.mark.parametrize(("wrapped_under", "reason"), [
    ("arn:aws:kms:eu-west-1:123456789012:alias/weights", "not a KMS key ARN"),
    ("arn:aws-cn:kms:eu-west-1:123456789012:key/1234", "outside the discovery partition"),
    ("arn:aws:kms:us-east-1:123456789012:key/1234", "in region us-east-1"),
])
def test_discovery_skips_keys_outside_its_filter_without_calling_kms(wrapped_under: str, reason: str) -> None:
    client = boto3.client("kms", region_name="eu-west-1")
    edks = [EncryptedDataKey("aws-kms", wrapped_under.encode(), b"blob")]
    # No response queued in the Stubber: any KMS call would fail the test.
    with Stubber(client), pytest.raises(UnwrapError, match=reason):
        KmsUnwrapper(client, discovery_accounts=["123456789012"]).unwrap(edks, CONTEXT)


def test_kms_transport_errors_are_not_taken_for_a_refusal(kms: Any) -> None:
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    sink = io.BytesIO()
    encrypt_stream(io.BytesIO(b"weights"), sink, KmsDataKeySource(kms, arn), CONTEXT)
    throttled = boto3.client("kms", region_name="eu-west-1")
    with Stubber(throttled) as stubber:
        stubber.add_client_error("decrypt", service_error_code="ThrottlingException", http_status_code=400)
        with pytest.raises(ClientError, match="ThrottlingException"):
            decrypt_stream(io.BytesIO(sink.getvalue()), io.BytesIO(), KmsUnwrapper(throttled, key_arns=[arn]))


class CreatingUnwrapper(StaticUnwrapper):
    """Creates the destination while the message is being decrypted (a concurrent writer)."""

    def __init__(self, data_key: bytes, destination: Path) -> None:
        super().__init__(data_key)
        self.destination = destination

    def unwrap(self, encrypted_data_keys: Sequence[EncryptedDataKey], context: Mapping[str, str]) -> bytes:
        self.destination.write_bytes(b"written by someone else meanwhile")
        return super().unwrap(encrypted_data_keys, context)


def test_destination_created_meanwhile_is_never_replaced(tmp_path: Path, key_source: StaticKeySource) -> None:
    plain, sealed, out = tmp_path / "w.bin", tmp_path / "w.enc", tmp_path / "out.bin"
    plain.write_bytes(os.urandom(3000))
    encrypt_file(plain, sealed, key_source, CONTEXT)
    with pytest.raises(DestinationExistsError):
        decrypt_file(sealed, out, CreatingUnwrapper(key_source.data_key, out))
    assert out.read_bytes() == b"written by someone else meanwhile"
    assert leftovers(tmp_path) == []


class ListingUnwrapper(StaticUnwrapper):
    """Looks at the destination directory while the output file is open."""

    def __init__(self, data_key: bytes, directory: Path) -> None:
        super().__init__(data_key)
        self.directory = directory
        self.partial_modes: list[int] = []

    def unwrap(self, encrypted_data_keys: Sequence[EncryptedDataKey], context: Mapping[str, str]) -> bytes:
        names = leftovers(self.directory)
        self.partial_modes = [(self.directory / name).stat().st_mode & 0o777 for name in names]
        return super().unwrap(encrypted_data_keys, context)


def test_unverified_output_is_unnamed_or_private(tmp_path: Path, key_source: StaticKeySource) -> None:
    from ztai_runtime.weights import files
    plain, sealed = tmp_path / "w.bin", tmp_path / "w.enc"
    plain.write_bytes(os.urandom(3000))
    encrypt_file(plain, sealed, key_source, CONTEXT)
    anonymous = files._anonymous_file(tmp_path)
    if anonymous is not None:
        os.close(anonymous)
    listing = ListingUnwrapper(key_source.data_key, tmp_path)
    decrypt_file(sealed, tmp_path / "out.bin", listing)
    # With O_TMPFILE (most Linux hosts) nothing has a name before it verified; where the
    # filesystem cannot name such a file later (this sandbox: EXDEV), one private file does.
    assert listing.partial_modes == ([] if anonymous is not None else [0o600])
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("data", "error", "complaint"), [
    (b"", fmt.NotAMessageError, "the file is empty"),
    (b"PK\x03\x04", fmt.NotAMessageError, "message version 80 does not exist"),
    (b"\x02\x04", fmt.TruncatedHeaderError, "message truncated in the header"),
    (crafted_header()[:60], fmt.TruncatedHeaderError, "message truncated in the"),
# Named ids: the crafted header holds random bytes, and the parallel workers must each collect the
# same test names.
], ids=["empty", "zip-file", "cut-prefix", "cut-header"])
def test_not_a_message_and_a_cut_header_are_told_apart_from_tampering(
        data: bytes, error: type[Exception], complaint: str) -> None:
    # The CLI reports these as the user's mistake (exit 2), not as a refused message (exit 1).
    unwrapper = CountingUnwrapper(os.urandom(32))
    with pytest.raises(error, match=complaint) as raised:
        decrypt_stream(io.BytesIO(data), io.BytesIO(), unwrapper)
    assert isinstance(raised.value, WeightsFormatError) and unwrapper.calls == 0
    # A cut header is still an AuthenticationError for callers that only ask "did it verify?".
    assert isinstance(raised.value, AuthenticationError) == (error is fmt.TruncatedHeaderError)
