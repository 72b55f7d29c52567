"""The CLI's surface: help and exit codes on every command, --version, the installable `ztai`
command, running from anywhere in the project, file encodings, the policy-config refusals and
report counts, --quiet/--json, and how the process ends (interrupt, closed pipe, bug)."""

from __future__ import annotations

import argparse
import codecs
import importlib
import json
import os
import signal
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from ztai import cli
from ztai.clidoc import DOC, arguments, render, subcommands
from ztai.errors import EXIT_CODES

SUBNET_URN = "urn:pulumi:fuzz::zero-trust-ai::aws:ec2/subnet:Subnet::edge-public-0"
PUBLIC_SUBNET_EXPORT = {"version": 3, "deployment": {"resources": [
    {"urn": "urn:pulumi:fuzz::zero-trust-ai::pulumi:pulumi:Stack::zero-trust-ai-fuzz",
     "custom": False, "type": "pulumi:pulumi:Stack"},
    {"urn": SUBNET_URN, "custom": True, "type": "aws:ec2/subnet:Subnet", "id": "subnet-0edge",
     "inputs": {"vpcId": "vpc-0a", "mapPublicIpOnLaunch": True},
     "outputs": {"vpcId": "vpc-0a", "mapPublicIpOnLaunch": True, "id": "subnet-0edge"}},
]}}


def ztai(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ztai", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture()
def public_subnet_export(tmp_path: Path) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(PUBLIC_SUBNET_EXPORT))
    return path


# -- help, exit codes, version --------------------------------------------------------------------
def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    for path, parser, summary in subcommands(cli._parser()):
        yield " ".join(path), parser, summary


def test_every_command_and_argument_has_help() -> None:
    # Walks every command, the runtime commands' modules included: a new argument without help
    # fails here.
    missing = []
    for name, parser, summary in _parsers():
        if not summary:
            missing.append(f"{name} (the command itself)")
        for action in arguments(parser):
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


@pytest.mark.parametrize("name", [name for name, _, _ in _parsers()])
def test_every_help_lists_the_exit_codes(name: str) -> None:
    run = ztai(*name.split()[1:], "--help")
    assert run.returncode == 0, run.stderr
    assert "exit status:" in run.stdout
    for code, meaning in EXIT_CODES:
        assert f"  {code:<4} {meaning.split()[0]}" in run.stdout


def test_version_is_the_projects_from_anywhere(tmp_path: Path) -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    run = ztai("--version", cwd=tmp_path)
    assert (run.returncode, run.stdout) == (0, f"ztai {expected}\n")


