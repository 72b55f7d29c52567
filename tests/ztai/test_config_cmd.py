"""`ztai config`: Pulumi.yaml's schema and the configuration reference come from the one
declaration of each key (KEYS), and cannot drift from it; a stack file is checked on its own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from components import config_values, stack_config
from components.stack_config import ALL_LAYERS, KEYS, StackKey
from tests.conftest import ROOT
from ztai import config_cmd
from ztai.cli import main


def test_pulumi_yaml_and_the_reference_are_what_keys_generate() -> None:
    # Fails when a key, description, type or default changes in one place only: run
    # `./run ztai config docs` to regenerate both files from KEYS.
    for relative, text in config_cmd.generated_files(ROOT).items():
        assert (ROOT / relative).read_text(encoding="utf-8") == text, relative


def test_the_generated_schema_declares_each_key_as_keys_does() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["config"]
    assert list(declared) == list(KEYS)
    for key, spec in KEYS.items():
        assert declared[key]["type"] == spec.type, key
        expected = None if spec.required else spec.default
        if spec.required and spec.layers != ALL_LAYERS:  # required in some layers only
            expected = [] if spec.type == "array" else ""
        assert declared[key].get("default") == expected, key
        assert declared[key]["description"] == spec.description


def test_the_reference_has_one_row_per_key_with_its_default() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert "| `zero-trust-ai:azCount` | integer | default `2` |" in text
    assert "| `zero-trust-ai:environment` | string | **required** |" in text
    assert "| `zero-trust-ai:keyLayerStack` | string | **required** in workload stacks |" in text
    assert "| `dev`, `staging`, `prod` |" in text
    assert "(&lt;prefix&gt;.auth.&lt;region&gt;.amazoncognito.com)" in text
    assert sum(line.startswith("| `zero-trust-ai:") for line in text.splitlines()) == len(KEYS)


def test_a_key_declared_once_appears_in_both_files(monkeypatch: pytest.MonkeyPatch) -> None:
    added = StackKey("Days to keep the widgets.", False, lambda key, value: value, 7, type="integer")
    monkeypatch.setattr(stack_config, "KEYS", {**KEYS, "widgetRetentionDays": added})
    files = config_cmd.generated_files(ROOT)
    declared = yaml.safe_load(files[Path("Pulumi.yaml")])["config"]["widgetRetentionDays"]
    assert declared == {"type": "integer", "description": "Days to keep the widgets.", "default": 7}
    assert ("| `zero-trust-ai:widgetRetentionDays` | integer | default `7` | Days to keep the widgets. |"
            in files[Path("docs/configuration.md")])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    return tmp_path


def test_docs_check_names_a_stale_file_and_docs_rewrites_it(project: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    pulumi_yaml = project / "Pulumi.yaml"
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace("default: 365", "default: 30", 1))
    assert main(["config", "docs", "--check", "--project-dir", str(project)]) == 1
    errors = capsys.readouterr().err
    assert "Pulumi.yaml differs from what KEYS in components/stack_config.py generates" in errors
    assert "docs/configuration.md differs" in errors  # absent in this copy
    assert main(["config", "docs", "--project-dir", str(project)]) == 0
    assert "wrote Pulumi.yaml" in capsys.readouterr().err
    assert main(["config", "docs", "--check", "--project-dir", str(project)]) == 0
    assert pulumi_yaml.read_text() == (ROOT / "Pulumi.yaml").read_text()


def test_docs_without_a_project_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "docs", "--check", "--project-dir", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_passes_a_shipped_stack_and_names_its_placeholders(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--stack", "dev", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["stack"], result["environment"], result["valid"]) == ("dev", "dev", True)
    assert any("enclavePcr0" in warning for warning in result["warnings"])
    assert main(["config", "check", "--stack", "prod"]) == 0
    captured = capsys.readouterr()
    assert "configuration valid" in captured.out and "warning: placeholder still" in captured.err


@pytest.mark.parametrize("edit, expected", [
    (lambda text: text.replace("azCount: 3", 'azCount: "3"'), "expected an integer"),
    (lambda text: text.replace("zero-trust-ai:owner", "zero-trust-aii:owner"),
     "did you mean zero-trust-ai:owner?"),
    (lambda text: text.replace("aws:region", "aws:regoin"), "did you mean aws:region?"),
    (lambda text: text + "  zero-trust-ai:azCount: 2\n", "duplicate key 'zero-trust-ai:azCount'"),
    (lambda text: "\ufeff" + text.replace("10.20.0.0/16", "10.20.0.0/33"), "10.20.0.0/33"),
])
def test_check_refuses_a_bad_stack_with_exit_2(project: Path, capsys: pytest.CaptureFixture[str],
                                               edit: Callable[[str], str], expected: str) -> None:
    (project / "stacks").mkdir()
    text = (ROOT / "stacks" / "Pulumi.prod.yaml").read_text(encoding="utf-8")
    (project / "stacks" / "Pulumi.prod.yaml").write_text(edit(text), encoding="utf-8")
    assert main(["config", "check", "--stack", "prod", "--project-dir", str(project)]) == 2
    errors = capsys.readouterr().err
    assert expected in errors and "Traceback" not in errors


def _bomb(levels: int) -> str:
    """YAML of `levels` nested aliases, nine each: 9**levels values once expanded."""
    lines = ["  - &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _partners_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "partners.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("edit, expected", [
    # 9**12 values: read naively this would not end (the test would hang); refused at once.
    (lambda text, tmp: text + "  team:bomb:\n" + _bomb(12), "excessive aliasing"),
    (lambda text, tmp: text.replace("stacks/partners/prod.yaml", _partners_file(
        tmp, "partners:\n" + _bomb(12))), "excessive aliasing"),
    # A bare key is the project's (as Pulumi reads it): checked, not dropped.
    (lambda text, tmp: text.replace("zero-trust-ai:azCount: 3", "azCount: 9"),
     "zero-trust-ai:azCount = 9: allowed 3 to 3"),
    (lambda text, tmp: text.replace("zero-trust-ai:azCount", "Zero-Trust-AI:azCount"),
     "unknown namespace 'Zero-Trust-AI' (did you mean zero-trust-ai:azCount?)"),
    # The enclave binds a caller to its CA by subject name: shared names are refused up front.
    (lambda text, tmp: text.replace("stacks/partners/prod.yaml", _partners_file(
        tmp, "partners:\n  - {name: acme, caFile: " + str(
            ROOT / "stacks" / "truststore" / "placeholder-first-party-ca.pem")
        + ", rateLimit: 1, burstLimit: 1}\n")), "first-party and acme share the CA subject name"),
    (lambda text, tmp: text.replace("stacks/partners/prod.yaml", _partners_file(
        tmp, "partners:\n  - {name: first-party, caFile: " + str(
            ROOT / "stacks" / "truststore" / "placeholder-partner-ca.pem")
        + ", rateLimit: 1, burstLimit: 1}\n")), "partner 'first-party': the name is reserved"),
    (lambda text, tmp: text.replace(
        "zero-trust-ai:apiHostedZoneId: Z00000000PLACEHOLDER0",
        "zero-trust-ai:apiCertificateArn: arn:aws-cn:acm:eu-west-1:111122223333:certificate/abc"),
     "is not in the partition of eu-west-1 (aws)"),
])
def test_check_refuses_what_the_review_found_with_exit_2(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        edit: Callable[[str, Path], str], expected: str) -> None:
    (project / "stacks").mkdir()
    text = (ROOT / "stacks" / "Pulumi.prod.yaml").read_text(encoding="utf-8")
    (project / "stacks" / "Pulumi.prod.yaml").write_text(edit(text, tmp_path), encoding="utf-8")
    assert main(["config", "check", "--stack", "prod", "--project-dir", str(project)]) == 2
    errors = capsys.readouterr().err
    assert expected in errors and "Traceback" not in errors, errors


@pytest.fixture
def fork(project: Path) -> Path:
    """The project renamed in Pulumi.yaml, as a fork may do, with the prod stack's keys renamed."""
    pulumi_yaml = project / "Pulumi.yaml"
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace("name: zero-trust-ai", "name: my-fork", 1))
    (project / "stacks").mkdir()
    text = (ROOT / "stacks" / "Pulumi.prod.yaml").read_text(encoding="utf-8")
    # Its key layer is the fork's too: keyLayerStack names the project.
    text = text.replace("zero-trust-ai:", "my-fork:").replace("/zero-trust-ai/", "/my-fork/")
    (project / "stacks" / "Pulumi.prod.yaml").write_text(text)
    return project


