"""`./run`, the developer entry point: paths given to it are the caller's, and it installs only
from the hash-pinned lock files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.locks import LOCK_PAIRS


def test_preview_reads_option_paths_from_the_callers_directory(tmp_path: Path) -> None:
    # A policy config that is not JSON fails before the program runs: the message shows which
    # file was read, the caller's, not one beside the script.
    (tmp_path / "policy.json").write_text("{", encoding="utf-8")
    run = subprocess.run([str(ROOT / "run"), "preview", "--policy-config", "policy.json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2, run.stderr
    assert "error: policy config policy.json is not JSON" in run.stderr, run.stderr


# --- Installs from the hash-pinned lock files ---------------------------------------------------

def _copy_of_run(tmp_path: Path) -> Path:
    """The script and its lock files in a scratch directory, with a stand-in `.venv/bin/python`
    (and `uv`) that logs how it is called instead of installing anything: offline, and the real
    environment is never touched."""
    for _, lock in LOCK_PAIRS:
        (tmp_path / lock).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / lock).write_bytes((ROOT / lock).read_bytes())
    (tmp_path / "run").write_bytes((ROOT / "run").read_bytes())
    (tmp_path / "run").chmod(0o755)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "uv"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls.log"\n')
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def _run(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run([str(copy / "run"), *args], cwd=copy, capture_output=True, text=True,
                          timeout=120, env=env)


def _calls(copy: Path) -> list[str]:
    log = copy / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_run_lists_the_lock_files_the_tests_check() -> None:
    text = (ROOT / "run").read_text()
    block = re.search(r"^LOCKS=\(\n(.*?)\n\)", text, re.M | re.S)
    assert block, "no LOCKS=( ... ) in ./run"
    assert tuple(tuple(line.strip().split(":")) for line in block.group(1).splitlines()) == LOCK_PAIRS


def test_setup_installs_the_lock_with_require_hashes_and_reinstalls_when_it_changes(tmp_path: Path) -> None:
    copy = _copy_of_run(tmp_path)
    run = _run(copy, "ztai", "--version")
    assert run.returncode == 0, run.stderr
    install = ("python -m pip install --disable-pip-version-check --require-hashes --only-binary :all: "
               "-r requirements.txt")
    assert _calls(copy) == [install, "python -m ztai --version"]
    # Installed once: the next command goes straight to the CLI...
    assert _run(copy, "ztai", "--version").returncode == 0
    assert _calls(copy)[2:] == ["python -m ztai --version"]
    # ... until the lock changes (the stamp is keyed on the lock file's content).
    with (copy / "requirements.txt").open("a") as lock:
        lock.write("# regenerated\n")
    assert _run(copy, "ztai", "--version").returncode == 0
    assert _calls(copy)[3:] == [install, "python -m ztai --version"]
    # The tests install their own lock (the whole closure, the program's included).
    copy2 = _copy_of_run(tmp_path / "second")
    _run(copy2, "test")
    assert _calls(copy2)[0] == install.replace("requirements.txt", "requirements-dev.txt")


@pytest.mark.parametrize(("line", "problem"), [
    ("evil==1.0", "'evil==1.0' has no valid --hash=sha256:"),
    ("evil>=1.0 --hash=sha256:" + "a" * 64, "'evil>=1.0' is not a requirement pinned with =="),
    ("evil==1.0 --hash=md5:" + "a" * 32, "'evil==1.0' has no valid --hash=sha256:"),
    ("evil==1.0 --hash=sha256:abc", "'evil==1.0' has no valid --hash=sha256:"),
    ("-r other.txt", "'-r other.txt' is not a requirement pinned with =="),
    ("--index-url https://mirror.example/simple",
     "'--index-url https://mirror.example/simple' is not a requirement pinned with =="),
    ("evil @ https://mirror.example/evil.whl",
     "'evil @ https://mirror.example/evil.whl' is not a requirement pinned with =="),
])
def test_setup_refuses_a_lock_with_an_unpinned_or_unhashed_requirement(tmp_path: Path, line: str,
                                                                         problem: str) -> None:
    copy = _copy_of_run(tmp_path)
    lock = copy / "requirements-dev.txt"
    lines = lock.read_text().splitlines()
    lines.insert(2, line)  # after the generated header's two comment lines
    lock.write_text("\n".join(lines) + "\n")
    run = _run(copy, "test")
    assert run.returncode == 2, run.stderr
    assert f"run: requirements-dev.txt line 3: {problem}" in run.stderr, run.stderr
    assert "regenerate the lock files with ./run lock" in run.stderr
    # Refused before pip (or anything else) ran.
    assert _calls(copy) == []


def test_setup_refuses_a_missing_lock_file(tmp_path: Path) -> None:
    copy = _copy_of_run(tmp_path)
    (copy / "requirements.txt").unlink()
    run = _run(copy, "ztai", "--version")
    assert run.returncode == 2, run.stderr
    assert "run: cannot read the lock file requirements.txt" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and _calls(copy) == []


def test_lock_installs_the_resolver_from_its_own_lock_and_compiles_every_input_with_hashes(
        tmp_path: Path) -> None:
    copy = _copy_of_run(tmp_path)
    run = _run(copy, "lock", "--upgrade-package", "boto3")
    assert run.returncode == 0, run.stderr
    calls = _calls(copy)
    assert calls[0] == ("python -m pip install --disable-pip-version-check --require-hashes "
                        "--only-binary :all: -r requirements-lock.txt")
    assert calls[1:] == [
        "uv pip compile --quiet --universal --python-version 3.11 --generate-hashes "
        f"--custom-compile-command ./run lock --upgrade-package boto3 {source} -o {lock}"
        for source, lock in LOCK_PAIRS]


# --- The wheels the Lambda functions ship -----------------------------------------------------------

DOWNLOAD = ("python -m pip download --disable-pip-version-check --require-hashes --no-deps "
            "--only-binary :all: --platform manylinux2014_aarch64 --python-version 3.13 "
            "--implementation cp --abi cp313 -r requirements-lambda.txt -d .lambda-packages/wheels")


def test_the_lambda_wheels_are_downloaded_for_arm64_once_per_lock_and_again_on_demand(tmp_path: Path) -> None:
    copy = _copy_of_run(tmp_path)
    preview = f"python -m ztai preview --project-dir {copy} --stack dev"
    assert _run(copy, "preview").returncode == 0
    install = ("python -m pip install --disable-pip-version-check --require-hashes --only-binary :all: "
               "-r requirements.txt")
    assert _calls(copy) == [install, DOWNLOAD, preview]
    # Done for this lock: the next preview goes straight to the program...
    assert _run(copy, "preview").returncode == 0
    assert _calls(copy)[3:] == [preview]
    # ... `./run lambda-packages` downloads again (the fix the program names for a bad wheel) ...
    run = _run(copy, "lambda-packages")
    assert run.returncode == 0, run.stderr
    assert _calls(copy)[4:] == [DOWNLOAD]
    # ... and so does a preview once the lock changed.
    with (copy / "requirements-lambda.txt").open("a") as lock:
        lock.write("# regenerated\n")
    assert _run(copy, "preview").returncode == 0
    assert _calls(copy)[5:] == [DOWNLOAD, preview]
    # The tests need them too (the transform's archive is checked).
    copy2 = _copy_of_run(tmp_path / "second")
    _run(copy2, "test")
    assert _calls(copy2)[:2] == [install.replace("requirements.txt", "requirements-dev.txt"), DOWNLOAD]


def test_a_failed_download_of_the_lambda_wheels_stops_with_the_log_and_the_fix(tmp_path: Path) -> None:
    copy = _copy_of_run(tmp_path)
    python = copy / ".venv" / "bin" / "python"
    python.write_text(f'''#!/bin/sh
echo "python $*" >> "{copy}/calls.log"
case "$*" in *"pip download"*) echo "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES" >&2; exit 1 ;; esac
''')
    run = _run(copy, "preview")
    assert run.returncode == 2, run.stderr
    assert "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES" in run.stderr
    assert ("run: downloading the Lambda functions' wheels of requirements-lambda.txt failed (full log: "
            ".lambda-packages/pip-download.log)") in run.stderr
    assert "then run ./run lambda-packages" in run.stderr and "Traceback" not in run.stderr
    assert _calls(copy)[1:] == [DOWNLOAD]  # the preview did not run
    # Not marked done: the next run tries again.
    _run(copy, "preview")
    assert _calls(copy)[2:] == [DOWNLOAD]


def test_an_unhashed_lambda_lock_is_refused_before_anything_is_downloaded(tmp_path: Path) -> None:
    copy = _copy_of_run(tmp_path)
    lock = copy / "requirements-lambda.txt"
    lines = lock.read_text().splitlines()
    lines.insert(2, "evil==1.0")
    lock.write_text("\n".join(lines) + "\n")
    run = _run(copy, "lambda-packages")
    assert run.returncode == 2, run.stderr
    assert "run: requirements-lambda.txt line 3: 'evil==1.0' has no valid --hash=sha256:" in run.stderr
    assert DOWNLOAD not in _calls(copy)
