"""`ztai truststore build|check|issue-test-client` in-process (`ztai.cli.main`): exit status, messages,
the files left behind, and a client issued by the CLI admitted by a TLS server using the CLI's bundle."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from components.truststore import create_test_ca
from tests.components.test_truststore import damaged_ca, make_certificate, pem
from tests.support.mtls import MtlsServer, connect, make_server_identity, pem_files
from ztai.cli import main
from ztai.errors import EXIT_OK, EXIT_USAGE, EXIT_VIOLATION


def partner_ca(directory: Path, name: str) -> tuple[Path, Path]:
    certificate, key = create_test_ca(f"{name} CA")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return pem_files(directory, f"{name}-ca", certificate, key)


def test_build_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alpha, _ = partner_ca(tmp_path, "alpha")
    beta, _ = partner_ca(tmp_path, "beta")
    bundle = tmp_path / "truststore.pem"
    assert main(["truststore", "build", "--partner", f"beta={beta}", "--partner", f"alpha={alpha}",
                 "--output", str(bundle)]) == EXIT_OK
    assert bundle.read_bytes() == alpha.read_bytes() + beta.read_bytes()
    assert "wrote" in capsys.readouterr().err
    assert main(["truststore", "check", str(bundle), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and [c["subject"] for c in report["certificates"]] == ["CN=alpha CA", "CN=beta CA"]
    # Building again needs --force; without beta the new file no longer holds its CA.
    assert main(["truststore", "build", "--partner", f"alpha={alpha}", "--output", str(bundle)]) == EXIT_USAGE
    assert "--force" in capsys.readouterr().err
    assert main(["truststore", "build", "--partner", f"alpha={alpha}", "--output", str(bundle),
                 "--force"]) == EXIT_OK
    assert bundle.read_bytes() == alpha.read_bytes()


def test_build_refuses_a_bundle_with_errors_and_writes_nothing(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    alpha, _ = partner_ca(tmp_path, "alpha")
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pem(make_certificate("a leaf", ca=False)))
    bundle = tmp_path / "truststore.pem"
    assert main(["truststore", "build", "--partner", f"alpha={alpha}", "--partner", f"leafy={leaf}",
                 "--output", str(bundle)]) == EXIT_VIOLATION
    captured = capsys.readouterr()
    assert "error: #1: ca: not a CA certificate" in captured.err and "was not written" in captured.err
    assert not bundle.exists()
    # The same partner twice is a duplicate, found by the check.
    assert main(["truststore", "build", "--partner", f"alpha={alpha}", "--partner", f"again={alpha}",
                 "--output", str(bundle)]) == EXIT_VIOLATION
    assert "duplicate" in capsys.readouterr().err and not bundle.exists()


@pytest.mark.parametrize(("arguments", "message"), [
    (["--partner", "alpha"], "expected NAME=CA.pem"),
    (["--partner", "alpha=ALPHA", "--partner", "alpha=ALPHA"], "given twice"),
    (["--partner", "alpha=missing.pem"], "missing.pem"),
    (["--partner", "alpha=ALPHA", "--warning-days", "-1"], "--warning-days"),
])
def test_build_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str],
                            message: str) -> None:
    alpha, _ = partner_ca(tmp_path, "alpha")
    arguments = [a.replace("ALPHA", str(alpha)).replace("missing.pem", str(tmp_path / "missing.pem"))
                 for a in arguments]
    assert main(["truststore", "build", *arguments, "--output", str(tmp_path / "out.pem")]) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.pem").exists()


def test_check_exit_statuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expiring = tmp_path / "expiring.pem"
    expiring.write_bytes(pem(make_certificate("soon CA", not_after=dt.datetime.now(dt.UTC)
                                              + dt.timedelta(days=10))))
    assert main(["truststore", "check", str(expiring)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "warning: #0: expiry" in captured.err
    assert "ok: 1 certificates, 0 errors, 1 warnings" in captured.out
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"garbage")
    assert main(["truststore", "check", str(garbage), "--json"]) == EXIT_VIOLATION
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and {e["check"] for e in report["errors"]} == {"pem", "empty"}
    assert main(["truststore", "check", str(tmp_path / "missing.pem")]) == EXIT_USAGE
    with pytest.raises(SystemExit) as exit_info:
        main(["truststore", "check"])
    assert exit_info.value.code == EXIT_USAGE


def test_issue_test_client_writes_a_0600_key_and_refuses_to_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_cert, ca_key = partner_ca(tmp_path, "alpha")
    out_cert, out_key = tmp_path / "client.pem", tmp_path / "client.key"
    command = ["truststore", "issue-test-client", "--ca-cert", str(ca_cert), "--ca-key", str(ca_key),
               "--subject", "CN=alpha-onboarding", "--output-cert", str(out_cert),
               "--output-key", str(out_key)]
    assert main(command) == EXIT_OK
    assert stat.S_IMODE(out_key.stat().st_mode) == 0o600
    client = x509.load_pem_x509_certificate(out_cert.read_bytes())
    client.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_cert.read_bytes()))
    assert client.subject.rfc4514_string() == "CN=alpha-onboarding"
    assert (client.not_valid_after_utc - client.not_valid_before_utc).days == 7  # the default, +5 min
    first = out_key.read_bytes()
    capsys.readouterr()

    assert main(command) == EXIT_USAGE
    assert "exists; pass --force" in capsys.readouterr().err and out_key.read_bytes() == first
    assert main([*command, "--force", "--days", "2"]) == EXIT_OK
    assert out_key.read_bytes() != first and stat.S_IMODE(out_key.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries


def test_issue_test_client_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_cert, ca_key = partner_ca(tmp_path, "alpha")
    _, other_key = partner_ca(tmp_path, "beta")
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))

    def issue(*extra: str, key_file: Path = ca_key) -> int:
        return main(["truststore", "issue-test-client", "--ca-cert", str(ca_cert), "--ca-key", str(key_file),
                     "--output-cert", str(tmp_path / "c.pem"), "--output-key", str(tmp_path / "c.key"),
                     *extra])

    for extra, key_file, message in [
        (("--subject", "CN=x"), other_key, "does not belong"),
        (("--subject", "CN=x"), encrypted, "encrypted"),
        (("--subject", "nonsense"), ca_key, "RFC 4514"),
        (("--subject", "CN=x", "--days", "1000"), ca_key, "days 1000"),
    ]:
        assert issue(*extra, key_file=key_file) == EXIT_USAGE
        assert message in capsys.readouterr().err
    assert not (tmp_path / "c.pem").exists() and not (tmp_path / "c.key").exists()


def test_cli_bundle_and_cli_client_against_a_real_tls_server(tmp_path: Path) -> None:
    identity = make_server_identity(tmp_path)
    alpha_ca, alpha_key = partner_ca(tmp_path, "alpha")
    beta_ca, beta_key = partner_ca(tmp_path, "beta")
    clients = {}
    for name, ca_cert, ca_key in [("alpha", alpha_ca, alpha_key), ("beta", beta_ca, beta_key)]:
        clients[name] = tmp_path / f"{name}-client.pem", tmp_path / f"{name}-client.key"
        assert main(["truststore", "issue-test-client", "--ca-cert", str(ca_cert), "--ca-key", str(ca_key),
                     "--subject", f"CN={name}-client", "--output-cert", str(clients[name][0]),
                     "--output-key", str(clients[name][1]), "--days", "1"]) == EXIT_OK
    bundle = tmp_path / "truststore.pem"
    assert main(["truststore", "build", "--partner", f"alpha={alpha_ca}", "--partner", f"beta={beta_ca}",
                 "--output", str(bundle)]) == EXIT_OK
    with MtlsServer(identity, bundle) as server:
        for name in ("alpha", "beta"):
            assert connect(server.port, identity.ca_file, clients[name]) == "admitted"
            assert server.verdict() == ("admitted", f"CN={name}-client")
    assert main(["truststore", "build", "--partner", f"alpha={alpha_ca}", "--output", str(bundle),
                 "--force"]) == EXIT_OK
    with MtlsServer(identity, bundle) as server:
        assert connect(server.port, identity.ca_file, clients["beta"]) == "refused"
        assert server.verdict()[0] == "refused"
        assert connect(server.port, identity.ca_file, clients["alpha"]) == "admitted"
        assert server.verdict()[0] == "admitted"


def test_a_damaged_certificate_is_reported_not_a_traceback(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    alpha, _ = partner_ca(tmp_path, "alpha")
    damaged_pem, damaged_key = damaged_ca("duplicate")
    damaged, damaged_key_file = tmp_path / "damaged.pem", tmp_path / "damaged.key"
    damaged.write_bytes(damaged_pem)
    damaged_key_file.write_bytes(damaged_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(alpha.read_bytes() + damaged_pem)

    assert main(["truststore", "check", str(bundle)]) == EXIT_VIOLATION
    captured = capsys.readouterr()
    assert "error: #1: pem: PEM block is not a usable certificate (DuplicateExtension: " in captured.err
    assert "REFUSED: 1 certificates, 1 errors" in captured.out and "Traceback" not in captured.err

    output = tmp_path / "out.pem"
    assert main(["truststore", "build", "--partner", f"alpha={alpha}", "--partner", f"broken={damaged}",
                 "--output", str(output)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert f"partner broken: {damaged}: PEM block 1 is not a usable certificate" in captured.err
    assert "Traceback" not in captured.err and not output.exists()

    assert main(["truststore", "issue-test-client", "--ca-cert", str(damaged), "--ca-key",
                 str(damaged_key_file), "--subject", "CN=x", "--output-cert", str(tmp_path / "c.pem"),
                 "--output-key", str(tmp_path / "c.key")]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "not a usable certificate (DuplicateExtension: " in captured.err
    assert "Traceback" not in captured.err and not (tmp_path / "c.key").exists()


# -- the shipped placeholder CAs: accepted with a warning by check, build and the deploy -------------
PLACEHOLDERS = sorted((Path(__file__).resolve().parents[2] / "stacks" / "truststore")
                      .glob("placeholder-*.pem"))


@pytest.mark.parametrize("placeholder", PLACEHOLDERS, ids=[p.name for p in PLACEHOLDERS])
def test_check_accepts_a_shipped_placeholder_with_warnings(placeholder: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["truststore", "check", str(placeholder), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["errors"] == []
    assert {(w["check"], w["index"]) for w in report["warnings"]} == {("placeholder", 0), ("pem", None)}
    assert any("admits no client; replace it" in w["message"] for w in report["warnings"])
    assert main(["truststore", "check", str(placeholder)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "warning: #0: placeholder: the shipped placeholder CA" in captured.err
    assert ": ok: 1 certificates, 0 errors, 2 warnings" in captured.out


def test_build_accepts_the_placeholder_with_its_warning(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "truststore.pem"
    assert main(["truststore", "build", "--partner", f"example={PLACEHOLDERS[0]}", "--output", str(bundle),
                 "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    # The comments are dropped from the bundle: only the placeholder warning remains.
    assert [(w["check"], w["index"]) for w in report["warnings"]] == [("placeholder", 0)]
    assert b"#" not in bundle.read_bytes()


def test_check_of_a_directory_or_missing_file_exits_2(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["truststore", "check", str(tmp_path)]) == EXIT_USAGE
    assert "is a directory; INPUT is a PEM file" in capsys.readouterr().err
    assert main(["truststore", "check", str(tmp_path / "missing.pem")]) == EXIT_USAGE
    assert "missing.pem: No such file or directory" in capsys.readouterr().err


def test_issue_test_client_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_cert, ca_key = partner_ca(tmp_path, "alpha")
    out_cert, out_key = tmp_path / "client.pem", tmp_path / "client.key"
    assert main(["truststore", "issue-test-client", "--ca-cert", str(ca_cert), "--ca-key", str(ca_key),
                 "--subject", "CN=alpha-onboarding", "--output-cert", str(out_cert), "--output-key",
                 str(out_key), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {
        "result": "issued", "subject": "CN=alpha-onboarding", "issuer": "CN=alpha CA",
        "certificate": str(out_cert), "key": str(out_key), "warnings": []}


@pytest.mark.parametrize(("output", "source"), [
    ("--output-key", "--ca-key"), ("--output-cert", "--ca-cert"), ("--output-key", "--ca-cert"),
    ("--output-cert", "--ca-key")])
def test_issue_test_client_never_overwrites_the_ca_even_with_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, source: str) -> None:
    ca_cert, ca_key = partner_ca(tmp_path, "alpha")
    files = {"--ca-cert": str(ca_cert), "--ca-key": str(ca_key), "--output-cert": str(tmp_path / "c.pem"),
             "--output-key": str(tmp_path / "c.key")}
    hard, soft = tmp_path / "hard-link", tmp_path / "soft-link"
    os.link(files[source], hard)
    soft.symlink_to(files[source])
    before = {path: Path(path).read_bytes() for path in (files["--ca-cert"], files["--ca-key"])}
    for target in (files[source], str(hard), str(soft)):
        arguments = {**files, output: target}
        assert main(["truststore", "issue-test-client", "--subject", "CN=x", "--force",
                     *[item for pair in arguments.items() for item in pair]]) == EXIT_USAGE
        error = capsys.readouterr().err
        assert f"{output} {target} is the {source} file; write the client certificate and key to new " \
               "files" in error
        assert {path: Path(path).read_bytes() for path in before} == before
    assert not (tmp_path / "c.pem").exists() and not (tmp_path / "c.key").exists()
    assert main(["truststore", "issue-test-client", "--subject", "CN=x",
                 *[item for pair in files.items() for item in pair]]) == EXIT_OK


def test_build_refuses_a_partner_name_the_partners_file_refuses(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    alpha, _ = partner_ca(tmp_path, "alpha")
    out = tmp_path / "out.pem"
    assert main(["truststore", "build", "--partner", f"Acme_Corp.v2={alpha}", "--output",
                 str(out)]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "partner name 'Acme_Corp.v2': lower-case letters, digits and -, at most 63" in error
    assert not out.exists()
    assert main(["truststore", "build", "--partner", f"acme-corp-2={alpha}", "--output", str(out)]) == EXIT_OK


def test_check_names_a_utf16_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alpha, _ = partner_ca(tmp_path, "alpha")
    wide = tmp_path / "wide.pem"
    wide.write_bytes(alpha.read_text(encoding="ascii").encode("utf-16"))
    assert main(["truststore", "check", str(wide)]) == EXIT_VIOLATION
    error = capsys.readouterr().err
    assert "encoding: the file is UTF-16 text" in error and "save it as UTF-8" in error
    assert "bytes outside PEM blocks" not in error
    assert main(["truststore", "check", str(alpha)]) == EXIT_OK


def test_issue_test_client_names_what_a_subject_is(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ca_cert, ca_key = partner_ca(tmp_path, "alpha")
    assert main(["truststore", "issue-test-client", "--ca-cert", str(ca_cert), "--ca-key", str(ca_key),
                 "--subject", "garbage", "--output-cert", str(tmp_path / "c.pem"), "--output-key",
                 str(tmp_path / "c.key")]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "subject 'garbage': not an RFC 4514 name; give ATTRIBUTE=VALUE pairs" in error
    assert "()" not in error
