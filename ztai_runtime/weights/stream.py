"""Streaming encryption and decryption of AWS Encryption SDK messages (see format.py).

Speed and memory come from the same design: a fixed ring of frame buffers, AES-GCM done in place
with `encrypt_into`/`decrypt_into` (no per-frame allocation) by worker threads (`cryptography`
releases the GIL inside AEAD calls), while this thread reads and writes (also GIL-free). At most
`in_flight` frames are held, so memory is about 2 x in_flight x frame length whatever the size of
the file: 2 x 4 x 2 MiB = 16 MiB with the defaults.

Decryption writes each frame's plaintext to the sink only after that frame's tag verifies, in order.
A message is authentic only once the final frame verified and nothing follows it: until
`decrypt_stream` returns, what the sink holds must be treated as unverified. `files.decrypt_file`
therefore writes to a temporary file and renames it only on success.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ztai_runtime.weights.format import (
    DEFAULT_FRAME_LENGTH,
    FINAL_FRAME_MARKER,
    HEADER_AUTH_IV,
    IV_LENGTH,
    MAX_ENCRYPTED_DATA_KEYS,
    MAX_FRAME_COUNT,
    MAX_FRAME_LENGTH,
    MESSAGE_ID_LENGTH,
    SUITE_NAME,
    TAG_LENGTH,
    AuthenticationError,
    EncryptedDataKey,
    WeightsFormatError,
    body_aad,
    derive_keys,
    frame_iv,
    read_header,
    read_up_to,
    serialize_header,
    validate_context,
)
from ztai_runtime.weights.keys import DataKeySource, DataKeyUnwrapper

DEFAULT_IN_FLIGHT = 4
# Below this frame size a thread hand-off costs more than the AES work it moves (SDK defaults are
# 4 KiB frames): such messages are processed inline.
MIN_PARALLEL_FRAME = 64 * 1024


@dataclass(frozen=True)
class MessageInfo:
    message_id: str  # hex
    suite: str
    encryption_context: dict[str, str]
    key_provider_infos: tuple[str, ...]  # for KMS: the key ARNs that wrap the data key
    frame_length: int
    frames: int
    plaintext_length: int


def _write_all(sink: BinaryIO, data: memoryview) -> None:
    while data:
        written = sink.write(data)
        if written is None:  # a non-blocking raw stream; ours never are
            raise OSError("sink would block")
        data = data[written:]


def _read_into(source: BinaryIO, buffer: memoryview) -> int:
    """Fill `buffer` as far as the source allows; returns the count (short only at end of stream)."""
    filled = 0
    while filled < len(buffer):
        count = source.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


class _Pipeline:
    """Ordered AEAD jobs over a ring of (input, output) buffer pairs; writes results in order.

    Sized for frames of `frame_length` plaintext bytes (each buffer also holds a tag), with at least
    two pairs in flight (one frame of look-ahead) and `_workers_for` threads. Used as a context
    manager: leaving the block stops the workers, and leaving it by an exception wipes the buffers.
    """

    def __init__(self, sink: BinaryIO, frame_length: int, in_flight: int, workers: int | None) -> None:
        buffer_size = frame_length + TAG_LENGTH
        threads = _workers_for(frame_length, workers)
        self._sink = sink
        self._all = [(bytearray(buffer_size), bytearray(buffer_size)) for _ in range(max(2, in_flight))]
        self._free = deque(self._all)
        self._pending: deque[tuple[Future[int], bytes, memoryview, tuple[bytearray, bytearray]]] = deque()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ztai-aead") \
            if threads > 0 else None

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close(failed=exc_type is not None)

    def buffers(self) -> tuple[bytearray, bytearray]:
        """A free (input, output) pair, waiting for the oldest job to finish and be written if needed."""
        if not self._free:
            self._retire()
        return self._free.popleft()

    def release(self, pair: tuple[bytearray, bytearray]) -> None:
        self._free.append(pair)

    def submit(self, job: Callable[[], int], prefix: bytes, output: memoryview,
               pair: tuple[bytearray, bytearray]) -> None:
        """Run `job` (which fills `output`), then write `prefix` and `output`, in submission order."""
        if self._executor is None:
            job()
            self._write(prefix, output, pair)
            return
        self._pending.append((self._executor.submit(job), prefix, output, pair))

    def _write(self, prefix: bytes, output: memoryview, pair: tuple[bytearray, bytearray]) -> None:
        if prefix:
            _write_all(self._sink, memoryview(prefix))
        _write_all(self._sink, output)
        self._free.append(pair)

    def _retire(self) -> None:
        future, prefix, output, pair = self._pending.popleft()
        future.result()  # re-raises the worker's AuthenticationError
        self._write(prefix, output, pair)

    def drain(self) -> None:
        while self._pending:
            self._retire()

    def close(self, failed: bool) -> None:
        if self._executor is not None:
            for future, _, _, _ in self._pending:
                future.cancel()
            self._executor.shutdown(wait=True)
        self._pending.clear()
        if failed:
            # decrypt_into writes plaintext even when the tag does not verify: wipe every buffer so
            # no unverified plaintext lingers in memory (it matters in the enclave).
            for in_buffer, out_buffer in self._all:
                in_buffer[:] = bytes(len(in_buffer))
                out_buffer[:] = bytes(len(out_buffer))


def _workers_for(frame_length: int, workers: int | None) -> int:
    if frame_length < MIN_PARALLEL_FRAME:
        return 0
    if workers is not None:
        return workers
    # This thread's reads and writes need a core too: on 2 cores one AES worker beats two
    # (measured in benchmarks/weights_throughput.py); more cores take more workers.
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def encrypt_stream(source: BinaryIO, sink: BinaryIO, keys: DataKeySource,
                   context: Mapping[str, str], *, frame_length: int = DEFAULT_FRAME_LENGTH,
                   in_flight: int = DEFAULT_IN_FLIGHT, workers: int | None = None) -> MessageInfo:
    """Encrypt everything `source` yields into one message on `sink`."""
    if not 0 < frame_length <= MAX_FRAME_LENGTH:
        raise WeightsFormatError(f"frame length {frame_length} outside 1..{MAX_FRAME_LENGTH}")
    context = validate_context(context, writing=True)
    data_key, edks = keys.generate(context)
    message_id = os.urandom(MESSAGE_ID_LENGTH)
    encryption_key, commitment = derive_keys(data_key, message_id)
    aead = AESGCM(encryption_key)
    header = serialize_header(message_id, context, edks, frame_length, commitment)
    _write_all(sink, memoryview(header))
    _write_all(sink, memoryview(aead.encrypt(HEADER_AUTH_IV, b"", header)))

    total = 0
    sequence = 0
    with _Pipeline(sink, frame_length, in_flight, workers) as pipeline:
        # One frame of look-ahead: a full frame is final only if nothing follows it (the spec's
        # SHOULD: an exact multiple of the frame length ends with a full final frame).
        pair = pipeline.buffers()
        count = _read_into(source, memoryview(pair[0])[:frame_length])
        while True:
            sequence += 1
            if sequence >= MAX_FRAME_COUNT:
                raise WeightsFormatError("plaintext too long for one message (2^32-1 frames)")
            final = count < frame_length
            next_pair: tuple[bytearray, bytearray] | None = None
            next_count = 0
            if not final:
                next_pair = pipeline.buffers()
                next_count = _read_into(source, memoryview(next_pair[0])[:frame_length])
                final = next_count == 0
            iv = frame_iv(sequence)
            prefix = (struct.pack(">II", FINAL_FRAME_MARKER, sequence) + iv + struct.pack(">I", count)
                      if final else struct.pack(">I", sequence) + iv)
            plaintext = memoryview(pair[0])[:count]
            output = memoryview(pair[1])[:count + TAG_LENGTH]
            aad = body_aad(message_id, final, sequence, count)

            def job(iv: bytes = iv, plaintext: memoryview = plaintext, aad: bytes = aad,
                    output: memoryview = output) -> int:
                return aead.encrypt_into(iv, plaintext, aad, output)

            pipeline.submit(job, prefix, output, pair)
            total += count
            if final:
                if next_pair is not None:
                    pipeline.release(next_pair)
                break
            assert next_pair is not None
            pair, count = next_pair, next_count
        pipeline.drain()
    return MessageInfo(message_id=message_id.hex(), suite=SUITE_NAME, encryption_context=context,
                       key_provider_infos=tuple(_info(edk) for edk in edks), frame_length=frame_length,
                       frames=sequence, plaintext_length=total)


def _info(edk: EncryptedDataKey) -> str:
    return edk.provider_info.decode("utf-8", errors="replace")


def check_expected_context(actual: Mapping[str, str], expected: Mapping[str, str]) -> None:
    """Every expected pair must be in the message's context (the message may carry more)."""
    problems = []
    for key, value in expected.items():
        if key not in actual:
            problems.append(f"{key!r} is missing (expected {value!r})")
        elif actual[key] != value:
            problems.append(f"{key!r} is {actual[key]!r}, expected {value!r}")
    if problems:
        raise AuthenticationError("encryption context does not match: " + "; ".join(problems))


