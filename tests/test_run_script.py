"""`./run`, the developer entry point: paths given to it are the caller's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT


def test_preview_reads_option_paths_from_the_callers_directory(tmp_path: Path) -> None:
    # A policy config that is not JSON fails before the program runs: the message shows which
    # file was read, the caller's, not one beside the script.
    (tmp_path / "policy.json").write_text("{", encoding="utf-8")
    run = subprocess.run([str(ROOT / "run"), "preview", "--policy-config", "policy.json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2, run.stderr
    assert "error: policy config policy.json is not JSON" in run.stderr, run.stderr
