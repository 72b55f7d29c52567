"""Nitro Enclaves attestation documents: parse and verify, failing closed with a reason.

The format (aws-nitro-enclaves-nsm-api `docs/attestation_process.md`; COSE: RFC 9052 section 4):

    COSE_Sign1 = [ protected:   bstr, the CBOR map {1: -35} (alg ES384)
                   unprotected: map (empty in NSM documents)
                   payload:     bstr, the CBOR map below
                   signature:   bstr, 96 bytes: r || s, each 48 bytes big-endian ]

    payload = { "module_id": tstr (non-empty), "digest": "SHA384", "timestamp": uint (ms, UTC),
                "pcrs": { 0..31 => bstr (48 bytes for SHA384) } (1 to 32 entries),
                "certificate": bstr (DER, 1..1024), "cabundle": [+ bstr (DER, 1..1024)] (root first),
                ? "public_key": bstr (1..1024), ? "user_data": bstr (0..512), ? "nonce": bstr (0..512) }

NSM writes the array untagged; COSE also allows the tagged form (tag 18), which is accepted. The
optional fields are written as CBOR null when absent (the NSM serialises Rust `Option`s), so null
is read as "absent" for those three and nowhere else.

Verification, all of it or nothing:
  1. structure: the COSE array, the protected header (alg ES384, no `crit`), every payload field,
     its type and size, no unknown field, no duplicate map key, no trailing bytes, no indefinite
     lengths (NSM writes definite lengths only);
  2. the certificate chain leaf -> cabundle[-1] -> ... -> cabundle[0], where cabundle[0] must be
     byte-for-byte the trusted root given by the caller (AWS Nitro Enclaves Root-G1 in production):
     each signature, issuer/subject chaining, validity at the verification time AND at the
     document's timestamp, CA basic constraints (critical, cA, path length) and key usage
     (keyCertSign on CAs, digitalSignature on the leaf), no unknown critical extension;
  3. the ES384 signature over Sig_structure ["Signature1", protected, b"", payload] with the leaf's
     P-384 key.

What this module does not decide: whether the measurements are the expected ones (that is the
relying party's policy; `pcrs_all_zero` flags debug-mode enclaves) or whether the document is
fresh enough (`max_age`, off by default: a document carries no challenge unless a nonce is used).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtensionOID

from ztai_runtime.x509_errors import CERTIFICATE_ERRORS

COSE_SIGN1_TAG = 18
COSE_HEADER_ALG = 1
COSE_HEADER_CRIT = 2
COSE_ALG_ES384 = -35
SIGNATURE1_CONTEXT = "Signature1"
ES384_SIGNATURE_LENGTH = 96
DIGEST = "SHA384"
PCR_LENGTH = 48  # SHA-384
MAX_PCR_INDEX = 31
MAX_PCRS = 32
MAX_CERTIFICATE_LENGTH = 1024
MAX_PUBLIC_KEY_LENGTH = 1024
MAX_USER_DATA_LENGTH = 512
MAX_NONCE_LENGTH = 512
# Far above any NSM document (the NSM answers in at most 12 KiB): bounds the work on hostile input.
MAX_DOCUMENT_LENGTH = 64 * 1024
# Deep enough for the COSE array holding the payload map holding pcrs/cabundle; nothing deeper.
_MAX_CBOR_DEPTH = 4
_MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last a datetime holds
# PCR0 (image), PCR1 (kernel and bootstrap), PCR2 (application): all zero in debug mode.
IMAGE_PCRS: tuple[int, ...] = (0, 1, 2)

REQUIRED_FIELDS = ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle")
OPTIONAL_FIELDS = ("public_key", "user_data", "nonce")

# Extensions this verifier understands; any other extension marked critical fails the chain
# (RFC 5280 section 4.2: a certificate with an unrecognised critical extension must be rejected).
_UNDERSTOOD_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})


class AttestationError(ValueError):
    """The attestation document is refused. `reason` is a stable word for logs and callers:
    malformed, algorithm, chain, expired, signature, stale."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"attestation document refused ({reason}): {message}")
        self.reason = reason


