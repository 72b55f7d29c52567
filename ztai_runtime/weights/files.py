"""File-to-file encryption and decryption that fail closed.

The output is written to a temporary file in the destination's directory (created exclusively,
mode 0600) and renamed over the destination only after the whole message verified and the data
reached the disk. On any failure, including an interrupt, the temporary file is removed, so a
refused message never leaves plaintext behind and an existing destination is never half-replaced.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from ztai_runtime.weights.format import DEFAULT_FRAME_LENGTH
from ztai_runtime.weights.keys import DataKeySource, DataKeyUnwrapper
from ztai_runtime.weights.stream import MessageInfo, decrypt_stream, encrypt_stream

TEMPORARY_PREFIX = ".ztai-partial-"
# Unbuffered reads: the streams read whole frames with readinto, so an extra buffer only copies.
_READ_BUFFERING = 0


class DestinationExistsError(FileExistsError):
    pass


@contextlib.contextmanager
def _atomic_output(destination: Path, overwrite: bool) -> Iterator[BinaryIO]:
    destination = destination.absolute()
    if destination.exists() and not overwrite:
        raise DestinationExistsError(f"{destination} exists; refusing to overwrite it")
    if destination.is_dir():
        raise IsADirectoryError(f"{destination} is a directory")
    descriptor, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=destination.parent)
    try:
        with open(descriptor, "wb", buffering=0) as sink:
            yield sink
            os.fsync(sink.fileno())
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # The rename is durable only once the directory entry is.
    directory = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _run(source: Path, destination: Path, overwrite: bool,
         work: Callable[[BinaryIO, BinaryIO], MessageInfo]) -> MessageInfo:
    if source.absolute() == destination.absolute():
        raise ValueError("source and destination are the same file")
    with open(source, "rb", buffering=_READ_BUFFERING) as source_file, \
            _atomic_output(destination, overwrite) as sink:
        return work(source_file, sink)


def encrypt_file(source: Path, destination: Path, keys: DataKeySource, context: Mapping[str, str], *,
                 frame_length: int = DEFAULT_FRAME_LENGTH, overwrite: bool = False) -> MessageInfo:
    return _run(source, destination, overwrite,
                lambda src, dst: encrypt_stream(src, dst, keys, context, frame_length=frame_length))


def decrypt_file(source: Path, destination: Path, unwrapper: DataKeyUnwrapper, *,
                 expected_context: Mapping[str, str] | None = None,
                 overwrite: bool = False) -> MessageInfo:
    return _run(source, destination, overwrite,
                lambda src, dst: decrypt_stream(src, dst, unwrapper, expected_context=expected_context))
