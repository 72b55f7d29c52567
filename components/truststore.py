"""Partner truststores for API Gateway mutual TLS (the partners control): the one parser
and validator of CA files, shared by the deploy (`components/api_gateway.py`) and the CLI (`ztai
truststore build|check|issue-test-client`), so a file one accepts the other accepts too.

A truststore is what API Gateway reads from S3 for a custom domain with mutual TLS: plain PEM
`CERTIFICATE` blocks, one after another, nothing else. It holds the CA certificates (roots and,
where a partner's chain needs them, intermediates) of every partner admitted; a client certificate
that chains to none of them is refused during the TLS handshake.

- `load_certificates` reads a CA file: every PEM block must be a certificate that parses; text
  outside the blocks (comments) is dropped.
- `build_bundle` concatenates the partners' CA files in partner-name order, re-encoded from the
  parsed certificates (comments, keys and stray text in the inputs never reach the bundle), so the
  same partners always give the same bytes. Removing a partner is building again without it: the
  result is a new S3 object version that no longer admits that partner.
- `check_bundle` validates a bundle as API Gateway would need it: every block a parseable
  certificate, CA certificates only, RSA >= 2048 or ECDSA P-256/P-384 keys, SHA-256 or stronger
  signatures, expiry (expired = error, expiring soon = warning), no duplicates. `#` comment lines
  (as in the shipped placeholder CA files) are a warning: build and the deploy drop them. The
  shipped placeholder CAs (subject starting "PLACEHOLDER") are a warning everywhere: they are
  valid CAs whose private key was discarded, so they admit no one until replaced.
- `create_test_ca` and `issue_test_client` make test partner CAs and client certificates (EC P-256,
  clientAuth) for tests and for a partner's onboarding check. They are not a production CA.

Why here: the deploy needs these checks, and components never import `ztai_runtime` (it is shipped
to Lambda and the enclave, which need none of this); the CLI may import components. This module
imports `cryptography` only, never pulumi, so the CLI stays quick.

On-disk format: the bundle is RFC 7468 PEM (`-----BEGIN CERTIFICATE-----`, strict base64 DER),
the format has no version field of its own because API Gateway defines it; its versioning is the
S3 object version the gateway pins.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

from components.text_files import NotUtf8TextError, decode_utf8

# What `cryptography` raises on a damaged certificate (at load or when a part is first read). The
# attestation check keeps the same list in ztai_runtime/x509_errors.py (components cannot import
# the runtime); a test holds the two equal.
CERTIFICATE_ERRORS = (
    ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType, UnsupportedAlgorithm)
# SHA-256 fingerprints of the shipped placeholder CAs (stacks/truststore/placeholder-*.pem), whose
# private keys were discarded: they admit no client. Told by fingerprint, never by name: anyone can
# name a CA "PLACEHOLDER ..." and keep its key, and that CA admits every client it signs.
PLACEHOLDER_FINGERPRINTS = frozenset({
    "e674df7e7c763d6c5c129f36f38b07d0712e616a4aa4878ad422800522fb4050",  # first-party
    "5dd1f2a8b66f62887da85fa944117e463bd45ff151c0014e4901105e6a0b3d8c",  # example-partner
})

EXPIRY_WARNING_DAYS = 30
MIN_RSA_BITS = 2048
# API Gateway's mutual TLS accepts RSA-2048 or stronger and ECDSA on these curves, SHA-256 or stronger.
ACCEPTED_CURVES = {ec.SECP256R1.name: "P-256", ec.SECP384R1.name: "P-384"}
ACCEPTED_HASHES = {hashes.SHA256.name, hashes.SHA384.name, hashes.SHA512.name}
MAX_TEST_CLIENT_DAYS = 397

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END ([A-Z0-9 ]+)-----", re.DOTALL)
# The one partner-name rule, for the partners file (the API's paths and resource names are made from
# the name) and `ztai truststore build` alike: here, because components.api_gateway imports this
# module and the CLI reads it without loading pulumi.
PARTNER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
PARTNER_NAME_RULE = "lower-case letters, digits and -, at most 63"

Severity = Literal["error", "warning"]
CaPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class TruststoreError(Exception):
    """An input the truststore tool cannot use (unreadable file, no certificate in it, bad name)."""


@dataclass(frozen=True)
class Finding:
    severity: Severity
    check: str  # stable id: pem, ca, key, signature, expiry, duplicate, empty, placeholder
    index: int | None  # position of the certificate in the bundle (0-based), None for the whole file
    subject: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "check": self.check, "index": self.index,
                "subject": self.subject, "message": self.message}


@dataclass(frozen=True)
class CertificateSummary:
    index: int
    subject: str
    issuer: str
    sha256: str
    not_after: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "subject": self.subject, "issuer": self.issuer,
                "sha256": self.sha256, "notAfter": self.not_after.isoformat()}


@dataclass(frozen=True)
class Report:
    certificates: list[CertificateSummary] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "certificates": [c.to_json() for c in self.certificates],
                "errors": [f.to_json() for f in self.errors],
                "warnings": [f.to_json() for f in self.warnings]}


def _base64(body: bytes) -> bytes:
    return base64.b64decode(b"".join(body.split()), validate=True)  # strict: no stray characters


def _load_certificate(der: bytes) -> x509.Certificate:
    """A certificate whose every part the checks read parses now, so a damaged one (a duplicate
    extension, a malformed BasicConstraints) is refused here rather than failing a check later."""
    with warnings.catch_warnings():
        # A serial number that is not positive makes `cryptography` warn on stderr (system CA bundles
        # hold such roots); the checks report it as a finding instead, naming the certificate.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        certificate = x509.load_der_x509_certificate(der)
        certificate.extensions  # noqa: B018 - parsed on first access
        certificate.public_key()
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        certificate.not_valid_before_utc  # noqa: B018
        certificate.not_valid_after_utc  # noqa: B018
    return certificate


def _encoding_problem(pem: bytes) -> str | None:
    """What `text_files.decode_utf8` says about a file that is not UTF-8 text (UTF-16 saved by an
    editor, a binary file), completing "the file ..."; None for UTF-8 (PEM is ASCII)."""
    try:
        decode_utf8(pem)
    except NotUtf8TextError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class _PemBlock:
    """One PEM block of an input: its certificate, or what is wrong with it."""

    certificate: x509.Certificate | None
    problem: str | None  # completes "PEM block N ...", e.g. "is 'PRIVATE KEY', not a CERTIFICATE"


def _pem_blocks(pem: bytes) -> list[_PemBlock]:
    """Every PEM block of `pem`, in order; text outside the blocks is the caller's concern."""
    blocks: list[_PemBlock] = []
    for match in _PEM_BLOCK.finditer(pem):
        label, body, end_label = match[1].decode("ascii"), match[2], match[3].decode("ascii")
        if label != end_label:
            blocks.append(_PemBlock(None, f"begins {label!r} but ends {end_label!r}"))
        elif label != "CERTIFICATE":
            blocks.append(_PemBlock(None, f"is {label!r}, not a CERTIFICATE (never put a private key "
                                          "in a truststore)"))
        else:
            try:
                blocks.append(_PemBlock(_load_certificate(_base64(body)), None))
            except CERTIFICATE_ERRORS as error:  # bad base64 too: binascii.Error is a ValueError
                blocks.append(_PemBlock(None, f"is not a usable certificate ({type(error).__name__}: "
                                              f"{error})"))
    return blocks


