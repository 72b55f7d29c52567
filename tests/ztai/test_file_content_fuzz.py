"""No file content makes a runtime command crash: tokenize, detokenize, weights and truststore fed
random bytes, damaged text (not UTF-8, UTF-16, byte-order marks, huge lines) and damaged versions
of good files, in-process against moto. Every run must end in 0, 1 or 2 with a message, never in a
traceback (exit 3)."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from components.truststore import create_test_ca
from tests.ztai_runtime.test_tokenize import MAC_ALIAS, World, aws_environment, create_vault_table, make_world
from ztai.cli import main
from ztai.errors import EXIT_OK, EXIT_USAGE, EXIT_VIOLATION

# Runs are in-process with moto: quick, but each still calls the CLI end to end. No example
# database: nothing is written into the repository.
FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

BOMS = [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]
HUGE_LINE = b"x" * 300_000


def encodings(text: str) -> st.SearchStrategy[bytes]:
    """`text` as a user's export might encode it: UTF-8, UTF-16, Latin-1 (where it can)."""
    options = [text.encode("utf-8"), text.encode("utf-16"), text.encode("utf-16-le")]
    with contextlib.suppress(UnicodeEncodeError):  # not every text has a Latin-1 form
        options.append(text.encode("latin-1"))
    return st.sampled_from(options)


def csv_like() -> st.SearchStrategy[bytes]:
    cell = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
        ['"', '""', '"a,b"', "a\nb", "\r", "é", "\x00", "tk1_abc", "tv1_" + "A" * 43])
    row = st.lists(cell, min_size=0, max_size=4)
    delimiter = st.sampled_from([",", ";", "\t", "|"])

    def render(parts: tuple[str, list[list[str]], str, bool]) -> str:
        header, rows, separator, quoted = parts
        lines = [header.replace(",", separator)] + [separator.join(f'"{c}"' if quoted else c for c in r)
                                                    for r in rows]
        return "\r\n".join(lines) + "\r\n"

    text = st.tuples(st.sampled_from(["id,email", "email", "email,email", "id,mail", ""]),
                     st.lists(row, max_size=6), delimiter, st.booleans()).map(render)
    return st.tuples(st.sampled_from(BOMS), text.flatmap(encodings),
                     st.sampled_from([b"", HUGE_LINE, b"\r\n" + HUGE_LINE])).map(lambda p: p[0] + p[1] + p[2])


