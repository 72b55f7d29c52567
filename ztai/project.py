"""The project a command works on: the nearest directory holding Pulumi.yaml, as `pulumi` finds it."""

from __future__ import annotations

import sys
from pathlib import Path

from ztai.errors import UsageError


def find_project(start: Path) -> Path:
    """The nearest directory at or above `start` holding Pulumi.yaml."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise UsageError(f"no Pulumi.yaml in {start} or any directory above it; run ztai inside the "
                     "project or pass --project-dir DIR")


def use_project(project_dir: Path) -> Path:
    """Make the project's own `components` the ones imported (a fork's edits, not the copy an
    installed `ztai` carries), and return the resolved directory. Call before importing them."""
    resolved = project_dir.resolve()
    if str(resolved) not in sys.path:
        sys.path.insert(0, str(resolved))
    return resolved
