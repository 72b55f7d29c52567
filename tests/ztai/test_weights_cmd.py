"""`ztai weights encrypt|decrypt` as a user runs it: a separate process, KMS being moto's server
reached through the standard `AWS_ENDPOINT_URL` configuration."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ztai.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
SIZE = 48 * 1024 * 1024
EXPECTED = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def kms_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(kms_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"AWS_ENDPOINT_URL": kms_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **env, "PYTHONPATH": str(ROOT)}


def ztai(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ztai", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_48_mib_round_trip_and_tampered_file_refused(aws_env: dict[str, str], tmp_path: Path) -> None:
    key_arn = boto3.client("kms").create_key(Description="model weights")["KeyMetadata"]["Arn"]
    weights = tmp_path / "weights.bin"
    with open(weights, "wb") as out:
        for _ in range(SIZE // (1024 * 1024)):
            out.write(os.urandom(1024 * 1024))

    encrypted = ztai(aws_env, tmp_path, "weights", "encrypt", "--key-id", key_arn,
                     "--context", "model=digits", "--context", "version=3", "weights.bin", "weights.enc")
    assert encrypted.returncode == 0, encrypted.stderr
    assert f"encrypted {SIZE} bytes" in encrypted.stdout

    decrypted = ztai(aws_env, tmp_path, "weights", "decrypt", "--context", "model=digits",
                     "weights.enc", "restored.bin")
    assert decrypted.returncode == 0, decrypted.stderr
    assert digest(tmp_path / "restored.bin") == digest(weights)

    sealed = bytearray((tmp_path / "weights.enc").read_bytes())
    sealed[len(sealed) // 2] ^= 0x80
    (tmp_path / "tampered.enc").write_bytes(sealed)
    refused = ztai(aws_env, tmp_path, "weights", "decrypt", "tampered.enc", "tampered.bin")
    assert refused.returncode == 1
    assert "failed authentication" in refused.stderr and "nothing was written" in refused.stderr
    assert not (tmp_path / "tampered.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ztai-partial")] == []


def test_wrong_context_and_wrong_key_are_refused(aws_env: dict[str, str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    kms = boto3.client("kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    other_arn = kms.create_key()["KeyMetadata"]["Arn"]
    (tmp_path / "w.bin").write_bytes(b"weights")
    src, sealed = str(tmp_path / "w.bin"), str(tmp_path / "w.enc")
    assert main(["weights", "encrypt", "--key-id", key_arn, "--context", "model=a", src, sealed]) == 0

    assert main(["weights", "decrypt", "--context", "model=b", sealed, str(tmp_path / "x")]) == 1
    assert "'model' is 'a', expected 'b'" in capsys.readouterr().err
    assert main(["weights", "decrypt", "--key-id", other_arn, sealed, str(tmp_path / "y")]) == 1
    assert "not an allowed key" in capsys.readouterr().err
    foreign_account = ["--discovery-account", "999999999999"]
    assert main(["weights", "decrypt", *foreign_account, sealed, str(tmp_path / "z")]) == 1
    assert not any((tmp_path / name).exists() for name in "xyz")
    assert main(["weights", "decrypt", "--key-id", key_arn, "--json", sealed, str(tmp_path / "ok")]) == 0
    assert '"model": "a"' in capsys.readouterr().out


@pytest.mark.parametrize(("args", "complaint"), [
    (["encrypt", "--key-id", "k", "--context", "novalue", "{src}", "{dst}"], "expected KEY=VALUE"),
    (["encrypt", "--key-id", "k", "--context", "a=1", "--context", "a=2", "{src}", "{dst}"], "given twice"),
    (["encrypt", "--key-id", "k", "{missing}", "{dst}"], "no such file"),
    (["encrypt", "--key-id", "k", "{src}", "{existing}"], "exists; pass --force"),
    (["encrypt", "--key-id", "alias/does-not-exist", "--expected-key-arn", EXPECTED, "{src}", "{dst}"],
     "NotFoundException"),
    (["decrypt", "--key-id", "alias/weights", "{src}", "{dst}"], "not a KMS key ARN"),
    (["decrypt", "--key-id", "arn:aws:kms:eu-west-1:1:key/x", "--discovery-account", "1", "{src}", "{dst}"],
     "not both"),
    (["encrypt", "--key-id", "k", "--context", "aws-crypto-x=1", "{src}", "{dst}"], "reserved"),
])
def test_usage_errors_exit_2_and_write_nothing(aws_env: dict[str, str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], args: list[str],
                                               complaint: str) -> None:
    (tmp_path / "w.bin").write_bytes(b"weights")
    (tmp_path / "existing").write_bytes(b"keep me")
    paths = {"src": str(tmp_path / "w.bin"), "dst": str(tmp_path / "out"), "missing": str(tmp_path / "nope"),
             "existing": str(tmp_path / "existing")}
    assert main(["weights", *[arg.format(**paths) for arg in args]]) == 2
    assert complaint in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "existing").read_bytes() == b"keep me"


def test_a_non_message_is_refused_and_named(aws_env: dict[str, str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # The wrong file, or one whose first bytes were changed: both fail to authenticate (1), the
    # code a pipeline alerts on; the message says what the file looks like.
    (tmp_path / "plain.bin").write_bytes(b"PK\x03\x04 just a zip file")
    assert main(["weights", "decrypt", str(tmp_path / "plain.bin"), str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("refused: ") and "Is this an AWS Encryption SDK message?" in error
    assert not (tmp_path / "out").exists()


def crafted_message(tmp_path: Path, key_arn: str, *, cut: int | None = None) -> Path:
    """A message header naming `key_arn` (with a random tag): enough for every check made before
    KMS; `cut` keeps only that many bytes."""
    from ztai_runtime.weights.format import EncryptedDataKey, serialize_header

    header = serialize_header(os.urandom(32), {"model": "digits"},
                              [EncryptedDataKey("aws-kms", key_arn.encode(), b"wrapped")], 1024,
                              os.urandom(32)) + os.urandom(16) + b"body"
    path = tmp_path / "crafted.enc"
    path.write_bytes(header[:cut])
    return path


@pytest.fixture
def no_aws_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any KMS or STS client made fails the test (exit 3 through the CLI's bug handler)."""
    import ztai.weights_cmd as weights_cmd

    def called(*args: Any) -> Any:
        raise AssertionError("an AWS client was made before the input was checked")

    monkeypatch.setattr(weights_cmd, "_kms_client", called)
    monkeypatch.setattr(weights_cmd, "_caller_account", called)