@dataclass(frozen=True)
class AttestationDocument:
    """A verified attestation document. Only `verify_attestation_document` makes one."""

    module_id: str
    digest: str
    timestamp: datetime  # UTC; the document's own claim, signed by the NSM
    pcrs: Mapping[int, bytes]  # read-only
    certificate: bytes  # DER of the leaf that signed the document
    cabundle: tuple[bytes, ...]  # DER, root first
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None

    def pcr_hex(self, index: int) -> str | None:
        """PCR `index` as lower-case hex (the form of KMS's attestation condition keys), or None."""
        value = self.pcrs.get(index)
        return value.hex() if value is not None else None

    @property
    def debug_mode(self) -> bool:
        """True when an image PCR (0, 1 or 2) is all zero: a `--debug-mode` enclave."""
        return pcrs_all_zero(self.pcrs)


def pcrs_all_zero(pcrs: Mapping[int, bytes], indices: Iterable[int] = IMAGE_PCRS) -> bool:
    """True when any PCR among `indices` is present and made of zero bytes only.

    A debug-mode enclave reports PCR0, PCR1 and PCR2 as zeros (its memory can be read from the
    parent, so it proves nothing); a policy must never accept such a value. Unused PCRs (5-7,
    9-15, and 8 for an unsigned image) are zero in every document, so only the image PCRs are
    looked at by default.
    """
    return any(index in pcrs and not any(pcrs[index]) for index in indices)


# -- CBOR / COSE ----------------------------------------------------------------------------------

def _decode_cbor(data: bytes, what: str) -> Any:
    """One CBOR item that is exactly `data`: no trailing bytes, no duplicate map keys, definite
    lengths only (NSM writes nothing else), bounded nesting."""
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(stream, max_depth=_MAX_CBOR_DEPTH, allow_indefinite=False,
                                    allow_duplicate_keys=False)
        item = decoder.decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as error:
        raise AttestationError("malformed", f"{what} is not valid CBOR ({error})") from None
    if stream.tell() != len(data):
        raise AttestationError("malformed", f"{what} has {len(data) - stream.tell()} trailing bytes")
    _check_plain(item, what, _MAX_CBOR_DEPTH)
    return item


def _check_plain(item: Any, what: str, depth: int) -> None:
    """Only the data model the documents use: integers, text, bytes, arrays, maps, null, booleans,
    and the COSE_Sign1 tag. cbor2 turns other tags into Python objects (dates, decimals, sets,
    shared references, which can even be cyclic): none has a place in a document."""
    if depth < 0:
        raise AttestationError("malformed", f"{what} nests too deeply (or refers to itself)")
    if item is None or isinstance(item, bool | int | str | bytes):
        return
    if isinstance(item, list | tuple):
        for element in item:
            _check_plain(element, what, depth - 1)
    elif isinstance(item, Mapping):
        for key, value in item.items():
            _check_plain(key, what, depth - 1)
            _check_plain(value, what, depth - 1)
    elif isinstance(item, cbor2.CBORTag) and item.tag == COSE_SIGN1_TAG:
        _check_plain(item.value, what, depth - 1)
    else:
        raise AttestationError("malformed", f"{what} holds a {type(item).__name__} "
                                            "(a CBOR tag or type documents do not use)")


@dataclass(frozen=True)
class _CoseSign1:
    protected: bytes
    payload: bytes
    signature: bytes


