"""The parent agent's package (enclave_images/package_agent.py), built offline: pip installs a
stand-in boto3 wheel from a local wheelhouse with its hash pinned, as it installs the real ones
from requirements-parent.txt on a build host."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from enclave_images import package_agent
from enclave_images.package_agent import (
    AGENT_MODULES,
    LAUNCHER,
    MANIFEST,
    REQUIREMENTS,
    PackagingError,
    package,
    pin_commands,
)
from tests.conftest import ROOT
from tests.support.wheels import build_agent_package as build_package


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("package")
    output = directory / "parent-agent.tar.gz"
    return output, build_package(directory, output)


def test_the_package_holds_the_agent_its_modules_and_dependencies(built: tuple[Path, str]) -> None:
    output, digest = built
    assert hashlib.sha256(output.read_bytes()).hexdigest() == digest
    assert Path(f"{output}.sha256").read_text() == f"{digest}  parent-agent.tar.gz\n"
    with tarfile.open(output) as archive:
        members = {member.name: member for member in archive.getmembers()}
        manifest = json.loads(archive.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        contents = {name: archive.extractfile(member).read()  # type: ignore[union-attr]
                    for name, member in members.items() if member.isfile()}
    files = {name for name, member in members.items() if member.isfile()}
    assert {f"lib/{module}" for module in AGENT_MODULES} | {LAUNCHER, MANIFEST, "lib/boto3/__init__.py"} \
        <= files
    # Only what the agent needs: no enclave application, weights code or CLI.
    assert not [name for name in files if name.startswith(("lib/enclave_images/enclave",
                                                           "lib/ztai_runtime/weights", "lib/ztai/"))]
    for module in AGENT_MODULES:
        assert contents[f"lib/{module}"] == (ROOT / module).read_bytes()
    # Regular files and directories only, root's, fixed time, 0644 except the launcher.
    assert all(member.isfile() or member.isdir() for member in members.values())
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == {
        (0, 0, "root", "root", 0)}
    assert {name: m.mode for name, m in members.items() if m.mode != 0o644 and m.isfile()} == {
        LAUNCHER: 0o755}
    assert all(not name.startswith("/") and ".." not in name.split("/") for name in members)
    # The manifest (format 1) names every other file with its SHA-256.
    assert (manifest["format"], manifest["module"]) == (1, "enclave_images.parent.agent")
    assert manifest["files"] == {name: hashlib.sha256(data).hexdigest()
                                 for name, data in contents.items() if name != MANIFEST}
    assert not [name for name in files if name.endswith(".pyc")]


def test_the_package_is_reproducible(built: tuple[Path, str]) -> None:
    output, digest = built
    # The same sources, wheels and interpreter path: the same bytes, whenever and wherever built.
    assert build_package(output.parent, output.parent / "again" / "parent-agent.tar.gz") == digest
    assert build_package(output.parent, output.parent / "later.tar.gz", mtime=1_700_000_000) != digest


def test_the_launcher_runs_the_packaged_agent_and_nothing_else(built: tuple[Path, str],
                                                               tmp_path: Path) -> None:
    output, _ = built
    with tarfile.open(output) as archive:
        archive.extractall(tmp_path, filter="data")
    launcher = tmp_path / LAUNCHER
    text = launcher.read_text()
    assert re.search(r'^exec /\S+/python3\.\d+ -E -s -S -B -m enclave_images\.parent\.agent "\$@"$',
                     text, re.M)
    # From another directory, with variables that would load other code if honoured.
    run = subprocess.run([str(launcher), "--help"], cwd="/", capture_output=True, text=True, timeout=60,
                         env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
                              "PYTHONSTARTUP": "/nonexistent"}, check=False)
    assert run.returncode == 0, run.stderr
    assert "--bucket BUCKET" in run.stdout and "--key-arn KEY_ARN" in run.stdout
    # boto3 came from the package (-S: not from any site-packages; -E: PYTHONPATH ignored).
    assert "packaged boto3 stand-in" in run.stderr


def test_the_packaged_modules_are_exactly_what_the_agent_imports() -> None:
    """Follow the first-party imports from the agent; anything else must be the standard library
    or a pinned requirement."""
    pinned = {line.split("==")[0].lower() for line in REQUIREMENTS.read_text().splitlines()
              if line and not line.startswith("#")}
    seen: set[str] = set()
    queue, third_party = ["enclave_images/parent/agent.py"], set()
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        queue += [f"{parent}/__init__.py" for parent in Path(module).parents if parent.name]
        for node in ast.walk(ast.parse((ROOT / module).read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top in ("enclave_images", "ztai_runtime"):
                    path = name.replace(".", "/")
                    queue.append(f"{path}.py" if (ROOT / f"{path}.py").exists() else f"{path}/__init__.py")
                elif top not in sys.stdlib_module_names and top != "__future__":
                    third_party.add(top)
    assert seen == set(AGENT_MODULES)
    assert third_party <= pinned and "boto3" in third_party


def test_requirements_are_pinned_with_hashes_as_the_repository_pins_boto3() -> None:
    lines = [line for line in REQUIREMENTS.read_text().splitlines() if line and not line.startswith("#")]
    pins = {}
    for line in lines:
        match = re.fullmatch(r"([a-z0-9-]+)==(\S+) --hash=sha256:[0-9a-f]{64}", line)
        assert match, line
        pins[match.group(1)] = match.group(2)
    assert set(pins) == {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six",
                         "urllib3"}
    repository = dict(re.findall(r"^(boto3|botocore)==([^\s\\]+)", (ROOT / "requirements.txt").read_text(),
                                 re.M))
    assert pins["boto3"] == repository["boto3"]


def test_pin_commands_upload_under_the_artifact_prefix_and_pin_both() -> None:
    lines = pin_commands("prod", agent=(Path("build/parent-agent.tar.gz"), "ab" * 32),
                         eif=(Path("build/digits.eif"), "cd" * 32))
    assert lines[0].startswith("aws s3 cp build/digits.eif s3://$MODEL_BUCKET/artifacts/digits-cdcd")
    assert "--sse aws:kms --sse-kms-key-id $INFERENCE_KEY_ARN" in lines[0]
    assert lines[1:3] == [
        f"pulumi config set --stack prod zero-trust-ai:enclaveEifObjectKey artifacts/digits-{'cd' * 8}.eif",
        f"pulumi config set --stack prod zero-trust-ai:enclaveEifSha256 {'cd' * 32}"]
    assert lines[5] == f"pulumi config set --stack prod zero-trust-ai:parentAgentSha256 {'ab' * 32}"


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match=r"pythonX\.Y"):
        package(tmp_path / "x.tar.gz", python="python3")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("boto3==1.44.8 --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(PackagingError, match="pip could not install"):
        package(tmp_path / "x.tar.gz", requirements=requirements, wheelhouse=tmp_path)
    assert package_agent.main([str(tmp_path / "x.tar.gz"), "--requirements", str(requirements),
                               "--wheelhouse", str(tmp_path)]) == 2