def good_csv() -> st.SearchStrategy[bytes]:
    """Well-formed UTF-8 CSV with the column, odd values in it: the runs that reach KMS and the
    row loop, not only the header check."""
    value = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)

    def render(rows: list[tuple[str, str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows([("id", "email"), *rows])
        return buffer.getvalue().encode("utf-8")

    return st.lists(st.tuples(value, value), max_size=8).map(render)


def good_jsonl() -> st.SearchStrategy[bytes]:
    email = st.none() | st.integers() | st.text(max_size=20) | JSON_VALUES
    record = st.fixed_dictionaries({"email": email}, optional={"id": JSON_VALUES})
    return st.lists(record, min_size=1, max_size=6).map(
        lambda records: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=5), children, max_size=3), max_leaves=8)


def jsonl_like() -> st.SearchStrategy[bytes]:
    record = st.dictionaries(st.sampled_from(["email", "id", "x"]), JSON_VALUES, max_size=3)
    line = (record.map(lambda r: json.dumps(r, ensure_ascii=False))
            | st.sampled_from(["", "{", "[1]", '"email"', "NaN", '{"email": 1e400}', '{"email": "\\ud800"}',
                               "[" * 5000 + "]" * 5000, '{"email": ' + "[" * 3000 + "]" * 3000 + "}"]))
    text = st.lists(line, max_size=6).map(lambda lines: "\n".join(lines) + "\n")
    return st.tuples(st.sampled_from(BOMS), text.flatmap(encodings),
                     st.sampled_from([b"", HUGE_LINE])).map(lambda p: p[0] + p[1] + p[2])


ANY_BYTES = st.binary(max_size=3000)


def run(*args: str) -> tuple[int, str]:
    """Exit status and stderr of one in-process run; stderr is read from a capture."""
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(io.StringIO()):
        status = main(list(args))
    return status, captured.getvalue()


def assert_handled(status: int, stderr: str) -> None:
    assert status in (EXIT_OK, EXIT_VIOLATION, EXIT_USAGE), stderr
    assert "Traceback" not in stderr, stderr


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with aws_environment(), mock_aws():
        yield create_vault_table(make_world(), "fuzz-vault")


def in_directory(name: str, content: bytes, action: Callable[[Path, Path], tuple[int, str]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / name
        source.write_bytes(content)
        assert_handled(*action(source, Path(directory)))


@FUZZ
@given(content=good_csv() | csv_like() | ANY_BYTES)
def test_tokenize_csv(world: World, content: bytes) -> None:
    in_directory("in.csv", content, lambda source, directory: run(
        "tokenize", "--key-id", MAC_ALIAS, "--domain", "d", "--columns", "email", str(source),
        str(directory / "out.csv")))


@FUZZ
@given(content=good_jsonl() | jsonl_like() | ANY_BYTES)
def test_tokenize_jsonl(world: World, content: bytes) -> None:
    in_directory("in.jsonl", content, lambda source, directory: run(
        "tokenize", "--key-id", MAC_ALIAS, "--domain", "d", "--columns", "email", str(source),
        str(directory / "out.jsonl")))


@FUZZ
@given(content=good_csv() | good_jsonl() | csv_like() | jsonl_like() | ANY_BYTES,
       suffix=st.sampled_from([".csv", ".jsonl"]))
def test_detokenize(world: World, content: bytes, suffix: str) -> None:
    in_directory("in" + suffix, content, lambda source, directory: run(
        "detokenize", "--table", world.table, "--vault-key-id", world.vault_key, "--domain", "d",
        "--columns", "email", str(source), str(directory / ("out" + suffix))))


@pytest.fixture(scope="module")
def sealed(world: World, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A good message (three frames) under a moto key, to damage."""
    key_arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    directory = tmp_path_factory.mktemp("weights")
    (directory / "w.bin").write_bytes(bytes(range(256)) * 40)
    status, stderr = run("weights", "encrypt", "--key-id", key_arn, "--context", "model=m",
                         str(directory / "w.bin"), str(directory / "w.enc"))
    assert status == EXIT_OK, stderr
    return (directory / "w.enc").read_bytes()


def damaged(message: bytes) -> st.SearchStrategy[bytes]:
    """`message` cut, extended, or with bytes changed anywhere (the header included)."""
    position = st.integers(min_value=0, max_value=len(message) - 1)
    flipped = st.tuples(position, st.integers(1, 255)).map(
        lambda p: message[:p[0]] + bytes([message[p[0]] ^ p[1]]) + message[p[0] + 1:])
    cut = position.map(lambda p: message[:p])
    extended = st.binary(min_size=1, max_size=40).map(lambda tail: message + tail)
    return flipped | cut | extended


@FUZZ
@given(data=st.data())
def test_weights_decrypt(world: World, sealed: bytes, data: st.DataObject) -> None:
    content = data.draw(damaged(sealed) | ANY_BYTES | st.sampled_from([b"", sealed[:1], b"\x01" * 5]))
    in_directory("w.enc", content, lambda source, directory: run(
        "weights", "decrypt", "--context", "model=m", str(source), str(directory / "out")))


@FUZZ
@given(content=ANY_BYTES | jsonl_like())
def test_weights_encrypt_stack_outputs(world: World, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "w.bin").write_bytes(b"weights")
        in_directory("outputs.json", content, lambda source, _: run(
            "weights", "encrypt", "--key-id", "alias/weights", "--stack-outputs", str(source),
            str(Path(directory) / "w.bin"), str(Path(directory) / "w.enc")))


def pem_like() -> st.SearchStrategy[bytes]:
    certificate, key = create_test_ca("fuzz CA")
    good = certificate.public_bytes(serialization.Encoding.PEM)
    der = certificate.public_bytes(serialization.Encoding.DER)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    body = ANY_BYTES.map(base64.encodebytes)
    block = body.map(lambda b: b"-----BEGIN CERTIFICATE-----\n" + b + b"-----END CERTIFICATE-----\n")
    damaged_der = st.tuples(st.integers(0, len(der) - 1), st.integers(1, 255)).map(
        lambda p: b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(
            der[:p[0]] + bytes([der[p[0]] ^ p[1]]) + der[p[0] + 1:]) + b"-----END CERTIFICATE-----\n")
    parts = st.lists(st.sampled_from([good, key_pem, b"# comment\n", b"subject=CN=x\n", b"\xff\xfe",
                                      b"-----BEGIN CERTIFICATE-----\nMIIB\n", HUGE_LINE]) | block
                     | damaged_der, max_size=4)
    return parts.map(b"".join)


@FUZZ
@given(content=pem_like() | ANY_BYTES)
def test_truststore_check_and_build(content: bytes) -> None:
    in_directory("ca.pem", content, lambda source, _: run("truststore", "check", str(source)))
    in_directory("ca.pem", content, lambda source, directory: run(
        "truststore", "build", "--partner", f"p={source}", "--output", str(directory / "bundle.pem")))


@FUZZ
@given(certificate=pem_like() | ANY_BYTES, key=ANY_BYTES | pem_like())
def test_truststore_issue_test_client(certificate: bytes, key: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        (base / "ca.pem").write_bytes(certificate)
        (base / "ca.key").write_bytes(key)
        assert_handled(*run("truststore", "issue-test-client", "--ca-cert", str(base / "ca.pem"),
                            "--ca-key", str(base / "ca.key"), "--subject", "CN=x",
                            "--output-cert", str(base / "c.pem"), "--output-key", str(base / "c.key")))