def test_pip_install_gives_a_ztai_command(tmp_path: Path) -> None:
    # Build the wheel offline from a copy of the sources (the build leaves files behind) and
    # install it without dependencies (they are this environment's): `ztai` runs, outside the
    # project, and takes its version from the installed metadata.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.in"):
        (source / name).write_bytes((ROOT / name).read_bytes())
    for package in ("ztai", "ztai_runtime", "components"):
        subprocess.run(["cp", "-r", str(ROOT / package), str(source / package)], check=True)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = (tmp_path / "dist").glob("zero_trust_ai-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        metadata = next(archive.read(n).decode() for n in names if n.endswith("METADATA"))
    assert "ztai = ztai.cli:entry" in entry_points
    # Every module of the CLI and the runtime is in the wheel (a package without __init__.py would
    # silently be left out).
    for package in ("ztai", "ztai_runtime", "components"):
        for module in (ROOT / package).rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert module.relative_to(ROOT).as_posix() in names
    # ... and the data files the components read.
    for data in [*(ROOT / "components").rglob("*.tpl"), *(ROOT / "components").rglob("*.yaml"),
                 ROOT / "ztai_runtime" / "detect" / "sigma_rules.json"]:
        assert data.relative_to(ROOT).as_posix() in names
    # The dependencies are requirements.in's pins (the lock's top-level inputs).
    pins = [line.split("#")[0].strip() for line in (ROOT / "requirements.in").read_text().splitlines()]
    assert {f"Requires-Dist: {pin}" for pin in pins if pin} <= set(metadata.splitlines())
    target = tmp_path / "target"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                              "--target", str(target), str(wheel)], capture_output=True, text=True,
                             timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([str(target / "bin" / "ztai"), "--version"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120)
    assert (run.returncode, run.stdout) == (0, "ztai 0.1.0\n"), run.stderr
    run = subprocess.run([str(target / "bin" / "ztai"), "policy", "analyze", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and "--policy-config" in run.stdout
    # Commands that read files through the components work outside any project...
    (tmp_path / "bundle.pem").write_text("not a certificate\n")
    run = subprocess.run([str(target / "bin" / "ztai"), "truststore", "check", "bundle.pem"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode in (1, 2) and "Traceback" not in run.stderr, run.stderr
    # ... and one that works on a project finds it from a directory inside it.
    run = subprocess.run([str(target / "bin" / "ztai"), "config", "check", "--stack", "dev"],
                         cwd=ROOT / "stacks", capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr


def test_the_entry_point_resolves() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, attribute = project["project"]["scripts"]["ztai"].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_the_cli_reference_is_the_parser() -> None:
    # docs/cli.md is generated from the parser: a changed flag or help text without regenerating
    # it (python -m ztai.clidoc) fails here.
    assert DOC == ROOT / "docs" / "cli.md"
    assert DOC.read_text(encoding="utf-8") == render(), "run `python -m ztai.clidoc`"
    for name, _, _ in _parsers():
        assert f"### `{name}`" in DOC.read_text(encoding="utf-8")
    for code, _ in EXIT_CODES:
        assert f"| {code} |" in DOC.read_text(encoding="utf-8")


# -- running from anywhere ------------------------------------------------------------------------
def test_preview_from_a_subdirectory_finds_the_project_quietly() -> None:
    run = ztai("preview", "--stack", "dev", "--quiet", cwd=ROOT / "components")
    assert run.returncode == 0, run.stderr
    # --quiet: the policy section only, no resource tree.
    assert run.stdout.startswith("Policies:\n") and "aws:ec2:Vpc" not in run.stdout
    assert "PASSED" in run.stdout and "0 mandatory and 0 advisory violation(s)" in run.stdout
    assert "wrote" not in run.stderr


def test_preview_outside_any_project_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(capsys, "preview", "--stack", "dev")
    assert status == 2 and out == ""
    assert (f"error: no Pulumi.yaml in {tmp_path.resolve()} or any directory above it; run ztai "
            "inside the project or pass --project-dir DIR") in err


def test_an_existing_export_is_replaced_only_with_force(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    export = tmp_path / "dev.json"
    export.write_text("kept")
    status, out, err = run_main(capsys, "preview", "--stack", "dev", "--project-dir", str(ROOT),
                                "--export", str(export))
    assert (status, out) == (2, "")
    assert f"error: {export} exists; pass --force to replace it" in err
    assert export.read_text() == "kept"


def test_json_and_quiet_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["policy", "analyze", "--file", "x.json", "--json", "--quiet"])
    assert done.value.code == 2
    assert "argument --quiet: not allowed with argument --json" in capsys.readouterr().err


def test_the_old_config_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # One name for the policy configuration on every command: --policy-config.
    with pytest.raises(SystemExit) as done:
        cli.main(["policy", "analyze", "--file", "x.json", "--config", "policy.json"])
    assert done.value.code == 2 and "unrecognized arguments: --config" in capsys.readouterr().err


# -- file content: encodings ----------------------------------------------------------------------
ENCODINGS = [
    pytest.param(codecs.BOM_UTF16_LE + "{}".encode("utf-16-le"),
                 "is UTF-16 text (it starts with a UTF-16 byte order mark); save it as UTF-8",
                 id="utf16-bom"),
    pytest.param(codecs.BOM_UTF32_LE + "{}".encode("utf-32-le"),
                 "is UTF-32 text (it starts with a UTF-32 byte order mark); save it as UTF-8",
                 id="utf32-bom"),
    pytest.param('{"a": 1}'.encode("utf-16-le"),
                 "contains NUL characters (a binary file, or UTF-16 text?); save it as UTF-8",
                 id="utf16-no-bom"),
    pytest.param('{"reason": "caf\xe9"}'.encode("latin-1"),
                 "is not UTF-8 text: byte 0xe9 on line 1 (offset 15) cannot be decoded; save it as UTF-8",
                 id="latin-1"),
]


@pytest.mark.parametrize("content, message", ENCODINGS)
def test_an_export_in_another_encoding_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                content: bytes, message: str) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(content)
    status, out, err = run_main(capsys, "policy", "analyze", "--file", str(path))
    assert (status, out) == (2, "")
    assert f"error: stack export {path} {message}" in err and "Traceback" not in err


@pytest.mark.parametrize("content, message", ENCODINGS)
def test_a_policy_config_in_another_encoding_is_named(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, public_subnet_export: Path,
        content: bytes, message: str) -> None:
    path = tmp_path / "policy.json"
    path.write_bytes(content)
    status, out, err = run_main(capsys, "policy", "analyze", "--file", str(public_subnet_export),
                                "--policy-config", str(path))
    assert (status, out) == (2, "")
    assert f"error: policy config {path} {message}" in err and "Traceback" not in err


def _project(tmp_path: Path, stack_file: bytes) -> Path:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_bytes((ROOT / "Pulumi.yaml").read_bytes())
    (project / "stacks" / "Pulumi.fuzz.yaml").write_bytes(stack_file)
    return project


@pytest.mark.parametrize("content, message", ENCODINGS)
def test_a_stack_file_in_another_encoding_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   content: bytes, message: str) -> None:
    project = _project(tmp_path, content)
    status, out, err = run_main(capsys, "preview", "--stack", "fuzz", "--project-dir", str(project))
    assert (status, out) == (2, "")
    assert f"error: {project / 'stacks' / 'Pulumi.fuzz.yaml'} {message}" in err
    assert "Traceback" not in err


def test_a_utf8_byte_order_mark_is_accepted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    export.write_bytes(codecs.BOM_UTF8 + json.dumps(PUBLIC_SUBNET_EXPORT).encode())
    config = tmp_path / "policy.json"
    config.write_bytes(codecs.BOM_UTF8 + json.dumps({"subnet-no-public-ip": {"exclusions": [
        {"resource": "edge-*", "reason": "edge subnets reviewed in SEC-1"}]}}).encode())
    status, out, err = run_main(capsys, "policy", "analyze", "--file", str(export),
                                "--policy-config", str(config), "--json")
    assert status == 0, err
    assert [e["urn"] for e in json.loads(out)["exclusions"]] == [SUBNET_URN]
    # The stack file too (read the same way).
    from ztai.stackfile import load_stack
    dev = (ROOT / "stacks" / "Pulumi.dev.yaml").read_bytes()
    project = _project(tmp_path / "bom", codecs.BOM_UTF8 + dev)
    assert load_stack(project, "fuzz").config == load_stack(ROOT, "dev").config


# -- policy configuration: exclusions and disabled policies ---------------------------------------
@pytest.mark.parametrize("pattern", ["*", "edge-*"])
def test_an_exclusion_on_a_rule_that_cannot_be_suppressed_is_refused(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, public_subnet_export: Path,
        pattern: str) -> None:
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"vpc-flow-logs-enabled": {"exclusions": [
        {"resource": pattern, "reason": "flow logs are too expensive here"}]}}))
    status, out, err = run_main(capsys, "policy", "analyze", "--file", str(public_subnet_export),
                                "--policy-config", str(config))
    assert (status, out) == (2, "")
    assert ('error: policy config: vpc-flow-logs-enabled cannot be suppressed: it accepts no '
            'exclusions; remove its "exclusions" (rules that accept exclusions: ') in err
    assert "subnet-no-public-ip" in err.split("rules that accept exclusions:")[1]
    assert "vpc-flow-logs-enabled" not in err.split("rules that accept exclusions:")[1]


def test_the_pack_schema_refuses_exclusions_on_rules_that_cannot_be_suppressed() -> None:
    # What `pulumi preview --policy-pack-config` validates against: the engine refuses them too.
    import jsonschema

    from ztpolicy.pack import policies
    entry = [{"resource": "*", "reason": "flow logs are too expensive here"}]
    by_name = {policy.name: policy for policy in policies()}
    for name, accepts in (("vpc-flow-logs-enabled", False), ("subnet-no-public-ip", True)):
        config_schema = by_name[name].config_schema
        assert config_schema is not None
        schema = {"type": "object", "properties": config_schema.properties}
        valid = jsonschema.Draft7Validator(schema).is_valid({"exclusions": entry})
        assert valid is accepts, name


@pytest.mark.parametrize("reason, accepted", [
    ("reviewed in SEC-123", True), ("  ten chars  ", False), (" " * 12, False), ("ab        cd", True),
])
def test_the_pack_schema_refuses_a_reason_of_blanks(reason: str, accepted: bool) -> None:
    # The engine validates the schema: a reason padded to length with blanks is no reason.
    import jsonschema

    from ztpolicy.pack import policies
    [policy] = [p for p in policies() if p.name == "subnet-no-public-ip"]
    assert policy.config_schema is not None
    schema = {"type": "object", "properties": policy.config_schema.properties}
    entry = {"exclusions": [{"resource": "edge-*", "reason": reason}]}
    assert jsonschema.Draft7Validator(schema).is_valid(entry) is accepted


def test_a_disabled_policy_is_not_counted_as_passing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, public_subnet_export: Path) -> None:
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"subnet-no-public-ip": "disabled"}))
    status, out, err = run_main(capsys, "policy", "analyze", "--file", str(public_subnet_export),
                                "--policy-config", str(config), "--json")
    assert status in (0, 1), err
    report = json.loads(out)
    total = len(report["policyPack"]["policies"])
    assert report["summary"]["disabledPolicies"] == ["subnet-no-public-ip"]
    assert report["summary"]["policiesChecked"] == total - 1
    assert not [v for v in report["violations"] if v["policy"] == "subnet-no-public-ip"]

    status, out, err = run_main(capsys, "policy", "analyze", "--file", str(public_subnet_export),
                                "--policy-config", str(config), "--quiet")
    assert "(1 disabled policy not checked)" in out.splitlines()[1]
    assert "    Disabled by the policy configuration, not checked (1):\n    - subnet-no-public-ip\n" in out
    assert f"    {total - 1} policies checked, 1 disabled, " in out


