"""A test Nitro attestation PKI and an attestation source that signs real-format documents.

The documents are built like the NSM's: an untagged CBOR COSE_Sign1 array, protected header
{1: -35} (ES384), empty unprotected header, the payload map with every field (absent optional
fields written as null, as the NSM does), a 96-byte r || s signature by a P-384 leaf whose chain
runs leaf -> intermediate -> root (cabundle = [root, intermediate], root first). Only the root
differs from production: it is this module's, not AWS Nitro Enclaves Root-G1.

    pki = TestPki.create()
    source = TestAttestationSource(pki, measurements())             # usable as AttestationSource
    document = source.attest(public_key_der, user_data=None, nonce=None)
    verify_attestation_document(document, pki.root_der)

Forgeries for negative tests: `forgery="signature" | "payload" | "foreign-chain" | "expired-leaf"`,
and `sign_document` to sign any payload (missing fields, wrong types) with a valid leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from ztai_runtime.attestation.document import COSE_ALG_ES384, COSE_SIGN1_TAG, sig_structure

Forgery = Literal["signature", "payload", "foreign-chain", "expired-leaf"]
ZERO_PCR = bytes(48)
MODULE_ID = "i-0123456789abcdef0-enc0123456789abcdef"


def measurement(label: str) -> bytes:
    """A 48-byte PCR value that is stable for a label (what `nitro-cli build-enclave` prints)."""
    return hashlib.sha384(label.encode()).digest()


def measurements(image: str = "image-v1", *, signed: bool = False,
                 overrides: Mapping[int, bytes] | None = None) -> dict[int, bytes]:
    """PCR0-15 as an enclave reports them: 0-4 set, 8 set when the EIF is signed, the rest zero."""
    pcrs = {index: ZERO_PCR for index in range(16)}
    pcrs.update({0: measurement(f"{image}/pcr0"), 1: measurement("kernel/pcr1"),
                 2: measurement(f"{image}/pcr2"), 3: measurement("parent-role/pcr3"),
                 4: measurement("instance/pcr4")})
    if signed:
        pcrs[8] = measurement("signing-certificate/pcr8")
    pcrs.update(overrides or {})
    return pcrs


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Amazon"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "AWS"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificate(subject: str, subject_key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                 issuer_key: ec.EllipticCurvePrivateKey, not_before: datetime, not_after: datetime,
                 *, ca: bool, path_length: int | None = None,
                 basic_critical: bool = True) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                              critical=basic_critical)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                              critical=False))
    return builder.sign(issuer_key, hashes.SHA384())


def _p384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _issue_leaf(name: str, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
                not_before: datetime, not_after: datetime) -> Leaf:
    key = _p384()
    return Leaf(key, make_certificate(f"instance.{name}", key, issuer.subject, issuer_key, not_before,
                                  not_after, ca=False))


@dataclass(frozen=True)
class Leaf:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class TestPki:
    """Root (30 years) -> intermediate (the regional CA, 1 year) -> leaves (3 hours, as NSM's)."""

    __test__ = False  # not a pytest test class

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    leaf: Leaf
    name: str

    @classmethod
    def create(cls, *, now: datetime | None = None, name: str = "test.nitro-enclaves") -> TestPki:
        now = now or datetime.now(UTC)
        root_key, intermediate_key = _p384(), _p384()
        root = make_certificate(name, root_key, _name(name), root_key, now - timedelta(days=365),
                            now + timedelta(days=30 * 365), ca=True)
        intermediate = make_certificate(f"region.{name}", intermediate_key, root.subject, root_key,
                                    now - timedelta(days=30), now + timedelta(days=335), ca=True,
                                    path_length=0)
        leaf = _issue_leaf(name, intermediate, intermediate_key, now - timedelta(minutes=30),
                           now + timedelta(hours=2, minutes=30))
        return cls(root_key, root, intermediate_key, intermediate, leaf, name)

    def issue_leaf(self, not_before: datetime, not_after: datetime) -> Leaf:
        return _issue_leaf(self.name, self.intermediate, self.intermediate_key, not_before, not_after)

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    @property
    def cabundle(self) -> list[bytes]:
        return [self.root_der, self.intermediate.public_bytes(serialization.Encoding.DER)]


def es384_signature(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def payload_fields(pki: TestPki, pcrs: Mapping[int, bytes], *, leaf: Leaf | None = None,
                   timestamp: datetime | None = None, public_key: bytes | None = None,
                   user_data: bytes | None = None, nonce: bytes | None = None,
                   module_id: str = MODULE_ID) -> dict[str, Any]:
    """The payload map in the NSM's field order."""
    timestamp = timestamp or datetime.now(UTC)
    return {"module_id": module_id, "digest": "SHA384",
            "timestamp": int(timestamp.timestamp() * 1000), "pcrs": dict(pcrs),
            "certificate": (leaf or pki.leaf).der, "cabundle": pki.cabundle,
            "public_key": public_key, "user_data": user_data, "nonce": nonce}


def sign_document(payload: Mapping[str, Any] | bytes, key: ec.EllipticCurvePrivateKey, *,
                  protected: Mapping[int, Any] | bytes | None = None,
                  unprotected: Mapping[int, Any] | None = None, tagged: bool = False) -> bytes:
    """A COSE_Sign1 over `payload` (a map, or raw payload bytes) signed ES384 with `key`."""
    payload_bytes = payload if isinstance(payload, bytes) else bytes(cbor2.dumps(dict(payload)))
    if protected is None:
        protected = {1: COSE_ALG_ES384}
    protected_bytes = protected if isinstance(protected, bytes) else bytes(cbor2.dumps(dict(protected)))
    signature = es384_signature(key, sig_structure(protected_bytes, payload_bytes))
    array = [protected_bytes, dict(unprotected or {}), payload_bytes, signature]
    return bytes(cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, array) if tagged else array))