def load_certificates(pem: bytes, source: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file; anything else in a PEM block (a key, a CSR) or a damaged
    certificate is refused. Text outside the blocks (comments) is ignored."""
    blocks = _pem_blocks(pem)
    if not blocks:
        if (encoding := _encoding_problem(pem)) is not None:
            raise TruststoreError(f"{source} {encoding}")
        raise TruststoreError(f"{source}: no PEM certificate found (no PEM CERTIFICATE block, '-----BEGIN "
                              "CERTIFICATE-----')")
    certificates: list[x509.Certificate] = []
    for number, block in enumerate(blocks, start=1):
        if block.certificate is None:
            raise TruststoreError(f"{source}: PEM block {number} {block.problem}")
        certificates.append(block.certificate)
    return certificates


def build_bundle(partner_ca_files: Mapping[str, Path]) -> bytes:
    """The truststore for these partners: their CA certificates as plain PEM, ordered by partner
    name then by position in the partner's file. Deterministic: same inputs, same bytes."""
    if not partner_ca_files:
        raise TruststoreError("no partner given: a truststore needs at least one CA")
    parts: list[bytes] = []
    for partner in sorted(partner_ca_files):
        if not PARTNER_NAME.fullmatch(partner):
            raise TruststoreError(f"partner name {partner!r}: {PARTNER_NAME_RULE}, starting with a letter "
                                  "or digit (the name used in the partners file)")
        path = partner_ca_files[partner]
        try:
            data = path.read_bytes()
        except OSError as error:
            raise TruststoreError(f"partner {partner}: {path}: {error.strerror or error}") from None
        for certificate in load_certificates(data, f"partner {partner}: {path}"):
            parts.append(certificate.public_bytes(serialization.Encoding.PEM))
    return b"".join(parts)


def check_bundle(pem: bytes, now: dt.datetime, *, expiry_warning_days: int = EXPIRY_WARNING_DAYS) -> Report:
    """Validate a truststore; the report lists every problem, not just the first."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    findings: list[Finding] = []
    summaries: list[CertificateSummary] = []
    blocks = _pem_blocks(pem)
    outside = _PEM_BLOCK.sub(b"", pem)
    comments = [line for line in outside.splitlines() if line.lstrip().startswith(b"#")]
    stray = b"".join(line for line in outside.splitlines()
                     if line.strip() and not line.lstrip().startswith(b"#"))
    encoding = _encoding_problem(pem) if stray and not blocks else None
    if encoding is not None:
        # A UTF-16 file's PEM is hidden by its NUL bytes: name the encoding, not a byte count.
        findings.append(Finding("error", "encoding", None, None, f"the file {encoding}"))
    elif stray:
        findings.append(Finding("error", "pem", None, None,
                                f"{len(stray)} bytes outside PEM blocks (or an unterminated block): "
                                "a truststore is plain PEM certificates only"))
    if comments:
        findings.append(Finding("warning", "pem", None, None,
                                f"{len(comments)} comment lines ('#') outside the PEM blocks: "
                                "`ztai truststore build` and the deploy drop them; upload only what "
                                "they write, as API Gateway reads plain PEM"))
    if not blocks:
        findings.append(Finding("error", "empty", None, None, "no certificate in the truststore"))
    seen: dict[str, int] = {}
    for index, block in enumerate(blocks):
        certificate = block.certificate
        if certificate is None:
            findings.append(Finding("error", "pem", index, None, f"PEM block {block.problem}"))
            continue
        subject = certificate.subject.rfc4514_string()
        fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
        summaries.append(CertificateSummary(index, subject, certificate.issuer.rfc4514_string(),
                                            fingerprint, certificate.not_valid_after_utc))

        def add(severity: Severity, check: str, message: str, *, _i: int = index, _s: str = subject) -> None:
            findings.append(Finding(severity, check, _i, _s, message))

        if fingerprint in seen:
            add("error", "duplicate", f"same certificate as #{seen[fingerprint]} (SHA-256 {fingerprint})")
        else:
            seen[fingerprint] = index
        for severity, check, message in _certificate_findings(certificate, now, expiry_warning_days):
            add(severity, check, message)
    return Report(summaries, findings)


def _certificate_findings(certificate: x509.Certificate, now: dt.datetime,
                          expiry_warning_days: int) -> list[tuple[Severity, str, str]]:
    found: list[tuple[Severity, str, str]] = []
    try:
        basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = basic.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        found.append(("error", "ca", "not a CA certificate (BasicConstraints CA=true missing): a leaf "
                                     "certificate in a truststore admits only itself, use its issuing CA"))
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            found.append(("error", "ca", "KeyUsage lacks keyCertSign: this CA may not sign certificates"))
    except x509.ExtensionNotFound:
        # RFC 5280 requires KeyUsage on CA certificates, but TLS stacks accept a CA without it.
        found.append(("warning", "ca", "no KeyUsage extension (RFC 5280 requires keyCertSign on a CA)"))

    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            found.append(("error", "key", f"RSA-{key.key_size} key: at least RSA-{MIN_RSA_BITS} required"))
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ACCEPTED_CURVES:
            found.append(("error", "key", f"EC key on {key.curve.name}: only P-256 and P-384 are accepted"))
    else:
        found.append(("error", "key", f"{type(key).__name__.lstrip('_')} key: only RSA and ECDSA "
                                      "(P-256, P-384) are accepted"))

    try:
        digest = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        digest = None
    if digest is None or digest.name not in ACCEPTED_HASHES:
        name = digest.name.upper() if digest else certificate.signature_algorithm_oid.dotted_string
        found.append(("error", "signature", f"signed with {name}: SHA-256 or stronger required"))

    with warnings.catch_warnings():  # reading it warns again, as loading did
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        serial = certificate.serial_number
    if serial <= 0:
        found.append(("warning", "serial", f"serial number {serial} is not positive "
                                           "(RFC 5280 requires a positive one; TLS libraries may refuse "
                                           "the certificate in future)"))
    if is_placeholder(certificate):
        found.append(("warning", "placeholder",
                      "the shipped placeholder CA (its private key was discarded): it admits no "
                      "client; replace it with your CA's certificate before deploying"))

    not_after = certificate.not_valid_after_utc
    if not_after <= now:
        found.append(("error", "expiry", f"expired on {not_after.isoformat()}"))
    elif not_after - now <= dt.timedelta(days=expiry_warning_days):
        found.append(("warning", "expiry", f"expires on {not_after.isoformat()} (within "
                                           f"{expiry_warning_days} days): get the partner's next CA"))
    if certificate.not_valid_before_utc > now:
        found.append(("warning", "expiry",
                      f"not valid before {certificate.not_valid_before_utc.isoformat()}"))
    return found


def is_placeholder(certificate: x509.Certificate) -> bool:
    """One of the shipped placeholder CAs (whose keys were discarded), told by its fingerprint."""
    return certificate.fingerprint(hashes.SHA256()).hex() in PLACEHOLDER_FINGERPRINTS


def ca_file_problems(pem: bytes, source: str, now: dt.datetime) -> tuple[list[x509.Certificate], Report]:
    """A CA file as the deploy and `truststore build` read it: its certificates (raises
    TruststoreError naming `source` if a block is not one), and the report of `check_bundle` on
    them re-encoded, which is what reaches the truststore."""
    certificates = load_certificates(pem, source)
    bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    return certificates, check_bundle(bundle, now)


def _signing_hash(key: CaPrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def create_test_ca(common_name: str, *, days: int = 365, now: dt.datetime | None = None,
                   key: CaPrivateKey | None = None) -> tuple[x509.Certificate, CaPrivateKey]:
    """A self-signed test partner CA (EC P-256 unless `key` is given). For tests and onboarding
    rehearsals only: its key lives wherever the caller puts it."""
    now = now or dt.datetime.now(dt.UTC)
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _signing_hash(key))
    )
    return certificate, key


def issue_test_client(ca_cert: x509.Certificate, ca_key: CaPrivateKey, subject: str | x509.Name,
                      days: int, *, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A client certificate (EC P-256, clientAuth) issued by `ca_cert`, as (certificate PEM,
    unencrypted PKCS#8 key PEM). `subject` is an RFC 4514 string such as "CN=partner-a-test"."""
    now = now or dt.datetime.now(dt.UTC)
    if not 1 <= days <= MAX_TEST_CLIENT_DAYS:
        raise TruststoreError(f"days {days}: give 1 to {MAX_TEST_CLIENT_DAYS}")
    if isinstance(subject, str):
        try:
            subject = x509.Name.from_rfc4514_string(subject)
        except ValueError as error:
            detail = f" ({error})" if str(error) else ""  # the library often gives no reason
            raise TruststoreError(f"subject {subject!r}: not an RFC 4514 name{detail}; give "
                                  "ATTRIBUTE=VALUE pairs separated by commas, e.g. "
                                  "CN=partner-a-test,O=Example Corp") from None
    if not subject.rdns:
        raise TruststoreError("subject is empty: give at least CN=...")
    if ca_key.public_key() != ca_cert.public_key():
        raise TruststoreError("the CA key does not belong to the CA certificate")
    try:
        if not ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise x509.ExtensionNotFound("not a CA", x509.BasicConstraints.oid)
    except x509.ExtensionNotFound:
        raise TruststoreError("the issuer certificate is not a CA (BasicConstraints CA=true)") from None
    if ca_cert.not_valid_after_utc <= now:
        raise TruststoreError(f"the CA expired on {ca_cert.not_valid_after_utc.isoformat()}")

    key = ec.generate_private_key(ec.SECP256R1())
    # A certificate never outlives its issuer: clients would be refused before it expires.
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, _signing_hash(ca_key))
    )
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def load_ca_key(pem: bytes, source: str) -> CaPrivateKey:
    """An unencrypted RSA or EC private key in PEM (PKCS#8 or traditional)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise TruststoreError(f"{source}: the key is encrypted; give an unencrypted test CA key") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise TruststoreError(f"{source}: not a PEM private key this tool can use ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TruststoreError(f"{source}: only RSA and EC CA keys are supported")
    return key
