"""Explicit, per-column normalisation before tokenizing.

Tokens compare bytes: " Ann@Example.com" and "ann@example.com" get different tokens. Whether they
are the same person is a decision about the column, so nothing is normalised unless asked for, per
column, and the steps are recorded in the checkpoint (a resumed run must normalise the same way).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence

from ztai_runtime.tokenize.errors import InputError

Normalizer = Callable[[str], str]

NORMALIZERS: dict[str, Normalizer] = {
    "strip": str.strip,                                            # surrounding whitespace
    "lower": str.lower,                                            # case (emails, hostnames)
    "nfc": lambda value: unicodedata.normalize("NFC", value),      # one encoding of "é"
}


def parse_normalizers(specs: Sequence[str], columns: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`["email=strip+lower", ...]` → `{"email": ("strip", "lower")}`, steps applied in order."""
    parsed: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        column, separator, steps_text = spec.partition("=")
        steps = tuple(step.strip() for step in steps_text.split("+") if step.strip())
        if not separator or not column or not steps:
            raise InputError(f"normalisation {spec!r} must be COLUMN=STEP[+STEP...], with steps from "
                             f"{', '.join(NORMALIZERS)}")
        if column not in columns:
            raise InputError(f"normalisation {spec!r} names column {column!r}, which is not among the "
                             f"tokenized columns ({', '.join(columns)})")
        unknown = [step for step in steps if step not in NORMALIZERS]
        if unknown:
            raise InputError(f"normalisation {spec!r}: unknown step {unknown[0]!r}; steps are "
                             f"{', '.join(NORMALIZERS)}")
        if column in parsed:
            raise InputError(f"column {column!r} is normalised twice; give its steps once, joined by +")
        parsed[column] = steps
    return parsed


def compose(steps: Sequence[str]) -> Normalizer | None:
    """One function applying `steps` in order (None when there are none)."""
    functions = [NORMALIZERS[step] for step in steps]
    if not functions:
        return None

    def normalize(value: str) -> str:
        for function in functions:
            value = function(value)
        return value

    return normalize


def composed(normalizers: Mapping[str, Sequence[str]]) -> dict[str, Normalizer]:
    return {column: function for column, steps in normalizers.items()
            if (function := compose(steps)) is not None}