def test_quiet_analysis_shows_the_violation_and_the_summary(
        capsys: pytest.CaptureFixture[str], public_subnet_export: Path) -> None:
    status, out, err = run_main(capsys, "policy", "analyze", "--file", str(public_subnet_export),
                                "--quiet")
    assert status == 1, err
    assert out.startswith("Policies:\n") and "Type" not in out and "Resources:" not in out
    assert "subnet-no-public-ip" in out and SUBNET_URN in out
    assert "mandatory and 0 advisory violation(s)" in out.splitlines()[-1]


def test_analysis_json_carries_a_warnings_list(capsys: pytest.CaptureFixture[str],
                                               public_subnet_export: Path) -> None:
    status, out, _ = run_main(capsys, "policy", "analyze", "--file", str(public_subnet_export), "--json")
    assert status == 1 and json.loads(out)["warnings"] == []


# -- how the process ends -------------------------------------------------------------------------
def _raise(error: BaseException) -> Any:
    def handler(args: argparse.Namespace) -> int:
        raise error
    return handler


def test_ctrl_c_exits_130_without_a_traceback(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_analyze", _raise(KeyboardInterrupt()))
    status, out, err = run_main(capsys, "policy", "analyze", "--file", "x.json")
    assert (status, out, err) == (130, "", "\nztai: interrupted\n")


def test_a_bug_exits_3_with_its_traceback(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_analyze", _raise(ZeroDivisionError("division by zero")))
    status, out, err = run_main(capsys, "policy", "analyze", "--file", "x.json")
    assert status == 3 and out == ""
    assert "Traceback" in err and "ZeroDivisionError: division by zero" in err
    assert err.rstrip().endswith("error: this is a bug in ztai or the program; the traceback above "
                                 "says where")


def test_a_real_interrupt_during_a_preview_exits_130(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "ztai", "preview", "--stack", "dev"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    first = process.stderr.readline()  # the first warning: the stack file is read, the run begins
    assert first.startswith("warning:")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, first + err
    assert "Traceback" not in err and err.rstrip().endswith("ztai: interrupted")


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # `ztai ... --json | head -c 100`: the reader goes away after a few bytes.
    export = tmp_path / "export.json"
    document = json.loads(json.dumps(PUBLIC_SUBNET_EXPORT))
    for index in range(400):  # a report far larger than a pipe's buffer
        document["deployment"]["resources"].append({
            "urn": f"urn:pulumi:fuzz::zero-trust-ai::aws:s3/bucketObjectv2:BucketObjectv2::o{index}",
            "custom": True, "type": "aws:s3/bucketObjectv2:BucketObjectv2",
            "inputs": {"content": "x" * 1000}})
    export.write_text(json.dumps(document))
    process = subprocess.Popen([sys.executable, "-m", "ztai", "policy", "analyze", "--file", str(export),
                                "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(100).startswith(b"{")
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


@pytest.mark.parametrize("resources", [
    [],
    [{"urn": "urn:pulumi:dev::zero-trust-ai::pulumi:pulumi:Stack::zero-trust-ai-dev",
      "type": "pulumi:pulumi:Stack", "custom": False},
     {"urn": "urn:pulumi:dev::zero-trust-ai::pulumi:providers:aws::default", "type": "pulumi:providers:aws",
      "custom": True, "id": "x"}],
], ids=["no-resources", "stack-and-provider-only"])
def test_an_export_without_cloud_resources_is_refused(tmp_path: Path, resources: list[Any]) -> None:
    # Every policy passes on nothing: a CI gate given the wrong file must not go green.
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"version": 3, "deployment": {"manifest": {}, "resources": resources}}))
    run = ztai("policy", "analyze", "--file", str(export))
    assert (run.returncode, run.stdout) == (2, "")
    assert f"error: stack export {export} holds no cloud resources, so every policy would pass" in run.stderr


def _one_vpc_export(tmp_path: Path) -> Path:
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"version": 3, "deployment": {"manifest": {}, "resources": [
        {"urn": "urn:pulumi:dev::zero-trust-ai::pulumi:pulumi:Stack::zero-trust-ai-dev",
         "type": "pulumi:pulumi:Stack", "custom": False},
        {"urn": "urn:pulumi:dev::zero-trust-ai::aws:ec2/vpc:Vpc::data-vpc", "type": "aws:ec2/vpc:Vpc",
         "custom": True, "id": "vpc-1", "inputs": {"cidrBlock": "10.10.0.0/16"}}]}}))
    return export


