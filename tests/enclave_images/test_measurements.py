"""Pinning an EIF's measurements: recorded nitro-cli output in, config commands or a stack file out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enclave_images.measurements import Measurements, MeasurementsError, main

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = (FIXTURES / "measurements.json").read_text(encoding="utf-8")
SIGNED = (FIXTURES / "measurements-signed.json").read_text(encoding="utf-8")


def test_recorded_output_gives_the_config_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(FIXTURES / "measurements.json"), "--stack", "prod"]) == 0
    lines = capsys.readouterr().out.splitlines()
    pcr0 = json.loads(RECORDED)["Measurements"]["PCR0"]
    assert lines[0] == f"pulumi config set --stack prod zero-trust-ai:enclavePcr0 {pcr0}"
    assert [line.split()[5].split(":")[1] for line in lines] == ["enclavePcr0", "enclavePcr1", "enclavePcr2"]


def test_signed_output_adds_pcr8_and_unsigned_is_refused_when_signing_is_required() -> None:
    assert set(Measurements.parse(SIGNED, require_signed=True).pcrs) == {"PCR0", "PCR1", "PCR2", "PCR8"}
    with pytest.raises(MeasurementsError, match="PCR8 is missing"):
        Measurements.parse(RECORDED, require_signed=True)


def test_stack_file_is_rewritten_in_place_keeping_everything_else(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text("# prod\nconfig:\n  aws:region: eu-west-1\n"
                     "  zero-trust-ai:enclavePcr0: \"" + "a" * 96 + "\"  # placeholder\n", encoding="utf-8")
    assert main([str(FIXTURES / "measurements.json"), "--stack", "prod", "--write",
                 "--stacks-dir", str(tmp_path)]) == 0
    text = stack.read_text(encoding="utf-8")
    recorded = json.loads(RECORDED)["Measurements"]
    assert text.startswith("# prod\nconfig:\n  aws:region: eu-west-1\n")
    assert f"  zero-trust-ai:enclavePcr0: \"{recorded['PCR0']}\"\n" in text
    assert f"  zero-trust-ai:enclavePcr2: \"{recorded['PCR2']}\"\n" in text and "a" * 96 not in text


@pytest.mark.parametrize(("change", "complaint"), [
    ({"PCR0": "0" * 96}, "all zeros"),
    ({"PCR1": "ab" * 47}, "not 96 hex digits"),
    ({"PCR2": None}, "PCR2 is missing"),
    ({"HashAlgorithm": "Sha256"}, "SHA-384"),
])
def test_bad_measurements_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      change: dict[str, str | None], complaint: str) -> None:
    document = json.loads(RECORDED)
    for name, value in change.items():
        if value is None:
            del document["Measurements"][name]
        else:
            document["Measurements"][name] = value
    path = tmp_path / "m.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert main([str(path), "--stack", "prod"]) == 2
    assert complaint in capsys.readouterr().err


def test_not_nitro_cli_output_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.json").write_text("Start building the Enclave Image...", encoding="utf-8")
    assert main([str(tmp_path / "m.json"), "--stack", "prod"]) == 2
    assert "not nitro-cli build-enclave output" in capsys.readouterr().err


def test_build_script_refuses_a_base_image_not_pinned_by_digest() -> None:
    import os
    import subprocess
    script = Path(__file__).resolve().parents[2] / "enclave_images" / "build.sh"
    arguments = ["prod", "eu-west-1", "arn:aws:kms:eu-west-1:1:key/k", "digits"]
    run = subprocess.run(["bash", str(script), *arguments],
                         env={**os.environ, "BASE_IMAGE": "python:3.11-slim"}, capture_output=True,
                         text=True, check=False, timeout=30)
    assert run.returncode == 2
    assert "must be pinned by digest" in run.stderr


def test_build_script_refuses_an_image_without_its_trust_file(tmp_path: Path) -> None:
    import os
    import subprocess
    script = Path(__file__).resolve().parents[2] / "enclave_images" / "build.sh"
    arguments = ["prod", "eu-west-1", "arn:aws:kms:eu-west-1:1:key/k", "digits"]
    pinned = {name: value for name, value in os.environ.items() if name != "ENCLAVE_TRUST"}
    pinned["BASE_IMAGE"] = "python:3.11-slim@sha256:" + "0" * 64
    for env in (pinned, {**pinned, "ENCLAVE_TRUST": str(tmp_path / "absent.json")}):
        run = subprocess.run(["bash", str(script), *arguments], env=env, capture_output=True,
                             text=True, check=False, timeout=30, cwd=tmp_path)
        assert run.returncode == 2
        assert "ENCLAVE_TRUST must name a readable file" in run.stderr


@pytest.mark.parametrize("text", [
    pytest.param('{"Measurements": []}', id="measurements-a-list"),
    pytest.param('{"Measurements": "PCR0"}', id="measurements-a-string"),
    pytest.param('[{"Measurements": {}}]', id="a-list"),
    pytest.param('"Measurements"', id="a-string"),
    pytest.param("[" * 100_000, id="nested-too-deeply"),
])
def test_malformed_measurement_files_are_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       text: str) -> None:
    (tmp_path / "m.json").write_text(text, encoding="utf-8")
    assert main([str(tmp_path / "m.json"), "--stack", "prod"]) == 2
    assert "error: not nitro-cli build-enclave output" in capsys.readouterr().err


def test_a_binary_measurements_file_is_a_clear_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.json").write_bytes(b"\xff\xfe{}")
    assert main([str(tmp_path / "m.json"), "--stack", "prod"]) == 2
    assert f"error: {tmp_path / 'm.json'}: not UTF-8 text" in capsys.readouterr().err
