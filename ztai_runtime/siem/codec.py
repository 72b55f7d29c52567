"""JSON and base64 in and out for the SIEM transform: orjson and pybase64 when the function ships
them, the standard library otherwise, with the same results either way.

The transform's cost is mostly JSON and base64: parsing each log line and the subscription
payload, writing each OCSF event, and base64 both ways (docs/benchmarks.md, "SIEM stream"). orjson
and pybase64 (SIMD base64) do that several times faster than the standard library, so the
transform function ships them (components/siem_stream.py, hash-pinned in requirements-lambda.txt);
without them (the CLI, a checkout without the packages) everything here falls back to `json` and
`base64` and behaves the same.

Where orjson and `json` would answer differently, the answer is `json`'s, so a line means the same
to the SIEM whichever library read it:

- orjson refuses what `json` accepts: NaN and Infinity, an escaped lone surrogate (`"\\ud800"`), a
  number too large for a double, nesting deeper than 1,024. `loads` then asks `json`, which accepts
  the line (or refuses it as it always did);
- orjson reads an integer outside 64 bits as a float, silently (`123456789012345678901234567890`
  becomes `1.2345678901234568e+29`). `loads` cannot see that without a walk, so it is left to the
  one walk the transform makes anyway (the redaction, ocsf._redact), which reports such a float
  with `WideNumberError`; the caller then re-reads the line with `json_loads` (exact integers);
- orjson refuses to write a string with a lone surrogate and an integer outside 64 bits; `dumps`
  then writes with `json` (escaping non-ASCII, so the text is valid UTF-8 whatever it holds).

`dumps` writes compact JSON with non-ASCII characters as they are (valid JSON either way; the
bytes differ from `json.dumps`'s defaults, the values do not), and NaN and Infinity as null in
both paths (orjson does; `json` would write them bare, which is not JSON).

pybase64 writes the same base64 as `base64`, and reads strictly: it refuses some text `base64`
accepts even with validate=True (padding past a complete group, `YWI=YQ==`), so `b64decode` asks
`base64` when pybase64 refuses, and a record is refused only when `base64` refuses it too.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

try:  # shipped with the transform function; optional everywhere else
    import orjson
except ImportError:  # pragma: no cover - the fallback is tested through `use_fast(False)`
    orjson = None  # type: ignore[assignment]
try:
    # With its compiled extension: without it pybase64 runs pure Python, slower than `base64`
    # itself, so a wheel for another machine (its extension does not load) means no pybase64.
    import pybase64._pybase64
except ImportError:  # pragma: no cover - as above
    pybase64 = None  # type: ignore[assignment]

# A float outside this range may be a wide integer orjson rounded (see the module docstring).
WIDE = 2.0 ** 63

_orjson: Any = orjson
_pybase64: Any = pybase64


class WideNumberError(Exception):
    """A number the fast parser may have rounded: re-read the line with `json_loads`."""


def using_orjson() -> bool:
    """Whether orjson reads and writes the JSON."""
    return _orjson is not None


def fast_libraries() -> tuple[str, ...]:
    """The fast libraries in use (the transform names them in each invocation's metric line)."""
    return tuple(name for name, module in (("orjson", _orjson), ("pybase64", _pybase64))
                 if module is not None)


def use_fast(enabled: bool) -> tuple[str, ...]:
    """Switch the fast paths on (those whose library is importable) or off; returns the ones now
    on. For the tests and the benchmark, which check and measure both."""
    global _orjson, _pybase64
    _orjson = orjson if enabled else None
    _pybase64 = pybase64 if enabled else None
    return fast_libraries()


def b64decode(data: str | bytes) -> bytes:
    """Strict base64 (`validate=True`: no character outside the alphabet); binascii.Error when
    `base64` refuses it."""
    fast = _pybase64
    if fast is not None:
        try:
            return fast.b64decode(data, validate=True)  # type: ignore[no-any-return]
        except (binascii.Error, ValueError):
            pass  # stricter than base64 on padding: base64 decides
    return base64.b64decode(data, validate=True)


def b64encode(data: bytes) -> str:
    """Standard base64, as text."""
    fast = _pybase64
    if fast is not None:
        return fast.b64encode_as_string(data)  # type: ignore[no-any-return]
    return base64.b64encode(data).decode("ascii")


def json_loads(text: str | bytes) -> Any:
    """The standard library's reading: exact integers; NaN and Infinity accepted."""
    return json.loads(text)


def loads(text: str | bytes) -> Any:
    """Parse a JSON text (str or UTF-8 bytes) as `json.loads` does, but for one thing: with orjson,
    an integer outside [-2**63, 2**64) comes back as a float (see the module docstring). A caller
    that passes values on walks them with `check_wide` (ocsf._redacted) and re-reads with
    `json_loads`. Raises ValueError (or RecursionError, as `json`) on what is not JSON."""
    fast = _orjson
    if fast is not None:
        try:
            return fast.loads(text)
        except fast.JSONDecodeError:
            pass  # what orjson refuses `json` may accept: its answer, as before
    return json.loads(text)


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII characters as they are; NaN and Infinity written as null (as
    orjson writes them: JSON has no such numbers, and a SIEM would refuse the line)."""
    fast = _orjson
    if fast is not None:
        try:
            return fast.dumps(value).decode()  # type: ignore[no-any-return]
        except fast.JSONEncodeError:
            pass  # a lone surrogate or a wide integer: json writes both
    return _json_dumps(value, ensure_ascii=False)


def _json_dumps(value: Any, *, ensure_ascii: bool) -> str:
    try:
        return json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or Infinity somewhere (json would write them bare): null, as orjson
        return json.dumps(_finite(value), ensure_ascii=ensure_ascii, separators=(",", ":"))


def _finite(value: Any) -> Any:
    """The value with every NaN and Infinity replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def dumps_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes; a lone surrogate is written as its `\\uXXXX` escape (JSON can
    carry it so; UTF-8 cannot)."""
    fast = _orjson
    if fast is not None:
        try:
            return fast.dumps(value)  # type: ignore[no-any-return]
        except fast.JSONEncodeError:
            pass
    text = _json_dumps(value, ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _json_dumps(value, ensure_ascii=True).encode("ascii")