def test_a_renamed_project_is_checked_under_its_own_name(fork: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--stack", "prod", "--project-dir", str(fork)]) == 0
    captured = capsys.readouterr()
    assert "configuration valid" in captured.out
    assert "my-fork:enclavePcr0" in captured.err  # placeholders named by the fork's keys
    # The stack file's keys still under the old name are refused, not silently dropped.
    stack_path = fork / "stacks" / "Pulumi.prod.yaml"
    stack_path.write_text(stack_path.read_text().replace("my-fork:azCount", "zero-trust-ai:azCount"))
    assert main(["config", "check", "--stack", "prod", "--project-dir", str(fork)]) == 2
    assert "the project is named my-fork in Pulumi.yaml" in capsys.readouterr().err
    # A key layer of the old project's name is refused too: it would be another project's keys.
    stack_path.write_text(stack_path.read_text().replace("zero-trust-ai:azCount", "my-fork:azCount")
                          .replace("/my-fork/", "/zero-trust-ai/"))
    assert main(["config", "check", "--stack", "prod", "--project-dir", str(fork)]) == 2
    assert "<organization>/my-fork/prod-keys" in capsys.readouterr().err
    # Later commands of the process name the shipped project's keys again.
    assert config_values.full("azCount") == "zero-trust-ai:azCount"


def test_a_renamed_projects_reference_names_its_keys(fork: Path) -> None:
    reference = config_cmd.generated_files(fork)[config_cmd.REFERENCE]
    assert "| `my-fork:azCount` |" in reference and "zero-trust-ai:" not in reference
