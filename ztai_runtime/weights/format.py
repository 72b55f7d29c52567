"""The AWS Encryption SDK message format, version 2, restricted to what model weights need.

On disk a weights file is exactly an AWS Encryption SDK message, so the official SDKs and the AWS
Encryption CLI of any language can decrypt it (and we decrypt what they write):

    header      version 0x02 | suite 0x0478 | message id (32) | encryption context | encrypted data keys
                | content type 0x02 (framed) | frame length (uint32) | commitment key (32)
    header auth AES-256-GCM tag (16) over the header, IV all zero (version 2 has no IV field)
    body        regular frames:  seq (uint32) | IV (12) | ciphertext (frame length) | tag (16)
                final frame:     0xFFFFFFFF | seq | IV | length (uint32) | ciphertext | tag
    (no footer: the suite does not sign)

Only suite 0x0478, AES_256_GCM_HKDF_SHA512_COMMIT_KEY, is written or accepted: it is key-committing
(a message decrypts under one data key only) and unsigned. Unsigned means the message proves only
that its writer could obtain a data key for it: anyone able to unwrap a file's data key (KMS
Decrypt under its context) or to wrap one (KMS Encrypt) can write a different message that
decrypts as valid. Who may write weights is therefore decided by the key policy (only the
publisher may GenerateDataKey/Encrypt; Decrypt only inside an attested enclave), and
provenance by model signing (not built yet), not by this format. The version field of the format is the
message version byte; anything but 2 is refused.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MESSAGE_VERSION = 2
SUITE_ID = 0x0478  # AES_256_GCM_HKDF_SHA512_COMMIT_KEY
SUITE_NAME = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
CONTENT_TYPE_FRAMED = 2
CONTENT_TYPE_NON_FRAMED = 1
MESSAGE_ID_LENGTH = 32
DATA_KEY_LENGTH = 32
COMMITMENT_LENGTH = 32
IV_LENGTH = 12
TAG_LENGTH = 16
FINAL_FRAME_MARKER = 0xFFFFFFFF
MAX_FRAME_COUNT = 0xFFFFFFFF  # sequence numbers are uint32 and the marker value is reserved
RESERVED_CONTEXT_PREFIX = "aws-crypto-"
BODY_AAD_FRAME = b"AWSKMSEncryptionClient Frame"
BODY_AAD_FINAL_FRAME = b"AWSKMSEncryptionClient Final Frame"

# Default frame length for what we write. Large frames keep per-frame work (a Python round of
# parsing and an AEAD call) negligible against AES-GCM itself; past a few MiB a frame no longer
# stays in cache between the read and the cipher and throughput drops again (8 MiB frames decrypt
# ~2x slower than 2 MiB ones here; benchmarks/weights_throughput.py --frame-mib).
DEFAULT_FRAME_LENGTH = 2 * 1024 * 1024
# Largest frame we accept when decrypting: the memory bound (a few frames in flight) follows from it.
MAX_FRAME_LENGTH = 8 * 1024 * 1024
# Encrypted data keys accepted in one message. A message with thousands of EDKs would make us call
# KMS thousands of times (the SDK's "max encrypted data keys" best practice).
MAX_ENCRYPTED_DATA_KEYS = 10

KMS_PROVIDER_ID = "aws-kms"


class WeightsFormatError(ValueError):
    """The input is not a message this library accepts (malformed, truncated, wrong suite, ...)."""


class AuthenticationError(WeightsFormatError):
    """The message does not authenticate: tampered, truncated, reordered, wrong key or wrong context."""


class NotAMessageError(WeightsFormatError):
    """The input is not an AWS Encryption SDK message at all (another kind of file, or empty): a
    mistake about which file to decrypt rather than a verdict on a message."""


class TruncatedHeaderError(AuthenticationError):
    """The input ends inside the message header: an incomplete copy or download. Nothing of the
    message was authenticated yet; it is an AuthenticationError for callers that do not care."""


@dataclass(frozen=True)
class EncryptedDataKey:
    """One wrapped copy of the message's data key. For KMS: provider "aws-kms", info = key ARN."""

    provider_id: str
    provider_info: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Header:
    message_id: bytes
    encryption_context: dict[str, str]
    encrypted_data_keys: tuple[EncryptedDataKey, ...]
    frame_length: int
    commitment: bytes
    serialized: bytes  # the exact header bytes, which the header auth tag covers


# -- encryption context ----------------------------------------------------------------------------

