"""A progress bar for long file work (weights, tokenize), shown only to a person at a terminal.

Scripts and CI read stderr too: when it is not a terminal nothing is drawn, so their logs hold only
the messages. The bar is cleared when the work ends, leaving the command's own summary line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Told the absolute position reached (bytes of the input read so far).
Advance = Callable[[int], None]


def _ignore(position: int) -> None:
    del position


@contextmanager
def byte_progress(description: str, total: int, *, initial: int = 0) -> Iterator[Advance]:
    """A callback taking the input position in bytes; it draws a bar on stderr if stderr is a
    terminal, and does nothing otherwise."""
    stream = sys.stderr
    if not stream.isatty():
        yield _ignore
        return
    from tqdm import tqdm  # only when drawn: the import costs time every command would pay

    with tqdm(total=total, initial=initial, desc=description, unit="B", unit_scale=True,
              unit_divisor=1024, file=stream, leave=False, dynamic_ncols=True) as bar:

        def advance(position: int) -> None:
            if position > bar.n:
                bar.update(position - bar.n)

        yield advance