def _parse_cose_sign1(data: bytes) -> _CoseSign1:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AttestationError("malformed", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise AttestationError("malformed", "empty document")
    if len(data) > MAX_DOCUMENT_LENGTH:
        raise AttestationError("malformed", f"{len(data)} bytes; at most {MAX_DOCUMENT_LENGTH} accepted")
    item = _decode_cbor(data, "the document")
    if isinstance(item, cbor2.CBORTag):
        if item.tag != COSE_SIGN1_TAG:
            raise AttestationError("malformed", f"CBOR tag {item.tag}; a COSE_Sign1 is untagged or tag 18")
        item = item.value
    # cbor2 6.x returns a tagged array as a tuple and an untagged one as a list.
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise AttestationError("malformed", "not a COSE_Sign1 (a CBOR array of 4 items)")
    protected, unprotected, payload, signature = item
    if not isinstance(protected, bytes):
        raise AttestationError("malformed", "COSE protected header is not a byte string")
    if not isinstance(unprotected, Mapping):
        raise AttestationError("malformed", "COSE unprotected header is not a map")
    if not isinstance(payload, bytes):
        # A detached payload (null) is valid COSE, but a document without its payload is not.
        raise AttestationError("malformed", "COSE payload is not a byte string")
    if not isinstance(signature, bytes):
        raise AttestationError("malformed", "COSE signature is not a byte string")
    header = _decode_cbor(protected, "the COSE protected header") if protected else {}
    if not isinstance(header, Mapping):
        raise AttestationError("malformed", "COSE protected header does not hold a map")
    if COSE_HEADER_CRIT in header:
        raise AttestationError("algorithm", "COSE header lists critical parameters; none are understood")
    algorithm = header.get(COSE_HEADER_ALG)
    if type(algorithm) is not int or algorithm != COSE_ALG_ES384:
        raise AttestationError("algorithm", f"COSE alg {algorithm!r}; only ES384 ({COSE_ALG_ES384}) "
                                            "in the protected header is accepted")
    if COSE_HEADER_ALG in unprotected or COSE_HEADER_CRIT in unprotected:
        raise AttestationError("algorithm", "alg/crit in the unprotected COSE header")
    if len(signature) != ES384_SIGNATURE_LENGTH:
        raise AttestationError("signature", f"ES384 signature is {len(signature)} bytes; "
                                            f"expected {ES384_SIGNATURE_LENGTH} (r || s)")
    return _CoseSign1(protected, payload, signature)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 section 4.4: the bytes a COSE_Sign1 signature covers (no external AAD)."""
    return bytes(cbor2.dumps([SIGNATURE1_CONTEXT, protected, b"", payload]))


def es384_signature_to_der(signature: bytes) -> bytes:
    """COSE's fixed-length r || s to the DER ECDSA-Sig-Value that `cryptography` verifies."""
    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                int.from_bytes(signature[half:], "big"))


# -- payload ----------------------------------------------------------------------------------------

def _byte_string(fields: Mapping[str, Any], name: str, low: int, high: int,
                 optional: bool = False) -> bytes | None:
    value = fields.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, bytes):
        raise AttestationError("malformed", f"{name} is not a byte string")
    if not low <= len(value) <= high:
        raise AttestationError("malformed", f"{name} is {len(value)} bytes; {low}..{high} allowed")
    return value