def validate_context(context: Mapping[str, str], *, writing: bool) -> dict[str, str]:
    """Check an encryption context for use in a message; returns a plain dict copy."""
    problems = []
    for key, value in context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            problems.append(f"{key!r}: keys and values must be strings")
        elif not key:
            problems.append("empty key")
        elif writing and not value:
            # Some official SDKs (Java) refuse to read an empty value: do not write one.
            problems.append(f"{key!r}: empty value")
        elif writing and key.startswith(RESERVED_CONTEXT_PREFIX):
            problems.append(f"{key!r}: the prefix {RESERVED_CONTEXT_PREFIX!r} is reserved by the "
                            "AWS Encryption SDK")
    if problems:
        raise WeightsFormatError("invalid encryption context: " + "; ".join(problems))
    try:
        serialize_context(context)
    except (UnicodeEncodeError, struct.error) as error:
        raise WeightsFormatError(f"invalid encryption context: {error}") from None
    return dict(context)


def serialize_context(context: Mapping[str, str]) -> bytes:
    """Count, then (key length, key, value length, value) sorted by the UTF-8 bytes of the key.
    An empty context serializes to nothing (its AAD length field is 0)."""
    if not context:
        return b""
    pairs = sorted((key.encode("utf-8"), value.encode("utf-8")) for key, value in context.items())
    parts = [struct.pack(">H", len(pairs))]
    for key, value in pairs:
        parts.append(struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value)
    serialized = b"".join(parts)
    if len(serialized) > 0xFFFF:
        raise struct.error(f"serialized context is {len(serialized)} bytes; the format allows 65535")
    return serialized


def _parse_context(data: bytes) -> dict[str, str]:
    if not data:
        return {}
    reader = _Cursor(data, "encryption context")
    count = reader.uint16()
    if count == 0:
        # The spec forbids a zero count in a non-empty field: an empty context has length 0.
        raise WeightsFormatError("malformed header: encryption context with a count of 0")
    context: dict[str, str] = {}
    for _ in range(count):
        key = reader.take(reader.uint16())
        value = reader.take(reader.uint16())
        try:
            name = key.decode("utf-8")
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise WeightsFormatError("malformed header: encryption context is not UTF-8") from None
        # The order is not checked: writers sort differently (the JavaScript SDK by locale), and
        # the header bytes are authenticated as they are. A duplicate would be ambiguous.
        if name in context:
            raise WeightsFormatError(f"malformed header: encryption context key {name!r} appears twice")
        context[name] = text
    reader.end()
    return context


# -- keys -------------------------------------------------------------------------------------------

