"""The shared datasets beside the repository (`../shared/datasets/`), which the project's tests read
but do not ship: real records under their own licences (each folder has its README and LICENSE).

`ZTAI_SHARED_DIR` names another `shared/` folder (a git worktree sits elsewhere than the clone)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def shared_dir() -> Path:
    return Path(os.environ.get("ZTAI_SHARED_DIR") or ROOT.parent / "shared")


def stratus_red_team_files() -> list[Path]:
    """The Stratus Red Team dataset's files (one JSON array of CloudTrail records per technique),
    in name order; the test is skipped, saying where it looked, when the dataset is not there."""
    folder = shared_dir() / "datasets" / "stratus-red-team"
    files = sorted(folder.glob("aws.*.json"))
    if not files:
        pytest.skip(f"the Stratus Red Team CloudTrail dataset is not at {folder} "
                    "(set ZTAI_SHARED_DIR to the shared/ folder that holds datasets/)")
    return files


def stratus_red_team_records() -> list[tuple[str, dict[str, Any]]]:
    """(file name, record) of every CloudTrail record of the Stratus Red Team dataset, in file
    order; the test is skipped, saying where it looked, when the dataset is not there."""
    records: list[tuple[str, dict[str, Any]]] = []
    for path in stratus_red_team_files():
        records.extend((path.name, record) for record in json.loads(path.read_text(encoding="utf-8")))
    return records
