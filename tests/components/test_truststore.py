"""Partner truststores: every check passing and failing, and the real thing — a TLS
server that requires client certificates admits exactly the partners in the bundle it was given."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from components.truststore import (
    TruststoreError,
    build_bundle,
    check_bundle,
    create_test_ca,
    issue_test_client,
    load_certificates,
)
from tests.support.mtls import MtlsServer, ServerIdentity, connect, make_server_identity

# One clock for every certificate the tests make and check: a CA made "now" at call time and
# checked against an earlier NOW would look not yet valid in a long run.
NOW = dt.datetime.now(dt.UTC)
TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def make_certificate(name: str, *, key: Any = None, signer: Any = None, digest: Any = None, ca: bool = True,
                     key_usage: bool = True, not_before: dt.datetime | None = None,
                     not_after: dt.datetime | None = None) -> x509.Certificate:
    """A self-signed certificate with exactly the flaw a test wants."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                          encipher_only=False, decipher_only=False), critical=True)
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                        critical=False)
    signer = signer or key
    return builder.sign(signer, None if isinstance(signer, ed25519.Ed25519PrivateKey)
                        else digest or hashes.SHA256())


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    octets = (length.bit_length() + 7) // 8
    encoded = bytes([length]) if length < 0x80 else bytes([0x80 | octets]) + length.to_bytes(octets, "big")
    return bytes([tag]) + encoded + content


SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
LEGACY_WITH_RSA = {"sha1": bytes.fromhex("06092a864886f70d010105"),
                   "md5": bytes.fromhex("06092a864886f70d010104")}