def decrypt_stream(source: BinaryIO, sink: BinaryIO, unwrapper: DataKeyUnwrapper, *,
                   expected_context: Mapping[str, str] | None = None,
                   max_frame_length: int = MAX_FRAME_LENGTH,
                   max_encrypted_data_keys: int = MAX_ENCRYPTED_DATA_KEYS,
                   in_flight: int = DEFAULT_IN_FLIGHT, workers: int | None = None) -> MessageInfo:
    """Decrypt one message from `source` to `sink`; raise AuthenticationError unless all of it
    authenticates. See the module docstring for what the sink holds when this raises."""
    header, header_tag = read_header(source, max_encrypted_data_keys=max_encrypted_data_keys,
                                     max_frame_length=max_frame_length)
    # Checked before any KMS call: a file for another model never reaches the key.
    check_expected_context(header.encryption_context, expected_context or {})
    data_key = unwrapper.unwrap(header.encrypted_data_keys, header.encryption_context)
    encryption_key, commitment = derive_keys(data_key, header.message_id)
    if not hmac.compare_digest(commitment, header.commitment):
        raise AuthenticationError("key commitment does not match: the data key does not belong to this "
                                  "message (wrong key, or a forged header)")
    aead = AESGCM(encryption_key)
    try:
        aead.decrypt(HEADER_AUTH_IV, header_tag, header.serialized)
    except InvalidTag:
        raise AuthenticationError("header authentication failed: the header was modified") from None

    frame_length = header.frame_length
    total = 0
    sequence = 0
    with _Pipeline(sink, frame_length, in_flight, workers) as pipeline:
        while True:
            sequence += 1
            field = _read_exact(source, 4, sequence)
            (marker,) = struct.unpack(">I", field)
            final = marker == FINAL_FRAME_MARKER
            if final:
                (stated,) = struct.unpack(">I", _read_exact(source, 4, sequence))
            else:
                stated = marker
            if stated != sequence:
                raise AuthenticationError(f"frame {sequence}: sequence number {stated} out of order "
                                          "(frames reordered, dropped or duplicated)")
            iv = _read_exact(source, IV_LENGTH, sequence)
            if final:
                (count,) = struct.unpack(">I", _read_exact(source, 4, sequence))
                if count > frame_length:
                    raise AuthenticationError(f"final frame {sequence}: length {count} exceeds the frame "
                                              f"length {frame_length}")
            else:
                count = frame_length
            pair = pipeline.buffers()
            ciphertext = memoryview(pair[0])[:count + TAG_LENGTH]
            if _read_into(source, ciphertext) != len(ciphertext):
                raise AuthenticationError(f"message truncated in frame {sequence}")
            output = memoryview(pair[1])[:count]
            aad = body_aad(header.message_id, final, sequence, count)

            def job(iv: bytes = iv, ciphertext: memoryview = ciphertext, aad: bytes = aad,
                    output: memoryview = output, sequence: int = sequence) -> int:
                try:
                    return aead.decrypt_into(iv, ciphertext, aad, output)
                except InvalidTag:
                    raise AuthenticationError(
                        f"frame {sequence} failed authentication (modified, truncated, swapped with "
                        "another message's frame, or wrongly marked final)") from None

            pipeline.submit(job, b"", output, pair)
            total += count
            if final:
                break
            if sequence >= MAX_FRAME_COUNT - 1:
                raise AuthenticationError("message has no final frame")
        pipeline.drain()
        if read_up_to(source, 1):
            raise AuthenticationError("data after the final frame: the message was extended or "
                                      "concatenated")
    return MessageInfo(message_id=header.message_id.hex(), suite=SUITE_NAME,
                       encryption_context=header.encryption_context,
                       key_provider_infos=tuple(_info(edk) for edk in header.encrypted_data_keys),
                       frame_length=frame_length, frames=sequence, plaintext_length=total)


def _read_exact(source: BinaryIO, count: int, sequence: int) -> bytes:
    data = read_up_to(source, count)
    if len(data) != count:
        if sequence > 0 and not data:
            raise AuthenticationError(f"message truncated before frame {sequence}: no final frame")
        raise AuthenticationError(f"message truncated in frame {sequence}")
    return data
