"""Where the enclave gets its attestation documents: the Nitro Secure Module, behind a Protocol.

`AttestationSource` is all the enclave application depends on, so tests hand it a test source
(tests/support/attestation.py) that signs real-format documents with a test CA.

`NsmAttestationSource` talks to the NSM itself. The interface, from the Linux uapi header
`linux/nsm.h` and the aws-nitro-enclaves-nsm-api driver: open `/dev/nsm` read-write and issue one
ioctl, `NSM_IOCTL_RAW = _IOWR(0x0A, 0, struct nsm_raw)`, where

    struct nsm_iovec { __u64 addr; __u64 len; };
    struct nsm_raw   { struct nsm_iovec request; struct nsm_iovec response; };

The request is CBOR (at most 4 KiB): the serde encoding of the Rust enum variant
`Attestation { user_data, nonce, public_key }`, i.e. the map
`{"Attestation": {"user_data": bstr/null, "nonce": bstr/null, "public_key": bstr/null}}`.
The driver writes the CBOR response (at most 12 KiB) into the response buffer and its length
into `response.len`: `{"Attestation": {"document": bstr}}`, or `{"Error": "<ErrorCode>"}`.
The raw ioctl needs CAP_SYS_ADMIN (the enclave application runs as root in its image).

This code cannot be exercised outside a Nitro Enclave: the tests cover the request and response
encoding only (`encode_attestation_request`, `decode_attestation_response`); the ioctl path has
not run on real hardware from this repository yet.
"""

from __future__ import annotations

import ctypes
import fcntl
import io
import os
import struct
from typing import Any, Protocol

import cbor2

NSM_DEVICE = "/dev/nsm"
NSM_REQUEST_MAX_SIZE = 0x1000
NSM_RESPONSE_MAX_SIZE = 0x3000
_NSM_MAGIC = 0x0A
_NSM_RAW = struct.Struct("=QQQQ")  # request.addr, request.len, response.addr, response.len


def _iowr(magic: int, number: int, size: int) -> int:
    """Linux `_IOWR` (read|write direction bits 3, 14-bit size) on the generic ioctl layout."""
    return (3 << 30) | (size << 16) | (magic << 8) | number


NSM_IOCTL_RAW = _iowr(_NSM_MAGIC, 0, _NSM_RAW.size)
# Limits of the NSM on the optional fields (attestation_process.md): larger ones are refused here
# with a clear message rather than by the device with InvalidArgument.
MAX_PUBLIC_KEY_LENGTH = 1024
MAX_USER_DATA_LENGTH = 512
MAX_NONCE_LENGTH = 512


class NsmError(RuntimeError):
    """The NSM could not produce an attestation document."""


class AttestationSource(Protocol):
    def attest(self, public_key: bytes, user_data: bytes | None, nonce: bytes | None) -> bytes:
        """A signed attestation document (COSE_Sign1 bytes) binding `public_key` (DER
        SubjectPublicKeyInfo) and, when given, `user_data` and `nonce`."""
        ...


def encode_attestation_request(public_key: bytes, user_data: bytes | None, nonce: bytes | None) -> bytes:
    for name, value, limit in (("public_key", public_key, MAX_PUBLIC_KEY_LENGTH),
                               ("user_data", user_data, MAX_USER_DATA_LENGTH),
                               ("nonce", nonce, MAX_NONCE_LENGTH)):
        if value is not None and len(value) > limit:
            raise ValueError(f"{name} is {len(value)} bytes; the NSM accepts at most {limit}")
    if not public_key:
        raise ValueError("public_key is required: KMS encrypts its answer to it")
    request = cbor2.dumps({"Attestation": {"user_data": user_data, "nonce": nonce,
                                           "public_key": public_key}})
    if len(request) > NSM_REQUEST_MAX_SIZE:
        raise ValueError(f"NSM request is {len(request)} bytes; at most {NSM_REQUEST_MAX_SIZE}")
    return bytes(request)


def decode_attestation_response(response: bytes) -> bytes:
    try:
        # CBOR is self-delimiting: one item, whatever the buffer holds after it.
        message: Any = cbor2.CBORDecoder(io.BytesIO(response), max_depth=4).decode()
    except (cbor2.CBORDecodeError, ValueError) as error:
        raise NsmError(f"the NSM answered with invalid CBOR ({error})") from None
    if isinstance(message, dict) and "Error" in message:
        raise NsmError(f"the NSM refused the attestation request: {message['Error']}")
    body = message.get("Attestation") if isinstance(message, dict) else None
    document = body.get("document") if isinstance(body, dict) else None
    if not isinstance(document, bytes) or not document:
        raise NsmError("the NSM answer holds no attestation document")
    return document


class NsmAttestationSource:
    """Attestation documents from the Nitro Secure Module (`/dev/nsm`); only inside an enclave."""

    def __init__(self, device: str = NSM_DEVICE) -> None:
        self._device = device

    def attest(self, public_key: bytes, user_data: bytes | None, nonce: bytes | None) -> bytes:
        request = encode_attestation_request(public_key, user_data, nonce)
        return decode_attestation_response(self._call(request))

    def _call(self, request: bytes) -> bytes:  # pragma: no cover - needs /dev/nsm
        try:
            descriptor = os.open(self._device, os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:
            raise NsmError(f"cannot open {self._device} ({error.strerror}): attestation works only "
                           "inside a Nitro Enclave") from None
        request_buffer = ctypes.create_string_buffer(request, len(request))
        response_buffer = ctypes.create_string_buffer(NSM_RESPONSE_MAX_SIZE)
        raw = bytearray(_NSM_RAW.pack(ctypes.addressof(request_buffer), len(request),
                                      ctypes.addressof(response_buffer), NSM_RESPONSE_MAX_SIZE))
        try:
            fcntl.ioctl(descriptor, NSM_IOCTL_RAW, raw, True)
        except OSError as error:
            raise NsmError(f"NSM ioctl failed ({error.strerror})") from None
        finally:
            os.close(descriptor)
        length = min(_NSM_RAW.unpack(raw)[3], NSM_RESPONSE_MAX_SIZE)
        return response_buffer.raw[:length]