def legacy_signed_ca(digest: hashes.HashAlgorithm) -> x509.Certificate:
    """A CA signed with SHA-1 or MD5, which `cryptography` no longer signs: the SHA-256 TBS gets the
    legacy algorithm identifier (same length) and a real PKCS#1 v1.5 signature over it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tbs = make_certificate(f"{digest.name} CA", key=key).tbs_certificate_bytes
    legacy = LEGACY_WITH_RSA[digest.name]
    assert tbs.count(SHA256_WITH_RSA) == 1
    tbs = tbs.replace(SHA256_WITH_RSA, legacy)
    signature = key.sign(tbs, padding.PKCS1v15(), digest)
    algorithm = _der(0x30, legacy + b"\x05\x00")
    return x509.load_der_x509_certificate(_der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature)))


FIRST_OID, SECOND_OID = x509.ObjectIdentifier("1.2.3.4"), x509.ObjectIdentifier("1.2.3.5")


def damaged_ca(damage: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A CA certificate (PEM) that loads but whose extensions do not parse, and its key: `duplicate`
    holds one extension twice, `basic-constraints` a BasicConstraints that is not a SEQUENCE.
    `cryptography` refuses to build either, so the DER is edited (the signature no longer matches,
    which loading does not check)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{damage} CA")])
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
    )
    if damage == "duplicate":
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        for oid in (FIRST_OID, SECOND_OID):
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, b"\x05\x00"), critical=False)
    else:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x04\x00"), critical=True)
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    if damage == "duplicate":
        first, second = bytes.fromhex("06032a0304"), bytes.fromhex("06032a0305")  # the two OIDs in DER
        assert der.count(second) == 1
        der = der.replace(second, first)
    certificate = x509.load_der_x509_certificate(der)
    with pytest.raises((x509.DuplicateExtension, ValueError)):
        certificate.extensions  # noqa: B018 - the damage is where the checks read
    return certificate.public_bytes(serialization.Encoding.PEM), key


DAMAGE = [pytest.param("duplicate", "DuplicateExtension", id="duplicate-extension"),
          pytest.param("basic-constraints", "ValueError", id="malformed-basic-constraints")]


def checks(report: Any, severity: str) -> list[tuple[int | None, str]]:
    return [(f.index, f.check) for f in report.findings if f.severity == severity]


# --- check_bundle ------------------------------------------------------------------------------

def test_a_good_bundle_passes_every_check() -> None:
    ec_ca, _ = create_test_ca("partner-a CA", now=NOW)
    p384_ca, _ = create_test_ca("partner-b CA", now=NOW, key=ec.generate_private_key(ec.SECP384R1()))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_ca = make_certificate("partner-c CA", key=rsa_key, digest=hashes.SHA384())
    report = check_bundle(pem(ec_ca) + pem(p384_ca) + pem(rsa_ca), NOW)
    assert report.ok and report.findings == []
    assert [c.subject for c in report.certificates] == [
        "CN=partner-a CA", "CN=partner-b CA", "CN=partner-c CA"]
    assert report.to_json()["ok"] is True


@pytest.mark.parametrize(("certificate", "check", "words"), [
    pytest.param(lambda: make_certificate("old CA", not_before=NOW - dt.timedelta(days=400),
                                          not_after=NOW - dt.timedelta(days=1)), "expiry", "expired",
                 id="expired-ca"),
    pytest.param(lambda: make_certificate("a leaf", ca=False), "ca", "not a CA", id="leaf-not-ca"),
    pytest.param(lambda: make_certificate("weak CA", key=rsa.generate_private_key(
        public_exponent=65537, key_size=1024)), "key", "RSA-1024", id="rsa-1024"),
    pytest.param(lambda: legacy_signed_ca(hashes.SHA1()), "signature", "SHA1", id="sha1-signature"),
    pytest.param(lambda: legacy_signed_ca(hashes.MD5()), "signature", "MD5", id="md5-signature"),
    pytest.param(lambda: make_certificate("p521 CA", key=ec.generate_private_key(ec.SECP521R1()),
                                          digest=hashes.SHA512()), "key", "secp521r1", id="ec-p521"),
    pytest.param(lambda: make_certificate("ed CA", key=ed25519.Ed25519PrivateKey.generate()), "key",
                 "Ed25519", id="ed25519"),
], )
def test_each_failing_check_is_an_error(certificate: Any, check: str, words: str) -> None:
    good, _ = create_test_ca("partner-a CA", now=NOW)
    report = check_bundle(pem(good) + pem(certificate()), NOW)
    assert not report.ok
    assert (1, check) in checks(report, "error")
    assert any(words in f.message for f in report.errors), report.errors
    assert all(f.index == 1 for f in report.errors), "the good CA must not be blamed"


def test_a_ca_without_keycertsign_is_an_error_and_without_keyusage_a_warning() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no-sign CA")])
    no_sign = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    assert checks(check_bundle(pem(no_sign), NOW), "error") == [(0, "ca")]
    report = check_bundle(pem(make_certificate("legacy CA", key_usage=False)), NOW)
    assert report.ok and checks(report, "warning") == [(0, "ca")]


def test_expiring_within_30_days_is_a_warning_and_not_yet_valid_too() -> None:
    soon = make_certificate("soon CA", not_after=NOW + dt.timedelta(days=29))
    later = make_certificate("later CA", not_after=NOW + dt.timedelta(days=31))
    future = make_certificate("future CA", not_before=NOW + dt.timedelta(days=2))
    report = check_bundle(pem(soon) + pem(later) + pem(future), NOW)
    assert report.ok
    assert checks(report, "warning") == [(0, "expiry"), (2, "expiry")]
    assert checks(check_bundle(pem(later), NOW, expiry_warning_days=60), "warning") == [(0, "expiry")]


def test_a_duplicate_is_an_error() -> None:
    ca, _ = create_test_ca("partner-a CA", now=NOW)
    other, _ = create_test_ca("partner-b CA")
    report = check_bundle(pem(ca) + pem(other) + pem(ca), NOW)
    assert checks(report, "error") == [(2, "duplicate")]
    assert "#0" in report.errors[0].message


@pytest.mark.parametrize(("data", "check"), [
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"hello, I am not a truststore\n", "pem", id="garbage"),
    pytest.param(b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "pem",
                 id="not-der"),
    pytest.param(b"-----BEGIN CERTIFICATE-----\nMIIB\n", "pem", id="unterminated"),
    pytest.param(b"-----BEGIN CERTIFICATE-----\nMII*B\n-----END CERTIFICATE-----\n", "pem", id="bad-base64"),
])
def test_unparseable_input_is_an_error(data: bytes, check: str) -> None:
    report = check_bundle(data, NOW)
    assert not report.ok and check in {f.check for f in report.errors}


@pytest.mark.parametrize(("damage", "error"), DAMAGE)
def test_a_damaged_certificate_is_an_error_not_a_crash(damage: str, error: str) -> None:
    good, _ = create_test_ca("partner-a CA", now=NOW)
    report = check_bundle(pem(good) + damaged_ca(damage)[0] + pem(good), NOW)
    assert checks(report, "error") == [(1, "pem"), (2, "duplicate")]
    assert f"PEM block is not a usable certificate ({error}: " in report.errors[0].message
    assert [c.index for c in report.certificates] == [0, 2]


def test_a_private_key_or_stray_text_in_a_bundle_is_an_error() -> None:
    ca, key = create_test_ca("partner-a CA", now=NOW)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    report = check_bundle(pem(ca) + key_pem, NOW)
    assert checks(report, "error") == [(1, "pem")] and "PRIVATE KEY" in report.errors[0].message
    report = check_bundle(b"subject=CN=partner-a CA\n" + pem(ca), NOW)
    assert checks(report, "error") == [(None, "pem")]


# --- build_bundle ------------------------------------------------------------------------------

def write_ca(directory: Path, name: str) -> tuple[Path, x509.Certificate, Any]:
    certificate, key = create_test_ca(f"{name} CA")
    path = directory / f"{name}.pem"
    path.write_bytes(pem(certificate))
    return path, certificate, key


def test_build_is_plain_pem_in_partner_order_and_deterministic(tmp_path: Path) -> None:
    b_file, b_ca, _ = write_ca(tmp_path, "zeta")
    a_file, a_ca, _ = write_ca(tmp_path, "alpha")
    # A partner's file with a comment and an intermediate: the comment does not reach the bundle.
    intermediate, _ = create_test_ca("alpha intermediate")
    a_file.write_bytes(b"# alpha's chain\n" + pem(a_ca) + pem(intermediate))
    bundle = build_bundle({"zeta": b_file, "alpha": a_file})
    assert bundle == pem(a_ca) + pem(intermediate) + pem(b_ca)
    assert bundle == build_bundle({"alpha": a_file, "zeta": b_file})
    assert check_bundle(bundle, NOW).ok
    assert bundle.count(b"-----BEGIN CERTIFICATE-----") == 3 and b"#" not in bundle


def test_build_refuses_bad_inputs(tmp_path: Path) -> None:
    a_file, _, key = write_ca(tmp_path, "alpha")
    with pytest.raises(TruststoreError, match="at least one"):
        build_bundle({})
    with pytest.raises(TruststoreError, match="partner name"):
        build_bundle({"a b": a_file})
    with pytest.raises(TruststoreError, match=r"missing\.pem"):
        build_bundle({"alpha": tmp_path / "missing.pem"})
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"nothing here")
    with pytest.raises(TruststoreError, match="no PEM certificate"):
        build_bundle({"alpha": garbage})
    with_key = tmp_path / "with-key.pem"
    with_key.write_bytes(a_file.read_bytes() + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(TruststoreError, match="PRIVATE KEY"):
        build_bundle({"alpha": with_key})
    assert len(load_certificates(a_file.read_bytes(), "a")) == 1


@pytest.mark.parametrize(("damage", "error"), DAMAGE)
def test_build_refuses_a_damaged_certificate(tmp_path: Path, damage: str, error: str) -> None:
    a_file, _, _ = write_ca(tmp_path, "alpha")
    damaged = tmp_path / "damaged.pem"
    damaged.write_bytes(a_file.read_bytes() + damaged_ca(damage)[0])
    with pytest.raises(TruststoreError, match=rf"partner alpha: .*damaged\.pem: PEM block 2 is not a "
                                              rf"usable certificate \({error}: "):
        build_bundle({"alpha": damaged})


# --- issue_test_client -------------------------------------------------------------------------

def test_test_client_certificate_is_ec_p256_client_auth_and_verifies_against_its_ca() -> None:
    ca, key = create_test_ca("partner-a CA", days=10)
    cert_pem, key_pem = issue_test_client(ca, key, "CN=partner-a-test,O=Partner A", days=30)
    client = x509.load_pem_x509_certificate(cert_pem)
    client.verify_directly_issued_by(ca)
    assert client.subject.rfc4514_string() == "CN=partner-a-test,O=Partner A"
    assert client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH])
    assert not client.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    public = client.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert client.not_valid_after_utc <= ca.not_valid_after_utc  # never outlives its CA
    private = serialization.load_pem_private_key(key_pem, password=None)
    assert private.public_key() == public


def test_issue_test_client_refuses_what_cannot_work() -> None:
    ca, key = create_test_ca("partner-a CA", now=NOW)
    other_ca, other_key = create_test_ca("partner-b CA")
    with pytest.raises(TruststoreError, match="does not belong"):
        issue_test_client(ca, other_key, "CN=x", 1)
    with pytest.raises(TruststoreError, match="RFC 4514"):
        issue_test_client(ca, key, "not a name", 1)
    with pytest.raises(TruststoreError, match="days"):
        issue_test_client(ca, key, "CN=x", 0)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(TruststoreError, match="not a CA"):
        issue_test_client(make_certificate("leaf", key=leaf_key, ca=False), leaf_key, "CN=x", 1)
    with pytest.raises(TruststoreError, match="expired"):
        issue_test_client(ca, key, "CN=x", 1, now=NOW + dt.timedelta(days=400))
    assert other_ca != ca


# --- the real TLS test -------------------------------------------------------------------------

class Partner:
    def __init__(self, directory: Path, name: str) -> None:
        self.ca_file, self.ca, self.key = write_ca(directory, name)
        cert_pem, key_pem = issue_test_client(self.ca, self.key, f"CN={name}-client", days=1)
        self.client = (directory / f"{name}-client.pem", directory / f"{name}-client.key")
        self.client[0].write_bytes(cert_pem)
        self.client[1].write_bytes(key_pem)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerIdentity]]:
    directory = tmp_path_factory.mktemp("mtls")
    yield directory, make_server_identity(directory)


def self_signed_client(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = make_certificate(name, key=key, ca=False)
    paths = directory / f"{name}.pem", directory / f"{name}.key"
    paths[0].write_bytes(pem(certificate))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def impostor_client(directory: Path, partner: Partner) -> tuple[Path, Path]:
    """A CA with exactly partner A's name but another key, and a client it issued: names prove nothing."""
    impostor_ca, impostor_key = create_test_ca(partner.ca.subject.rfc4514_string().removeprefix("CN="))
    assert impostor_ca.subject == partner.ca.subject
    cert_pem, key_pem = issue_test_client(impostor_ca, impostor_key, "CN=alpha-client", days=1)
    paths = directory / "impostor.pem", directory / "impostor.key"
    paths[0].write_bytes(cert_pem)
    paths[1].write_bytes(key_pem)
    return paths


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=["tls1.2", "tls1.3"])
def test_tls_server_admits_partners_in_the_bundle_and_refuses_everyone_else(
        world: tuple[Path, ServerIdentity], version: ssl.TLSVersion) -> None:
    base, identity = world
    directory = base / version.name
    directory.mkdir()
    alpha, beta = Partner(directory, "alpha"), Partner(directory, "beta")
    bundle = directory / "truststore-v1.pem"
    bundle.write_bytes(build_bundle({"alpha": alpha.ca_file, "beta": beta.ca_file}))
    assert check_bundle(bundle.read_bytes(), NOW).ok

    def attempt(server: MtlsServer, client: tuple[Path, Path] | None) -> tuple[str, tuple[str, str]]:
        return connect(server.port, identity.ca_file, client, version), server.verdict()

    with MtlsServer(identity, bundle, maximum_version=version) as server:
        seen, (verdict, detail) = attempt(server, alpha.client)
        assert (seen, verdict, detail) == ("admitted", "admitted", "CN=alpha-client")
        seen, (verdict, detail) = attempt(server, beta.client)
        assert (seen, verdict, detail) == ("admitted", "admitted", "CN=beta-client")
        seen, (verdict, detail) = attempt(server, self_signed_client(directory, "self-signed"))
        assert (seen, verdict) == ("refused", "refused") and "certificate verify failed" in detail
        seen, (verdict, detail) = attempt(server, impostor_client(directory, alpha))
        assert (seen, verdict) == ("refused", "refused") and "certificate verify failed" in detail
        seen, (verdict, detail) = attempt(server, None)
        assert (seen, verdict) == ("refused", "refused") and "certificate" in detail

    # Partner beta leaves: rebuild without it, restart the server on the new version.
    bundle_v2 = directory / "truststore-v2.pem"
    bundle_v2.write_bytes(build_bundle({"alpha": alpha.ca_file}))
    with MtlsServer(identity, bundle_v2, maximum_version=version) as server:
        seen, (verdict, detail) = attempt(server, beta.client)
        assert (seen, verdict) == ("refused", "refused") and "certificate verify failed" in detail
        seen, (verdict, _) = attempt(server, alpha.client)
        assert (seen, verdict) == ("admitted", "admitted")


