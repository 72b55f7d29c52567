"""File-to-file encryption and decryption that fail closed.

The output is written to an anonymous file in the destination's directory (Linux `O_TMPFILE`,
mode 0600): it has no name, so plaintext that has not verified yet cannot be opened by anyone
else, and if the process is killed (SIGKILL, OOM, power loss) the kernel frees it. Only once the
whole message verified and the data reached the disk is the file given the destination's name,
with `link`, which fails if the name exists meanwhile (no check-then-replace race); `--force`
replaces atomically with `rename`. Where `O_TMPFILE` is unsupported, a named `0600` temporary
file is used instead, removed on every failure the process survives.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ztai_runtime.weights.format import DEFAULT_FRAME_LENGTH
from ztai_runtime.weights.keys import DataKeySource, DataKeyUnwrapper
from ztai_runtime.weights.stream import MessageInfo, decrypt_stream, encrypt_stream

TEMPORARY_PREFIX = ".ztai-partial-"
# Unbuffered reads: the streams read whole frames with readinto, so an extra buffer only copies.
_READ_BUFFERING = 0


class DestinationExistsError(FileExistsError):
    pass


def _anonymous_file(directory: Path) -> int | None:
    """An O_TMPFILE descriptor in `directory`, or None where one cannot later be given a name.

    Naming goes through linkat() on /proc/self/fd, which some filesystems and containers refuse
    (EXDEV on overlay mounts, for one): that is probed with an empty file first, so a refusal is
    never discovered after the work is done.
    """
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        probe = os.open(directory, flag | os.O_WRONLY, 0o600)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # filesystem without O_TMPFILE support
        raise
    probe_name = directory / f"{TEMPORARY_PREFIX}probe-{secrets.token_hex(8)}"
    try:
        os.link(f"/proc/self/fd/{probe}", probe_name, follow_symlinks=True)
    except OSError:
        os.close(probe)
        return None
    os.unlink(probe_name)
    return probe


def _publish_named(temporary: Path, destination: Path, overwrite: bool) -> None:
    """Give the verified file its name; the temporary name is gone afterwards in every case."""
    try:
        if overwrite:
            os.replace(temporary, destination)
        else:
            os.link(temporary, destination)  # fails if the name appeared meanwhile: never replaces
    except FileExistsError:
        raise DestinationExistsError(f"{destination} exists; refusing to overwrite it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _fsync_directory(directory: Path) -> None:
    # The new name is durable only once the directory entry is. Some filesystems refuse fsync on
    # a directory; the data itself is already on disk then, so this is best effort.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def _atomic_output(destination: Path, overwrite: bool) -> Iterator[BinaryIO]:
    destination = destination.absolute()
    if destination.is_dir():
        raise IsADirectoryError(f"{destination} is a directory")
    if destination.exists() and not overwrite:
        raise DestinationExistsError(f"{destination} exists; refusing to overwrite it")
    directory = destination.parent
    descriptor = _anonymous_file(directory)
    if descriptor is not None:
        with open(descriptor, "wb", buffering=0) as sink:
            yield sink
            os.fsync(sink.fileno())
            # Name the anonymous file: through /proc, link() follows the descriptor to its inode.
            temporary = directory / f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}"
            os.link(f"/proc/self/fd/{sink.fileno()}", temporary, follow_symlinks=True)
        _publish_named(temporary, destination, overwrite)
    else:
        temporary = directory / f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with open(descriptor, "wb", buffering=0) as sink:
                yield sink
                os.fsync(sink.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _publish_named(temporary, destination, overwrite)
    _fsync_directory(directory)


# Told the number of input bytes read so far (a progress display); called once per read.
Progress = Callable[[int], None]


class _ProgressReader:
    """The source file, reporting the bytes read so far to `progress` after each read. Only the
    two methods the streams use are forwarded: anything else is a bug worth an AttributeError."""

    def __init__(self, source: BinaryIO, progress: Progress) -> None:
        self._source, self._progress, self._position = source, progress, 0

    def read(self, count: int = -1) -> bytes:
        data = self._source.read(count)
        self._advance(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        count: int = self._source.readinto(buffer)  # type: ignore[attr-defined]
        self._advance(count or 0)
        return count

    def _advance(self, count: int) -> None:
        if count:
            self._position += count
            self._progress(self._position)


def _run(source: Path, destination: Path, overwrite: bool,
         work: Callable[[BinaryIO, BinaryIO], MessageInfo], progress: Progress | None) -> MessageInfo:
    if destination.exists() and os.path.samefile(source, destination):
        raise ValueError("source and destination are the same file")
    with open(source, "rb", buffering=_READ_BUFFERING) as source_file, \
            _atomic_output(destination, overwrite) as sink:
        reader: Any = source_file if progress is None else _ProgressReader(source_file, progress)
        return work(reader, sink)


def encrypt_file(source: Path, destination: Path, keys: DataKeySource, context: Mapping[str, str], *,
                 frame_length: int = DEFAULT_FRAME_LENGTH, overwrite: bool = False,
                 progress: Progress | None = None) -> MessageInfo:
    return _run(source, destination, overwrite,
                lambda src, dst: encrypt_stream(src, dst, keys, context, frame_length=frame_length),
                progress)


def decrypt_file(source: Path, destination: Path, unwrapper: DataKeyUnwrapper, *,
                 expected_context: Mapping[str, str] | None = None,
                 overwrite: bool = False, progress: Progress | None = None) -> MessageInfo:
    return _run(source, destination, overwrite,
                lambda src, dst: decrypt_stream(src, dst, unwrapper, expected_context=expected_context),
                progress)
