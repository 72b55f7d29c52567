"""The parent <-> enclave wire protocol and the transports it runs on.

A message is a 4-byte big-endian length and a UTF-8 JSON object (at most 4 MiB). A `load`
message is followed by exactly `size` raw bytes: the encrypted weights file, streamed. Version 1:

    parent -> enclave  {"type": "load", "version": 1, "size": N, "key_arns": [...], "context": {...},
                        "credentials": {...}}  + N bytes
                       (key ARNs, region and required context are the enclave image's own; the
                        parent's must agree with them)
    enclave -> parent  {"type": "loaded", "classes": 10, "features": 64} | {"type": "error", ...}
    parent -> enclave  {"type": "predict", "version": 1, "inputs": [[64 numbers], ...],
                        "auth": {"authorization": "Bearer <JWT>", "x-ztai-route": "POST /v1/infer",
                                 "x-ztai-client-cert-issuer": "<issuer DN>", ...}}
                       (the HTTP headers the gateway sent; enclave/auth.py verifies them)
    enclave -> parent  {"type": "prediction", "labels": [...], "audit": {...}}
                       | {"type": "error", "error": "...", "audit": {...}}
                       | {"type": "error", "error": "refused: ...", "status": 401 | 403, "audit": {...}}
                       (`audit`: the enclave's decision for the parent's inference event, never a
                        token or an input: {"clientId", "partner", "route", "rows", "model",
                        "modelVersion", "decision": "served" | "refused", "reason"}, and when
                        served the input summary "inputCells", "inputCellCount" (cells, not
                        inputs: enclave/input_cells.py); ztai_runtime/inference_events.py)
    parent -> enclave  {"type": "ping", "version": 1}
    enclave -> parent  {"type": "pong", "loaded": true|false}

Plaintext weights and keys never cross this channel: only ciphertext goes in, only labels come
out. The transport is vsock in production and TCP or a Unix socket in tests (same code).
"""

from __future__ import annotations

import io
import json
import socket
import struct
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
MAX_TCP_PORT = 0xFFFF
# vsock CIDs and ports are 32-bit; -1 stands for VMADDR_CID_ANY / VMADDR_PORT_ANY.
MAX_VSOCK_NUMBER = 0xFFFFFFFF
# A predict message of the model's largest batch (1024 rows of 64 numbers) is ~1.3 MB of JSON.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
ENCLAVE_PORT = 5005  # vsock port the enclave application listens on
PARENT_CID = 3  # the parent instance, as seen from an enclave


class ProtocolError(Exception):
    """A malformed, oversized or unexpected message."""


@dataclass(frozen=True)
class Address:
    """`vsock:CID:PORT`, `tcp:HOST:PORT` or `unix:PATH`."""

    family: str
    host: str
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> Address:
        kind, _, rest = text.partition(":")
        try:
            if kind == "vsock":
                cid, port = rest.split(":")
                return cls("vsock", str(_number(text, "CID", cid, -1, MAX_VSOCK_NUMBER)),
                           _number(text, "port", port, -1, MAX_VSOCK_NUMBER))
            if kind == "tcp":
                host, port = rest.rsplit(":", 1)
                return cls("tcp", host, _number(text, "port", port, 0, MAX_TCP_PORT))
            if kind == "unix" and rest:
                return cls("unix", rest)
        except ValueError:
            pass
        raise ProtocolError(f"address {text!r}: expected vsock:CID:PORT, tcp:HOST:PORT or unix:PATH")

    def _family(self) -> tuple[int, Any]:
        if self.family == "vsock":
            return socket.AF_VSOCK, (int(self.host), self.port)
        if self.family == "tcp":
            return socket.AF_INET, (self.host, self.port)
        return socket.AF_UNIX, self.host

    def connect(self, timeout: float | None = 30.0) -> socket.socket:
        family, target = self._family()
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(target)
        return sock

    def listen(self, backlog: int = 8) -> socket.socket:
        family, target = self._family()
        sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(target)
        sock.listen(backlog)
        return sock


def _number(address: str, what: str, text: str, lowest: int, highest: int) -> int:
    """An address's port or CID, range-checked here: the socket layer would raise OverflowError
    for a TCP port and silently truncate a vsock number."""
    value = int(text)  # ValueError: not a number, reported as a malformed address
    if not lowest <= value <= highest:
        raise ProtocolError(f"address {address!r}: {what} {value} outside {lowest}..{highest}")
    return value


def write_all(stream: Any, data: bytes) -> None:
    """Write every byte of `data`. A raw socket stream (`makefile(buffering=0)`) on a socket with a
    timeout sends what fits in the socket buffer and returns that count: a bare `write()` would
    silently drop the rest and desynchronise the peers."""
    view = memoryview(data).cast("B")
    while view:
        written = stream.write(view)
        if not written:  # None: a non-blocking socket with a full buffer (ours all have timeouts)
            raise OSError(f"the connection accepted no data ({len(view)} bytes left to send)")
        view = view[written:]


def _recv_exact(stream: io.BufferedIOBase | Any, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            raise ProtocolError(f"connection closed after {len(data)} of {count} bytes")
        data.extend(chunk)
    return bytes(data)


def send_message(stream: Any, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    write_all(stream, struct.pack(">I", len(body)) + body)
    stream.flush()


def read_message(stream: Any) -> dict[str, Any] | None:
    """The next message, or None when the peer closed the connection between messages."""
    head = stream.read(4)
    if not head:
        return None
    if len(head) < 4:
        head += _recv_exact(stream, 4 - len(head))
    (length,) = struct.unpack(">I", head)
    if length > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {length} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        message = json.loads(_recv_exact(stream, length))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"message is not JSON: {error}") from None
    except RecursionError:
        raise ProtocolError("message is nested too deeply") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("message is not an object with a string 'type'")
    return message


class LimitedReader(io.RawIOBase):
    """Exactly the next `size` bytes of `stream`, then end of stream (so a weights message cannot
    run into the next protocol message, and a short one is truncation)."""

    def __init__(self, stream: Any, size: int) -> None:
        self._stream, self.remaining = stream, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.remaining <= 0:
            return 0
        view = memoryview(buffer).cast("B")[:self.remaining]
        count: int = self._stream.readinto(view) or 0
        self.remaining -= count
        return count

    def drain(self) -> None:
        """Consume what the reader did not (after a refusal), keeping the stream in step."""
        scratch = bytearray(1 << 16)
        while self.remaining > 0 and self.readinto(scratch):
            pass