# --- one parser for the deploy, build and check -------------------------------------------------

def test_the_certificate_error_list_is_the_attestation_checks_list() -> None:
    # components cannot import the runtime, so each keeps the list; they must not drift apart.
    from components import truststore
    from ztai_runtime.x509_errors import CERTIFICATE_ERRORS

    assert truststore.CERTIFICATE_ERRORS == CERTIFICATE_ERRORS


def test_the_module_imports_no_pulumi() -> None:
    # The CLI imports it: pulumi would cost every `ztai truststore` command seconds.
    import subprocess
    import sys

    from tests.conftest import ROOT

    probe = "import sys, components.truststore; print(sorted(m for m in sys.modules if 'pulumi' in m))"
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert run.stdout.strip() == "[]"


def test_comment_lines_are_a_warning_and_stray_text_an_error() -> None:
    ca, _ = create_test_ca("partner-a CA")
    report = check_bundle(b"# partner A's root\n\n" + pem(ca) + b"  # rotated 2026\n", NOW)
    assert report.ok and checks(report, "warning") == [(None, "pem")]
    assert "2 comment lines" in report.warnings[0].message
    report = check_bundle(b"# partner A\nsubject=CN=partner-a CA\n" + pem(ca), NOW)
    assert checks(report, "error") == [(None, "pem")] and checks(report, "warning") == [(None, "pem")]


