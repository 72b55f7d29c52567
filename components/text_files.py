"""Text files users hand the project (stack files, the partners file, JSON the CLI reads): UTF-8,
with or without a byte order mark, and nothing else.

One decoder for the program and the CLI, so a file refused by one is refused by the other with the
same words. It lives with the components because they read the stack's files during `pulumi up`;
the CLI may import components, never the other way round.
"""

from __future__ import annotations

import codecs

# Byte order marks of encodings named but not read: checked longest first (the UTF-32 LE mark
# starts with the UTF-16 LE one).
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
)
RESAVE = "save it as UTF-8"


class NotUtf8TextError(ValueError):
    """The bytes are not UTF-8 text; the message completes "<file> ...", e.g. "is UTF-16 text"."""


def decode_utf8(data: bytes) -> str:
    """`data` as text: UTF-8, a byte order mark accepted (editors on Windows write one)."""
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise NotUtf8TextError(f"is {encoding} text (it starts with a {encoding} byte order mark); "
                              f"{RESAVE}")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as failure:
        # UTF-16 without a mark: every other byte of ASCII text is NUL.
        hint = (" (it looks like UTF-16)" if data[1:40:2].count(0) > 10 or data[0:40:2].count(0) > 10
                else "")
        line = data[:failure.start].count(b"\n") + 1
        raise NotUtf8TextError(f"is not UTF-8 text{hint}: byte 0x{data[failure.start]:02x} on line {line} "
                          f"(offset {failure.start}) cannot be decoded; {RESAVE}") from None
    if "\x00" in text:
        raise NotUtf8TextError(f"contains NUL characters (a binary file, or UTF-16 text?); {RESAVE}")
    return text