def _parse_payload(payload: bytes) -> dict[str, Any]:
    fields = _decode_cbor(payload, "the attestation payload")
    if not isinstance(fields, Mapping):
        raise AttestationError("malformed", "the payload is not a CBOR map")
    unknown = [key for key in fields if key not in REQUIRED_FIELDS + OPTIONAL_FIELDS]
    if unknown:
        raise AttestationError("malformed", f"unknown field(s) {sorted(map(repr, unknown))}")
    missing = [name for name in REQUIRED_FIELDS if fields.get(name) is None]
    if missing:
        raise AttestationError("malformed", f"required field(s) missing or null: {', '.join(missing)}")

    module_id = fields["module_id"]
    if not isinstance(module_id, str) or not module_id:
        raise AttestationError("malformed", "module_id is not a non-empty text string")
    if not isinstance(fields["digest"], str) or fields["digest"] != DIGEST:
        raise AttestationError("algorithm", f"digest {fields['digest']!r}; only {DIGEST!r} is accepted")
    timestamp = fields["timestamp"]
    if type(timestamp) is not int or not 0 < timestamp <= _MAX_TIMESTAMP_MS:
        raise AttestationError("malformed", "timestamp is not a positive integer of milliseconds "
                                            "before the year 10000")

    pcrs = fields["pcrs"]
    if not isinstance(pcrs, Mapping) or not 1 <= len(pcrs) <= MAX_PCRS:
        raise AttestationError("malformed", f"pcrs is not a map of 1..{MAX_PCRS} entries")
    parsed_pcrs: dict[int, bytes] = {}
    for index, value in pcrs.items():
        if type(index) is not int or not 0 <= index <= MAX_PCR_INDEX:
            raise AttestationError("malformed", f"PCR index {index!r} is not an integer 0..{MAX_PCR_INDEX}")
        if not isinstance(value, bytes) or len(value) != PCR_LENGTH:
            size = len(value) if isinstance(value, bytes) else type(value).__name__
            raise AttestationError("malformed", f"PCR{index} is {size}; a SHA-384 PCR is {PCR_LENGTH} bytes")
        parsed_pcrs[index] = value

    certificate = _byte_string(fields, "certificate", 1, MAX_CERTIFICATE_LENGTH)
    cabundle = fields["cabundle"]
    if not isinstance(cabundle, list | tuple) or not cabundle:
        raise AttestationError("malformed", "cabundle is not a non-empty array")
    for position, entry in enumerate(cabundle):
        if not isinstance(entry, bytes) or not 1 <= len(entry) <= MAX_CERTIFICATE_LENGTH:
            raise AttestationError("malformed", f"cabundle[{position}] is not a DER certificate of "
                                                f"1..{MAX_CERTIFICATE_LENGTH} bytes")
    return {
        "module_id": module_id, "digest": DIGEST,
        "timestamp": datetime.fromtimestamp(timestamp / 1000, tz=UTC),
        "pcrs": MappingProxyType(dict(sorted(parsed_pcrs.items()))),
        "certificate": certificate, "cabundle": tuple(cabundle),
        "public_key": _byte_string(fields, "public_key", 1, MAX_PUBLIC_KEY_LENGTH, optional=True),
        "user_data": _byte_string(fields, "user_data", 0, MAX_USER_DATA_LENGTH, optional=True),
        "nonce": _byte_string(fields, "nonce", 0, MAX_NONCE_LENGTH, optional=True),
    }


# -- certificate chain ------------------------------------------------------------------------------