def test_the_shipped_placeholders_are_valid_cas_flagged_as_placeholders() -> None:
    from components.truststore import is_placeholder

    shipped = sorted((Path(__file__).resolve().parents[2] / "stacks" / "truststore")
                     .glob("placeholder-*.pem"))
    assert len(shipped) == 2
    for path in shipped:
        [certificate] = load_certificates(path.read_bytes(), path.name)
        assert is_placeholder(certificate)
        report = check_bundle(path.read_bytes(), NOW)
        assert report.ok and {(f.index, f.check) for f in report.warnings} == {(0, "placeholder"),
                                                                                (None, "pem")}
    assert not is_placeholder(create_test_ca("partner-a CA")[0])


def test_a_ca_named_like_a_placeholder_is_not_one() -> None:
    # Its key was kept: it admits every client it signs, so no check may call it harmless.
    from components.truststore import is_placeholder

    impostor, _ = create_test_ca("PLACEHOLDER acme real CA", now=NOW)
    assert not is_placeholder(impostor)
    report = check_bundle(pem(impostor), NOW)
    assert report.ok and [f.check for f in report.findings] == []


# --- review findings: one partner-name rule, encodings, library warnings, clear messages -----------
@pytest.mark.parametrize("name", ["Acme_Corp.v2", "Acme", "acme_corp", "acme.corp", "-acme", "a" * 64, ""])
def test_build_refuses_a_partner_name_the_partners_file_refuses(tmp_path: Path, name: str) -> None:
    from components.api_gateway import ApiPartner, partner_problems

    a_file, _, _ = write_ca(tmp_path, "alpha")
    with pytest.raises(TruststoreError, match="lower-case letters, digits and -, at most 63"):
        build_bundle({name: a_file})
    # The same name is refused in the partners file, by the same rule.
    assert partner_problems(ApiPartner(name=name, scopes=("s",), rate_limit=1, burst_limit=1),
                            scoped=False)