class TestAttestationSource:
    """An `AttestationSource` for tests: documents signed by a TestPki leaf, with given PCRs.

    clock: the documents' timestamp (default: now). forgery: make every document fail in one way.
    The documents it produced are kept in `documents` (tests read them back).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, pki: TestPki, pcrs: Mapping[int, bytes], *, forgery: Forgery | None = None,
                 clock: Callable[[], datetime] | None = None, tagged: bool = False,
                 module_id: str = MODULE_ID) -> None:
        self.pki, self.pcrs, self.forgery, self.tagged = pki, dict(pcrs), forgery, tagged
        self.clock = clock or (lambda: datetime.now(UTC))
        self.module_id = module_id
        self.documents: list[bytes] = []
        now = self.clock()
        if forgery == "foreign-chain":
            self._pki = TestPki.create(now=now, name="foreign.nitro-enclaves")
            self._leaf = self._pki.leaf
        elif forgery == "expired-leaf":
            self._pki = pki
            self._leaf = pki.issue_leaf(now - timedelta(hours=5), now - timedelta(hours=2))
        else:
            self._pki, self._leaf = pki, pki.leaf

    def attest(self, public_key: bytes, user_data: bytes | None, nonce: bytes | None) -> bytes:
        fields = payload_fields(self._pki, self.pcrs, leaf=self._leaf, timestamp=self.clock(),
                                public_key=public_key, user_data=user_data, nonce=nonce,
                                module_id=self.module_id)
        document = sign_document(fields, self._leaf.key, tagged=self.tagged)
        if self.forgery == "signature":
            document = document[:-1] + bytes([document[-1] ^ 0x01])
        elif self.forgery == "payload":
            # Same length, one PCR0 byte changed after signing: the structure still parses.
            pcr0 = self.pcrs[0]
            position = document.index(pcr0)
            document = document[:position] + bytes([pcr0[0] ^ 0xFF]) + document[position + 1:]
        self.documents.append(document)
        return document
