"""`ztai trail verify PATH`: exit 0 for a valid trail copy, 1 naming each problem (text and
--json), 2 with a message for every input that cannot be used."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cloudtrail import Trail, build_trail, new_key
from ztai.cli import main


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture
def trail(tmp_path: Path, key: rsa.RSAPrivateKey) -> Trail:
    return build_trail(tmp_path / "copy", key, hours=3)


def test_a_valid_trail_exits_0(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trail", "verify", str(trail.root)]) == 0
    assert "3 of 3 digest files valid, 6 of 6 log files valid, 0 problem(s)" in capsys.readouterr().out


def test_problems_exit_1_with_kind_and_file(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    trail.path(trail.logs[2]).unlink()
    trail.path(trail.logs[4]).write_bytes(gzip.compress(b"{}"))
    assert main(["trail", "verify", str(trail.root)]) == 1
    out = capsys.readouterr().out
    assert f"log-missing\t{trail.logs[2]}\t" in out
    assert f"log-altered\t{trail.logs[4]}\t" in out


def test_json_report(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    trail.path(trail.digests[1].relative).unlink()
    assert main(["trail", "verify", str(trail.root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert {"kind": "digest-missing", "file": trail.digests[1].document["digestS3Object"]} in [
        {"kind": problem["kind"], "file": problem["file"]} for problem in report["problems"]]
    assert report["summary"]["digests"] == 2


def test_public_keys_option_and_window(trail: Trail, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.json"
    trail.keys_file.rename(keys)
    assert main(["trail", "verify", str(trail.root), "--public-keys", str(keys),
                 "--start", "2026-03-01T11:30:00Z", "--end", "2026-03-01T13:00:00Z"]) == 0
    assert "2 of 2 digest files valid" in capsys.readouterr().out


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_no_such_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["trail", "verify", str(tmp_path / "absent")], capsys)
    assert "absent: no such directory" in err


def test_a_directory_without_awslogs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     trail: Trail) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    err = usage_error(["trail", "verify", str(empty), "--public-keys", str(trail.keys_file)], capsys)
    assert "no AWSLogs folder" in err


def test_no_digests(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    for digest in trail.digests:
        path = trail.path(digest.relative)
        path.unlink()
        path.with_name(path.name + ".metadata.json").unlink()
    assert "no digest files" in usage_error(["trail", "verify", str(trail.root)], capsys)


def test_a_digest_that_is_not_gzip(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    trail.path(trail.digests[0].relative).write_bytes(b"plain")
    err = usage_error(["trail", "verify", str(trail.root)], capsys)
    assert f"{trail.digests[0].relative}: not a gzip file" in err


def test_a_digest_that_is_not_json(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    trail.path(trail.digests[0].relative).write_bytes(gzip.compress(b"[1,"))
    err = usage_error(["trail", "verify", str(trail.root)], capsys)
    assert f"{trail.digests[0].relative}: not a JSON digest" in err


def test_a_file_in_the_digest_folder_that_is_not_a_digest(trail: Trail,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    stray = trail.path(trail.digests[0].relative).with_name("notes.txt")
    stray.write_text("hello")
    assert "not a CloudTrail digest file name" in usage_error(["trail", "verify", str(trail.root)],
                                                              capsys)


def test_a_sidecar_that_is_not_json(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    path = trail.path(trail.digests[0].relative)
    path.with_name(path.name + ".metadata.json").write_text("nope")
    assert "head-object" in usage_error(["trail", "verify", str(trail.root)], capsys)


def test_a_missing_key_file(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    trail.keys_file.unlink()
    assert "public-keys.json: no such file" in usage_error(["trail", "verify", str(trail.root)],
                                                           capsys)


def test_a_bad_key_file(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    trail.keys_file.write_text('{"PublicKeyList": [{"Fingerprint": "ab", "Value": "!!"}]}')
    err = usage_error(["trail", "verify", str(trail.root)], capsys)
    assert "PublicKeyList[0]: not a public key" in err


def test_a_bad_time(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["trail", "verify", str(trail.root), "--start", "yesterday"], capsys)
    assert "--start 'yesterday': not a UTC time" in err
    err = usage_error(["trail", "verify", str(trail.root), "--end", "2026-03-01T10:00:00"], capsys)
    assert "--end" in err


def test_start_after_end(trail: Trail, capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["trail", "verify", str(trail.root), "--start", "2026-03-02T00:00:00Z",
                       "--end", "2026-03-01T00:00:00Z"], capsys)
    assert "is after --end" in err


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=5), children, max_size=3), max_leaves=8)
FIELDS = ("digestStartTime", "digestEndTime", "digestS3Bucket", "digestS3Object",
          "digestPublicKeyFingerprint", "previousDigestSignature", "previousDigestS3Object",
          "previousDigestS3Bucket", "logFiles", "digestSignatureAlgorithm")
FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def handled(argv: list[str]) -> None:
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    assert status in (0, 1, 2), captured.getvalue()
    assert "Traceback" not in captured.getvalue()


@FUZZ
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES, index=st.integers(0, 2))
def test_no_digest_field_value_crashes(tmp_path_factory: pytest.TempPathFactory,
                                       key: rsa.RSAPrivateKey, field: str, value: object,
                                       index: int) -> None:
    trail = build_trail(tmp_path_factory.mktemp("fuzz"), key, hours=3)
    trail.digests[index].document[field] = value
    trail.resign(index)
    handled(["trail", "verify", str(trail.root)])


@FUZZ
@given(which=st.sampled_from(["digest", "sidecar", "keys"]),
       content=st.binary(max_size=2000) | st.sampled_from([b"[" * 5000 + b"]" * 5000, b"{}", b"[]",
                                                          b'{"Metadata": []}', b"null"]))
def test_no_file_content_crashes(tmp_path_factory: pytest.TempPathFactory, key: rsa.RSAPrivateKey,
                                 which: str, content: bytes) -> None:
    trail = build_trail(tmp_path_factory.mktemp("fuzz"), key, hours=2)
    digest = trail.path(trail.digests[0].relative)
    target = {"digest": digest, "sidecar": digest.with_name(digest.name + ".metadata.json"),
              "keys": trail.keys_file}[which]
    target.write_bytes(gzip.compress(content) if which == "digest" and len(content) % 2 else content)
    handled(["trail", "verify", str(trail.root)])