@pytest.mark.parametrize("name", ["acme-corp-2", "a", "0partner", "a" * 63])
def test_build_accepts_a_partner_name_the_partners_file_accepts(tmp_path: Path, name: str) -> None:
    from components.api_gateway import ApiPartner, partner_problems

    a_file, _, _ = write_ca(tmp_path, "alpha")
    assert build_bundle({name: a_file}) == a_file.read_bytes()
    assert not partner_problems(ApiPartner(name=name, scopes=("s",), rate_limit=1, burst_limit=1),
                                scoped=False)


def zero_serial_ca() -> bytes:
    """A CA certificate whose serial number is 0 (as some roots in system CA bundles have)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zero serial CA")])
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    der = certificate.public_bytes(serialization.Encoding.DER)
    version_and_serial = bytes.fromhex("a003020102020101")  # [0] v3, INTEGER 1
    assert der.count(version_and_serial) == 1
    # Serial 0; the signature no longer matches, which the checks do not look at.
    der = der.replace(version_and_serial, version_and_serial[:-1] + b"\x00")
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = b"\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


def test_a_non_positive_serial_is_a_finding_and_no_library_warning_leaks() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a CryptographyDeprecationWarning would fail the check
        report = check_bundle(zero_serial_ca(), NOW)
        assert len(load_certificates(zero_serial_ca(), "zero.pem")) == 1
    assert ("warning", "serial") in {(f.severity, f.check) for f in report.findings}
    assert "serial number 0 is not positive" in " ".join(f.message for f in report.warnings)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_utf16_truststore_is_named_as_utf16(encoding: str) -> None:
    text = pem(make_certificate("partner CA")).decode("ascii")
    report = check_bundle(text.encode(encoding), NOW)
    assert not report.ok
    messages = {f.check: f.message for f in report.errors}
    assert "UTF-16" in messages["encoding"] and "save it as UTF-8" in messages["encoding"]
    assert "pem" not in messages  # not "N bytes outside PEM blocks"
    with pytest.raises(TruststoreError, match="UTF-16"):
        load_certificates(text.encode(encoding), "ca.pem")
    assert check_bundle(text.encode("utf-8"), NOW).ok


def test_a_subject_that_is_not_rfc_4514_says_what_is_allowed() -> None:
    ca, key = create_test_ca("partner CA")
    with pytest.raises(TruststoreError) as raised:
        issue_test_client(ca, key, "garbage", 1)
    message = str(raised.value)
    assert "()" not in message and "not an RFC 4514 name; give ATTRIBUTE=VALUE pairs" in message
    assert "e.g. CN=partner-a-test" in message
