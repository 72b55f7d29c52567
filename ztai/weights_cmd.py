"""`ztai weights ...`: placeholder until the command lands (issue 3)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    """Add the `weights` parsers to `commands`; each sets `handler`."""
    del commands  # not built yet: the command is absent from `ztai --help` until it is


def _unused(args: argparse.Namespace) -> int:
    raise NotImplementedError
