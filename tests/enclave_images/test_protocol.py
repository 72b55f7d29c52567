"""The parent <-> enclave wire protocol on its own: framing that survives short writes, malformed
messages as ProtocolError (never another exception), addresses checked when parsed."""

from __future__ import annotations

import io
import socket
import struct
import threading
from typing import Any

import pytest

from enclave_images.protocol import Address, ProtocolError, read_message, send_message, write_all


class TrickleStream:
    """A stream whose write() takes at most `limit` bytes a call, as a raw socket stream with a
    timeout does when the socket buffer is nearly full."""

    def __init__(self, limit: int) -> None:
        self.limit, self.data, self.calls = limit, bytearray(), 0

    def write(self, data: Any) -> int:
        self.calls += 1
        taken = bytes(data[:self.limit])
        self.data.extend(taken)
        return len(taken)

    def flush(self) -> None:
        pass


def test_send_message_writes_every_byte_of_a_stream_that_takes_a_little_at_a_time() -> None:
    message = {"type": "predict", "version": 1, "inputs": [[16] * 64] * 200}
    stream = TrickleStream(limit=1000)
    send_message(stream, message)
    assert stream.calls > 10
    assert read_message(io.BytesIO(bytes(stream.data))) == message


def test_write_all_refuses_a_stream_that_takes_nothing() -> None:
    class Full(TrickleStream):
        def write(self, data: Any) -> Any:
            return None  # a non-blocking socket with a full buffer

    with pytest.raises(OSError, match="accepted no data"):
        write_all(Full(0), b"weights")


def test_a_large_message_crosses_a_real_socket_with_a_small_send_buffer() -> None:
    """A raw socket stream with a timeout (how the parent and the enclave use theirs) sends only
    what fits in the socket buffer per write(): the whole message must arrive all the same."""
    sender, receiver = socket.socketpair()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sender.settimeout(10)
    receiver.settimeout(10)
    message = {"type": "predict", "version": 1, "inputs": [[16.0] * 64] * 1024}  # the largest batch
    received: list[Any] = []

    def receive() -> None:
        with receiver, receiver.makefile("rb", buffering=0) as stream:
            try:
                received.append(read_message(stream))
            except ProtocolError as error:
                received.append(error)

    reader = threading.Thread(target=receive)
    reader.start()
    with sender, sender.makefile("wb", buffering=0) as stream:
        send_message(stream, message)
    reader.join(timeout=30)
    assert received == [message]


def test_a_deeply_nested_message_is_a_protocol_error() -> None:
    body = b"[" * 100_000
    with pytest.raises(ProtocolError, match="nested too deeply"):
        read_message(io.BytesIO(struct.pack(">I", len(body)) + body))


@pytest.mark.parametrize(("text", "expected"), [
    ("tcp:127.0.0.1:65535", Address("tcp", "127.0.0.1", 65535)),
    ("vsock:16:5005", Address("vsock", "16", 5005)),
    ("vsock:-1:5005", Address("vsock", "-1", 5005)),  # VMADDR_CID_ANY, to listen
    ("vsock:4294967295:4294967295", Address("vsock", "4294967295", 4294967295)),
    ("unix:/run/enclave.sock", Address("unix", "/run/enclave.sock")),
])
def test_addresses_in_range_parse(text: str, expected: Address) -> None:
    assert Address.parse(text) == expected


@pytest.mark.parametrize(("text", "complaint"), [
    ("tcp:127.0.0.1:65536", "port 65536 outside 0..65535"),
    ("tcp:127.0.0.1:-1", "port -1 outside 0..65535"),
    ("vsock:16:4294967296", "port 4294967296 outside -1..4294967295"),
    ("vsock:4294967296:5005", "CID 4294967296 outside -1..4294967295"),
    ("vsock:-2:5005", "CID -2 outside"),
    ("tcp:127.0.0.1:http", "expected vsock:CID:PORT"),
    ("vsock:parent:5005", "expected vsock:CID:PORT"),
    ("unix:", "expected vsock:CID:PORT"),
])
def test_addresses_out_of_range_or_malformed_are_refused_when_parsed(text: str, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        Address.parse(text)