@pytest.mark.parametrize("text, message", [
    ('{"subnet-no-public-ip": "advisory", "subnet-no-public-ip": "mandatory"}',
     "gives the key 'subnet-no-public-ip' twice in one object; JSON readers keep one of them silently"),
    ('{"subnet-no-public-ip": null}', "subnet-no-public-ip: null is not a setting"),
    ('{"subnet-no-public-ip": {"exclusions": [{"resource": "edge-*", "reason": "            "}]}}',
     "subnet-no-public-ip: exclusions[0] (edge-*) needs a reason of at least 10 characters besides blanks"),
], ids=["duplicate-key", "null", "blank-reason"])
def test_policy_configs_that_would_lose_or_fake_a_setting_are_refused(tmp_path: Path, text: str,
                                                                       message: str) -> None:
    config = tmp_path / "policy.json"
    config.write_text(text)
    export = _one_vpc_export(tmp_path)
    run = ztai("policy", "analyze", "--file", str(export), "--policy-config", str(config))
    assert (run.returncode, run.stdout) == (2, ""), run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr


def test_a_duplicate_key_in_an_export_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    export.write_text('{"version": 3, "version": 3, "deployment": {"resources": []}}')
    run = ztai("policy", "analyze", "--file", str(export))
    assert run.returncode == 2 and "gives the key 'version' twice" in run.stderr


