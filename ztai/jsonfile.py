"""Reading a JSON document a user points the CLI at, with errors that say where it went wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path, what: str, error: type[Exception]) -> Any:
    """The parsed document, or `error` naming `what` the file was meant to be and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as failure:
        raise error(f"cannot read {what} {path}: {failure.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as failure:
        raise error(f"{what} {path} is not JSON: {failure.msg} at line {failure.lineno}, "
                    f"column {failure.colno}") from None