@pytest.mark.parametrize("content, complaint", [
    (b"", "the file is empty, not an AWS Encryption SDK message"),
    (b"\x02\x04", "message truncated in the header"),
    (None, "message truncated in the encrypted data key"),
])
def test_an_empty_or_cut_header_is_refused_before_any_aws_call(
        aws_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_aws_call: None,
        content: bytes | None, complaint: str) -> None:
    if content is None:
        source = crafted_message(tmp_path, EXPECTED, cut=80)
    else:
        source = tmp_path / "cut.enc"
        source.write_bytes(content)
    assert main(["weights", "decrypt", str(source), str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("refused: ") and complaint in error
    assert "nothing was written" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_a_key_in_another_region_is_a_usage_error_naming_the_region(
        aws_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_aws_call: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ztai.weights_cmd as weights_cmd

    source = crafted_message(tmp_path, EXPECTED)  # a key in eu-west-1, of the caller's account
    out = str(tmp_path / "out")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(weights_cmd, "_caller_account", lambda region: "123456789012")
    assert main(["weights", "decrypt", str(source), out]) == 2
    error = capsys.readouterr().err
    assert ("the file was encrypted under a key in eu-west-1, but this session is in us-east-1: run "
            "with --region eu-west-1 (or set AWS_DEFAULT_REGION=eu-west-1)") in error
    assert "AWS_REGION=" not in error  # boto3 ignores AWS_REGION: the hint must not send people there
    assert main(["weights", "decrypt", "--region", "ap-south-1", "--key-id", EXPECTED, str(source),
                 out]) == 2
    assert (f"--key-id {EXPECTED} is in eu-west-1, but this session is in ap-south-1: run with "
            "--region eu-west-1") in capsys.readouterr().err
    (tmp_path / "w.bin").write_bytes(b"weights")
    assert main(["weights", "encrypt", "--key-id", EXPECTED, str(tmp_path / "w.bin"), out]) == 2
    assert f"--key-id {EXPECTED} is in eu-west-1, but this session is in us-east-1" in capsys.readouterr().err
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert main(["weights", "decrypt", str(source), out]) == 2
    # The header is not authenticated yet: with no Region to check its keys' account against, the
    # hint does not repeat a Region the file names.
    assert ("no AWS Region is configured: run with --region REGION (or set AWS_DEFAULT_REGION=REGION)"
            ) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_region_named_only_by_a_key_the_caller_does_not_allow_is_no_hint(
        aws_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A header can name any key: one of another account in another Region is the file's claim,
    # not a configuration mistake; the file is refused (1), and no Region is suggested.
    import ztai.weights_cmd as weights_cmd

    foreign = "arn:aws:kms:us-east-1:999988887777:key/11111111-1111-1111-1111-111111111111"
    source = crafted_message(tmp_path, foreign)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert main(["weights", "decrypt", "--key-id", EXPECTED, str(source), str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("refused: ") and "--region" not in error
    monkeypatch.setattr(weights_cmd, "_caller_account", lambda region: "123456789012")
    assert main(["weights", "decrypt", str(source), str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("refused: ") and "--region" not in error
    assert not (tmp_path / "out").exists()


def test_the_right_region_given_with_region_decrypts(aws_env: dict[str, str], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    key_arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    (tmp_path / "w.bin").write_bytes(b"weights")
    sealed = str(tmp_path / "w.enc")
    assert main(["weights", "encrypt", "--key-id", key_arn, str(tmp_path / "w.bin"), sealed]) == 0
    capsys.readouterr()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert main(["weights", "decrypt", "--region", "eu-west-1", "--json", sealed,
                 str(tmp_path / "back")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["warnings"] == [] and document["output"] == str(tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == b"weights"


def test_an_unaccepted_suite_is_still_a_refusal(aws_env: dict[str, str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                no_aws_call: None) -> None:
    # A message, but one this tool refuses on security grounds (a non-committing suite): exit 1.
    source = crafted_message(tmp_path, EXPECTED)
    data = bytearray(source.read_bytes())
    data[1:3] = b"\x01\x78"
    source.write_bytes(bytes(data))
    assert main(["weights", "decrypt", str(source), str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert "refused:" in error and "algorithm suite 0x0178 is not accepted" in error


def test_unreachable_kms_is_a_configuration_error_not_a_refusal(aws_env: dict[str, str], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    key_arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    (tmp_path / "w.bin").write_bytes(b"weights")
    sealed = str(tmp_path / "w.enc")
    assert main(["weights", "encrypt", "--key-id", key_arn, str(tmp_path / "w.bin"), sealed]) == 0
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    capsys.readouterr()
    assert main(["weights", "decrypt", "--key-id", key_arn, sealed, str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "KMS Decrypt (nothing was written)" in error and "refused" not in error
    assert not (tmp_path / "out").exists()


def test_same_file_is_refused_even_with_force(aws_env: dict[str, str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "w.bin").write_bytes(b"weights")
    os.link(tmp_path / "w.bin", tmp_path / "hardlink.bin")
    for destination in ("w.bin", "hardlink.bin"):
        args = ["weights", "encrypt", "--key-id", "k", "--force", str(tmp_path / "w.bin"),
                str(tmp_path / destination)]
        assert main(args) == 2
        assert "same file" in capsys.readouterr().err
    assert (tmp_path / "w.bin").read_bytes() == b"weights"


# -- key pinning: an alias is used only when it names the expected key ARN --------------------------
def pinned_setup(tmp_path: Path) -> tuple[Any, str, str, dict[str, str]]:
    kms = boto3.client("kms")
    key_arn = kms.create_key(Description="model weights")["KeyMetadata"]["Arn"]
    rogue_arn = kms.create_key(Description="an insider's key")["KeyMetadata"]["Arn"]
    alias = f"alias/zero-trust-ai/test/model-weights-{tmp_path.name}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_arn)
    (tmp_path / "w.bin").write_bytes(b"weights")
    paths = {"src": str(tmp_path / "w.bin"), "dst": str(tmp_path / "w.enc")}
    return kms, key_arn, rogue_arn, {"alias": alias, **paths}


def outputs_file(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_an_alias_naming_the_expected_key_encrypts_under_the_key_arn(
        aws_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, key_arn, _, p = pinned_setup(tmp_path)
    assert main(["weights", "encrypt", "--key-id", p["alias"], "--expected-key-arn", key_arn, "--json",
                 p["src"], p["dst"]]) == 0
    assert json.loads(capsys.readouterr().out)["keys"] == [key_arn]
    outputs = outputs_file(tmp_path, {"keyArns": {"model-weights": key_arn, "secrets": "arn:x"}})
    assert main(["weights", "encrypt", "--key-id", p["alias"], "--stack-outputs", outputs, "--force",
                 p["src"], p["dst"]]) == 0
    assert main(["weights", "decrypt", "--key-id", key_arn, p["dst"], str(tmp_path / "back")]) == 0
    assert (tmp_path / "back").read_bytes() == b"weights"


def test_a_moved_alias_is_refused_and_nothing_is_written(aws_env: dict[str, str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    kms, key_arn, rogue_arn, p = pinned_setup(tmp_path)
    kms.update_alias(AliasName=p["alias"], TargetKeyId=rogue_arn)  # what an insider with UpdateAlias does
    outputs = outputs_file(tmp_path, {"keyArns": {"model-weights": key_arn}})
    for pin in (["--expected-key-arn", key_arn], ["--stack-outputs", outputs]):
        # The threat the pin exists for: a security refusal (exit 1), said as one, not a usage error.
        assert main(["weights", "encrypt", "--key-id", p["alias"], *pin, p["src"], p["dst"]]) == 1
        error = capsys.readouterr().err
        assert error.startswith("refused: ") and "error:" not in error
        assert f"names key {rogue_arn}, not the expected key {key_arn}" in error
        assert "nothing was written" in error and not (tmp_path / "w.enc").exists()


@pytest.mark.parametrize("key_id", ["not-a-key", "", "alias/", "alias/has space", "1234abcd",
                                    "arn:aws:kms:eu-west-1:123456789012:keys/x"])
def test_a_key_id_of_no_kms_shape_is_named_as_such(aws_env: dict[str, str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], key_id: str) -> None:
    _, key_arn, _, p = pinned_setup(tmp_path)
    assert main(["weights", "encrypt", "--key-id", key_id, "--expected-key-arn", key_arn, p["src"],
                 p["dst"]]) == 2
    error = capsys.readouterr().err
    assert f"--key-id {key_id!r} is not a KMS key: give a key ARN" in error
    assert "an alias name (alias/NAME)" in error and "kms:UpdateAlias" not in error
    assert "Traceback" not in error and not (tmp_path / "w.enc").exists()


def test_a_mismatched_key_arn_is_a_usage_error_not_a_refusal(aws_env: dict[str, str], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, key_arn, rogue_arn, p = pinned_setup(tmp_path)
    # Two ARNs given that differ: the user's own arguments disagree, nothing was resolved.
    assert main(["weights", "encrypt", "--key-id", rogue_arn, "--expected-key-arn", key_arn, p["src"],
                 p["dst"]]) == 2
    error = capsys.readouterr().err
    assert "is not the expected key" in error and "refused" not in error


def test_an_alias_without_an_expected_key_is_refused(aws_env: dict[str, str], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, _, _, p = pinned_setup(tmp_path)
    run = ztai(aws_env, tmp_path, "weights", "encrypt", "--key-id", p["alias"], "w.bin", "w.enc")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "is not a key ARN" in run.stderr and "--expected-key-arn ARN or --stack-outputs FILE" in run.stderr
    assert not (tmp_path / "w.enc").exists()


@pytest.mark.parametrize("extra, complaint", [
    (lambda key, rogue, out: ["--key-id", rogue, "--expected-key-arn", key], "is not the expected key"),
    (lambda key, rogue, out: ["--key-id", key, "--expected-key-arn", "alias/x"], "is not a KMS key ARN"),
    (lambda key, rogue, out: ["--key-id", key, "--stack-outputs", out({"keyArns": {}})],
     "have no keyArns.model-weights"),
    (lambda key, rogue, out: ["--key-id", key, "--stack-outputs", out([1])], "have no keyArns.model-weights"),
    (lambda key, rogue, out: ["--key-id", key, "--expected-key-arn", key, "--stack-outputs",
                              out({"keyArns": {"model-weights": rogue}})], "differs from keyArns"),
    (lambda key, rogue, out: ["--key-id", key, "--stack-outputs", "/nonexistent/outputs.json"],
     "cannot read stack outputs"),
])
def test_pinning_errors_exit_2_and_write_nothing(aws_env: dict[str, str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], extra: Any,
                                                complaint: str) -> None:
    _, key_arn, rogue_arn, p = pinned_setup(tmp_path)
    args = extra(key_arn, rogue_arn, lambda document: outputs_file(tmp_path, document))
    assert main(["weights", "encrypt", *args, p["src"], p["dst"]]) == 2
    assert complaint in capsys.readouterr().err
    assert not (tmp_path / "w.enc").exists()


class Terminal(io.StringIO):
    """stderr as a person's terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_only(aws_env: dict[str, str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key_arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    (tmp_path / "w.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    sealed = str(tmp_path / "w.enc")
    assert main(["weights", "encrypt", "--key-id", key_arn, str(tmp_path / "w.bin"), sealed]) == 0
    assert "%|" not in capsys.readouterr().err  # not a terminal: nothing drawn
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["weights", "decrypt", "--key-id", key_arn, sealed, str(tmp_path / "back")]) == 0
    # The bar names the file and its size; how often it is redrawn depends on time, not asserted.
    assert "\rdecrypting w.enc:   0%|" in terminal.getvalue() and "/3.00M" in terminal.getvalue()


def test_progress_is_told_the_bytes_read_up_to_the_whole_file(tmp_path: Path) -> None:
    from ztai_runtime.weights import StaticUnwrapper, decrypt_file, encrypt_file
    from ztai_runtime.weights.format import EncryptedDataKey

    class Keys:
        def generate(self, context: Any) -> tuple[bytes, list[EncryptedDataKey]]:
            return b"k" * 32, [EncryptedDataKey("test", b"key", b"wrapped")]

    (tmp_path / "w.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 7))
    told: list[int] = []
    encrypt_file(tmp_path / "w.bin", tmp_path / "w.enc", Keys(), {}, progress=told.append)
    assert told == sorted(told) and told[-1] == 5 * 1024 * 1024 + 7
    told.clear()
    decrypt_file(tmp_path / "w.enc", tmp_path / "back", StaticUnwrapper(b"k" * 32), progress=told.append)
    assert told == sorted(told) and told[-1] == (tmp_path / "w.enc").stat().st_size


def test_an_unreadable_aws_configuration_is_a_usage_error(aws_env: dict[str, str], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          no_aws_call: None) -> None:
    config = tmp_path / "config"
    config.write_text("[default\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    source = crafted_message(tmp_path, EXPECTED)
    assert main(["weights", "decrypt", str(source), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "AWS configuration: Unable to parse config file" in error and "Traceback" not in error