def test_an_exclusion_that_matches_no_resource_is_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"subnet-no-public-ip": {"exclusions": [
        {"resource": "future-public-*", "reason": "planted before the resource exists"},
        {"resource": "data-*", "reason": "matches the stack's VPC, so no warning"}]}}))
    export = _one_vpc_export(tmp_path)
    run = ztai("policy", "analyze", "--file", str(export), "--policy-config", str(config), "--json")
    warning = ("policy config: the exclusion 'future-public-*' of subnet-no-public-ip matches no resource "
               "of this stack")
    assert run.returncode in (0, 1), run.stderr
    assert [w for w in json.loads(run.stdout)["warnings"] if "matches no resource" in w] == [
        warning + "; remove it, or it will silently apply to a resource of that name created later"]
    assert f"warning: {warning}" in run.stderr


def test_an_export_holding_the_unknown_marker_is_named(tmp_path: Path) -> None:
    # Rules skip a value unknown until deploy; deployed state never holds one, so an export that
    # does may have been edited to hide a key's settings: the run says so, in text and JSON.
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"version": 3, "deployment": {"manifest": {}, "resources": [
        {"urn": "urn:pulumi:prod::zero-trust-ai::aws:kms/key:Key::keys-training-data",
         "type": "aws:kms/key:Key", "custom": True, "id": "k",
         "inputs": {"enableKeyRotation": True},
         "outputs": {"enableKeyRotation": "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "tags": {}}}]}}))
    warning = ("urn:pulumi:prod::zero-trust-ai::aws:kms/key:Key::keys-training-data: "
               "outputs.enableKeyRotation hold Pulumi's unknown-value marker; the policies skip "
               "unknown values. An offline preview's export holds a few (the mocks leave some outputs "
               "unknown); a deployed stack's state holds none, so there it means the file was edited")
    run = ztai("policy", "analyze", "--file", str(export), "--json")
    assert warning in json.loads(run.stdout)["warnings"] and f"warning: {warning}" in run.stderr