def _load_certificate(der: bytes, what: str) -> x509.Certificate:
    """A certificate whose every part used below parses now, so damage fails here, as "chain"."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        certificate.extensions  # noqa: B018
        certificate.public_key()
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        certificate.not_valid_before_utc  # noqa: B018
        certificate.not_valid_after_utc  # noqa: B018
    except CERTIFICATE_ERRORS as error:
        raise AttestationError("chain", f"{what} is not a usable DER X.509 certificate "
                                        f"({type(error).__name__}: {error})") from None
    return certificate


def _check_validity(certificate: x509.Certificate, what: str, at: datetime, label: str) -> None:
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise AttestationError("expired", f"{what} is valid {certificate.not_valid_before_utc.isoformat()} "
                                          f"to {certificate.not_valid_after_utc.isoformat()}, not at "
                                          f"{label} {at.isoformat()}")


def _extension(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[Any] | None:
    try:
        return certificate.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def _check_extensions(certificate: x509.Certificate, what: str, *, ca: bool,
                      cas_below: int) -> None:
    for extension in certificate.extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
            raise AttestationError("chain", f"{what} has an unrecognised critical extension "
                                            f"{extension.oid.dotted_string}")
    basic = _extension(certificate, ExtensionOID.BASIC_CONSTRAINTS)
    usage = _extension(certificate, ExtensionOID.KEY_USAGE)
    if ca:
        if basic is None or not basic.critical or not basic.value.ca:
            raise AttestationError("chain", f"{what} is not a CA (critical basicConstraints cA=TRUE)")
        path_length = basic.value.path_length
        if path_length is not None and cas_below > path_length:
            raise AttestationError("chain", f"{what} allows {path_length} CA(s) below it; "
                                            f"the chain has {cas_below}")
        if usage is None or not usage.value.key_cert_sign:
            raise AttestationError("chain", f"{what} lacks the keyCertSign key usage")
    else:
        if basic is not None and basic.value.ca:
            raise AttestationError("chain", f"{what} is a CA certificate, not an end entity")
        if usage is None or not usage.value.digital_signature:
            raise AttestationError("chain", f"{what} lacks the digitalSignature key usage")


def _verify_chain(leaf_der: bytes, cabundle: Sequence[bytes], trusted_root_der: bytes,
                  times: Sequence[tuple[str, datetime]]) -> x509.Certificate:
    """The leaf, once the chain from it up to the trusted root verified."""
    if cabundle[0] != trusted_root_der:
        root = _load_certificate(cabundle[0], "cabundle[0]")
        raise AttestationError("chain", f"cabundle[0] ({root.subject.rfc4514_string()}) is not the "
                                        "trusted root certificate")
    leaf = _load_certificate(leaf_der, "the signing certificate")
    # leaf, then the bundle from the end back to the root: each certificate issued by the next.
    chain = [(leaf, "the signing certificate")] + [
        (_load_certificate(cabundle[position], f"cabundle[{position}]"), f"cabundle[{position}]")
        for position in range(len(cabundle) - 1, -1, -1)]
    for depth, (certificate, what) in enumerate(chain):
        for label, at in times:
            _check_validity(certificate, what, at, label)
        _check_extensions(certificate, what, ca=depth > 0, cas_below=max(depth - 1, 0))
        if depth + 1 < len(chain):
            issuer, issuer_what = chain[depth + 1]
            try:
                certificate.verify_directly_issued_by(issuer)
            except (*CERTIFICATE_ERRORS, InvalidSignature) as error:
                raise AttestationError("chain", f"{what} is not issued by {issuer_what} "
                                                f"({type(error).__name__}: {error})") from None
    root = chain[-1][0]
    try:
        root.verify_directly_issued_by(root)  # the anchor is self-signed (and not damaged)
    except (*CERTIFICATE_ERRORS, InvalidSignature):
        raise AttestationError("chain", "the trusted root is not a self-signed certificate") from None
    return leaf


# -- entry point ------------------------------------------------------------------------------------

def verify_attestation_document(data: bytes, trusted_root_der: bytes, *, now: datetime | None = None,
                                max_age: timedelta | None = None,
                                clock_skew: timedelta = timedelta(minutes=5)) -> AttestationDocument:
    """Parse and verify an NSM attestation document against `trusted_root_der`; see the module doc.

    now: the verification time (default: the current time). Every certificate must be valid both
        at `now` and at the document's timestamp.
    max_age: refuse documents older than this at `now` (default None: not checked). A timestamp
        more than `clock_skew` in the future of `now` is always refused.
    Raises AttestationError; returns the verified document.
    """
    if not trusted_root_der:
        raise ValueError("a trusted root certificate (DER) is required")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cose = _parse_cose_sign1(data)
    fields = _parse_payload(cose.payload)
    timestamp: datetime = fields["timestamp"]
    if timestamp > now + clock_skew:
        raise AttestationError("stale", f"timestamp {timestamp.isoformat()} is in the future of "
                                        f"{now.isoformat()}")
    if max_age is not None and now - timestamp > max_age:
        raise AttestationError("stale", f"document from {timestamp.isoformat()} is older than {max_age}")
    leaf = _verify_chain(fields["certificate"], fields["cabundle"], trusted_root_der,
                         [("the verification time", now), ("the document timestamp", timestamp)])
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise AttestationError("algorithm", "the signing certificate's key is not ECDSA P-384 (ES384)")
    try:
        key.verify(es384_signature_to_der(cose.signature), sig_structure(cose.protected, cose.payload),
                   ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError("signature", "the ES384 signature does not verify with the signing "
                                            "certificate's key") from None
    return AttestationDocument(**fields)