def derive_keys(data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """(encryption key, commitment key) for suite 0x0478: HKDF-SHA512 salted with the message id,
    info = suite id || "DERIVEKEY" and "COMMITKEY"."""
    if len(data_key) != DATA_KEY_LENGTH:
        raise WeightsFormatError(f"data key is {len(data_key)} bytes; the suite needs {DATA_KEY_LENGTH}")
    encryption_key = HKDF(hashes.SHA512(), DATA_KEY_LENGTH, salt=message_id,
                          info=struct.pack(">H", SUITE_ID) + b"DERIVEKEY").derive(data_key)
    commitment = HKDF(hashes.SHA512(), COMMITMENT_LENGTH, salt=message_id,
                      info=b"COMMITKEY").derive(data_key)
    return encryption_key, commitment


def frame_iv(sequence_number: int) -> bytes:
    # The data key is unique per message, so a counter IV is unique for the key (as the SDKs do).
    return b"\x00" * (IV_LENGTH - 4) + struct.pack(">I", sequence_number)


def body_aad(message_id: bytes, final: bool, sequence_number: int, content_length: int) -> bytes:
    return (message_id + (BODY_AAD_FINAL_FRAME if final else BODY_AAD_FRAME)
            + struct.pack(">IQ", sequence_number, content_length))


HEADER_AUTH_IV = b"\x00" * IV_LENGTH


# -- header -----------------------------------------------------------------------------------------

def serialize_header(message_id: bytes, context: Mapping[str, str],
                     encrypted_data_keys: Sequence[EncryptedDataKey], frame_length: int,
                     commitment: bytes) -> bytes:
    if not 0 < frame_length <= 0xFFFFFFFF:
        raise WeightsFormatError(f"frame length {frame_length} outside 1..2^32-1")
    if not 1 <= len(encrypted_data_keys) <= 0xFFFF:
        raise WeightsFormatError("a message needs at least one encrypted data key")
    aad = serialize_context(context)
    parts = [struct.pack(">BH", MESSAGE_VERSION, SUITE_ID), message_id,
             struct.pack(">H", len(aad)), aad, struct.pack(">H", len(encrypted_data_keys))]
    for edk in encrypted_data_keys:
        provider_id = edk.provider_id.encode("utf-8")
        parts.append(struct.pack(">H", len(provider_id)) + provider_id
                     + struct.pack(">H", len(edk.provider_info)) + edk.provider_info
                     + struct.pack(">H", len(edk.ciphertext)) + edk.ciphertext)
    parts.append(struct.pack(">BI", CONTENT_TYPE_FRAMED, frame_length))
    parts.append(commitment)
    return b"".join(parts)


def read_header(source: BinaryIO, *, max_encrypted_data_keys: int = MAX_ENCRYPTED_DATA_KEYS,
                max_frame_length: int = MAX_FRAME_LENGTH) -> tuple[Header, bytes]:
    """Parse the header and return it with the 16-byte header auth tag that follows it.

    Reads exactly the header's bytes from `source`, so the body can be streamed after it. Every
    length is checked before it is trusted, so a hostile header cannot make us allocate much.
    """
    recorded = bytearray()

    def take(count: int, what: str) -> bytes:
        data = _read_exact(source, count, what)
        recorded.extend(data)
        return data

    first = read_up_to(source, 3)
    recorded.extend(first)
    if not first:
        raise NotAMessageError("the file is empty, not an AWS Encryption SDK message")
    if first[0] not in (1, MESSAGE_VERSION):
        raise NotAMessageError(f"message version {first[0]} does not exist (first byte 0x{first[0]:02X}; "
                               f"messages start with 0x{MESSAGE_VERSION:02X}): the file is not an "
                               "encrypted weights file. Is this an AWS Encryption SDK message?")
    if len(first) < 3:
        raise TruncatedHeaderError("message truncated in the header (the file is shorter than a header)")
    version, suite = struct.unpack(">BH", first)
    if version != MESSAGE_VERSION:
        raise WeightsFormatError(f"message version {version} is not accepted; only version "
                                 f"{MESSAGE_VERSION} (version 1 messages use non-committing suites). "
                                 "Is this an AWS Encryption SDK message?")
    if suite != SUITE_ID:
        raise WeightsFormatError(f"algorithm suite 0x{suite:04X} is not accepted; only 0x{SUITE_ID:04X} "
                                 f"({SUITE_NAME}, committing, unsigned)")
    message_id = take(MESSAGE_ID_LENGTH, "header")
    (aad_length,) = struct.unpack(">H", take(2, "header"))
    context = _parse_context(take(aad_length, "encryption context"))
    (edk_count,) = struct.unpack(">H", take(2, "header"))
    if edk_count == 0:
        raise WeightsFormatError("malformed header: no encrypted data keys")
    if edk_count > max_encrypted_data_keys:
        raise WeightsFormatError(f"message has {edk_count} encrypted data keys; at most "
                                 f"{max_encrypted_data_keys} are accepted")
    edks = []
    for _ in range(edk_count):
        provider_id = take(struct.unpack(">H", take(2, "header"))[0], "encrypted data key")
        provider_info = take(struct.unpack(">H", take(2, "header"))[0], "encrypted data key")
        ciphertext = take(struct.unpack(">H", take(2, "header"))[0], "encrypted data key")
        try:
            edks.append(EncryptedDataKey(provider_id.decode("utf-8"), provider_info, ciphertext))
        except UnicodeDecodeError:
            raise WeightsFormatError("malformed header: key provider id is not UTF-8") from None
    content_type, frame_length = struct.unpack(">BI", take(5, "header"))
    if content_type == CONTENT_TYPE_NON_FRAMED:
        raise WeightsFormatError("non-framed messages are not accepted: their plaintext cannot be "
                                 "verified in bounded memory; encrypt with a frame length > 0")
    if content_type != CONTENT_TYPE_FRAMED:
        raise WeightsFormatError(f"malformed header: content type {content_type}")
    if frame_length == 0:
        raise WeightsFormatError("malformed header: framed content with a frame length of 0")
    if frame_length > max_frame_length:
        raise WeightsFormatError(f"frame length {frame_length} exceeds the {max_frame_length} bytes "
                                 "this decryptor accepts (its memory bound)")
    commitment = take(COMMITMENT_LENGTH, "header")
    tag = _read_exact(source, TAG_LENGTH, "header authentication")
    header = Header(message_id=message_id, encryption_context=context, encrypted_data_keys=tuple(edks),
                    frame_length=frame_length, commitment=commitment, serialized=bytes(recorded))
    return header, tag


def read_up_to(source: BinaryIO, count: int) -> bytes:
    """Up to `count` bytes, fewer only at the end of the stream: pipes, sockets and vsock return
    short reads, which are not truncation."""
    chunks = []
    remaining = count
    while remaining:
        chunk = source.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_exact(source: BinaryIO, count: int, what: str) -> bytes:
    data = read_up_to(source, count)
    if len(data) != count:
        raise TruncatedHeaderError(f"message truncated in the {what}")
    return data


class _Cursor:
    def __init__(self, data: bytes, what: str) -> None:
        self._data, self._offset, self._what = data, 0, what

    def take(self, count: int) -> bytes:
        if self._offset + count > len(self._data):
            raise WeightsFormatError(f"malformed header: {self._what} shorter than its lengths say")
        chunk = self._data[self._offset:self._offset + count]
        self._offset += count
        return chunk

    def uint16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def end(self) -> None:
        if self._offset != len(self._data):
            raise WeightsFormatError(f"malformed header: trailing bytes in the {self._what}")
