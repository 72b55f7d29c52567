"""Reading a file a user points the CLI at, with errors that say what is wrong with it.

Every file the CLI reads (stack exports, policy configurations, stack files) goes through
`read_text`, so any byte content ends in a message naming the file and the problem, never in a
traceback: a UTF-8 byte order mark is accepted (editors on Windows write one), other encodings are
refused with the encoding named.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from components.text_files import NotUtf8TextError, decode_utf8

# Deeper documents are refused: nothing the CLI reads nests this far, and the values travel on as
# protocol buffers whose parsers stop at about this depth.
MAX_DEPTH = 64


def _label(what: str, path: Path) -> str:
    return f"{what} {path}" if what else str(path)


def decode(data: bytes, path: Path, what: str, error: type[Exception]) -> str:
    """`data` as text (`components.text_files.decode_utf8`), or `error` naming the file."""
    try:
        return decode_utf8(data)
    except NotUtf8TextError as problem:
        raise error(f"{_label(what, path)} {problem}") from None


def read_text(path: Path, what: str, error: type[Exception]) -> str:
    """The file's text (see `decode`), or `error` naming `what` the file was meant to be (if
    given) and the file."""
    try:
        data = path.read_bytes()
    except OSError as failure:
        raise error(f"cannot read {_label(what, path)}: {failure.strerror or failure}") from None
    return decode(data, path, what, error)


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of two equal keys, other readers the first: either way one setting
    # (an enforcement level, an exclusion) would vanish unseen.
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKeyError(key)
        document[key] = value
    return document


def read_json(path: Path, what: str, error: type[Exception]) -> Any:
    """The parsed document, or `error` naming `what` the file was meant to be and the problem."""
    text = read_text(path, what, error)
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as duplicate:
        raise error(f"{_label(what, path)} gives the key {duplicate.key!r} twice in one object; "
                    "JSON readers keep one of them silently, so remove the other") from None
    except json.JSONDecodeError as failure:
        raise error(f"{_label(what, path)} is not JSON: {failure.msg} at line {failure.lineno}, "
                    f"column {failure.colno}") from None
    except RecursionError:
        raise error(f"{_label(what, path)} nests arrays or objects too deeply to be read") from None
    except ValueError as failure:  # e.g. an integer longer than Python converts (4,300 digits)
        raise error(f"{_label(what, path)} is not usable JSON: {failure}") from None
    problem = plain_json_problem(document)
    if problem:
        raise error(f"{_label(what, path)}: {problem}")
    return document


def _where(trail: list[str]) -> str:
    return "".join(trail).lstrip(".") or "the top level"


def plain_json_problem(document: Any, max_values: int | None = None) -> str | None:
    """What stops `document` from travelling as plain JSON, or None.

    Python's JSON parser accepts more than the standard (NaN, Infinity, lone surrogate escapes,
    integers of any size), YAML more still (dates, sets, binary, non-text keys, aliases that refer
    to themselves), and the policy pack's protocol carries numbers as doubles and text as UTF-8.
    Checked without recursion, so any depth is answered; `max_values` bounds the work on documents
    that alias the same node many times over."""
    stack: list[tuple[Any, list[str]]] = [(document, [])]
    seen = 0
    while stack:
        value, trail = stack.pop()
        seen += 1
        if max_values is not None and seen > max_values:
            return f"holds more than {max_values} values"
        if len(trail) > MAX_DEPTH:
            return (f"{_where(trail[:4])}... nests more than {MAX_DEPTH} levels deep (or refers to "
                    "itself)")
        if isinstance(value, str):
            if not _encodable(value):
                return f"{_where(trail)} holds text that is not valid Unicode (a lone surrogate escape)"
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"{_where(trail)} is {value}, which is not a JSON number"
        elif isinstance(value, int):
            if abs(value) > _LARGEST_NUMBER:
                return f"{_where(trail)} is a number too large to use"
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return f"{_where(trail)} has a key that is not text: {key!r}"
                if not _encodable(key):
                    return f"{_where(trail)} has a key that is not valid Unicode (a lone surrogate escape)"
                stack.append((item, [*trail, f".{key}"]))
        elif isinstance(value, list):
            stack.extend((item, [*trail, f"[{index}]"]) for index, item in enumerate(value))
        else:
            return (f"{_where(trail)} is a {type(value).__name__}, not text, a number, true/false, "
                    "a list or a mapping")
    return None


# Numbers travel as doubles: anything beyond the largest finite double cannot be converted.
_LARGEST_NUMBER = int(1.7976931348623157e308)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
