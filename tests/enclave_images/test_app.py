"""The enclave application and the parent agent over a real socket (a Unix socket standing in for
vsock: same code path, `Address` picks the family). Data keys here come from a plain unwrapper;
the attested path (KMS with Recipient) is in test_end_to_end.py."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from enclave_images.enclave.app import EnclaveApp, EnclaveConfig
from enclave_images.enclave.auth import RequestVerifier, TrustConfig
from enclave_images.enclave.model import DigitsModel
from enclave_images.parent.agent import EnclaveClient, EnclaveError, make_handler
from enclave_images.protocol import Address, ProtocolError, read_message, send_message
from tests.enclave_images.conftest import TrainedModel
from tests.support.token_issuer import FIRST_PARTY_ID, StandInIssuer
from ztai_runtime.weights import EncryptedDataKey, StaticUnwrapper, encrypt_stream

CONTEXT = {"model": "digits", "version": "1"}
CONFIG = EnclaveConfig(region="eu-west-1", key_arns=("arn:aws:kms:eu-west-1:1:key/k",),
                       context={"model": "digits"})
ISSUER = StandInIssuer()
VERIFIER = RequestVerifier(TrustConfig.from_dict(ISSUER.trust()))


class FixedKey:
    def __init__(self) -> None:
        self.data_key = os.urandom(32)

    def generate(self, context: Any) -> tuple[bytes, list[EncryptedDataKey]]:
        return self.data_key, [EncryptedDataKey("test", b"fixed", b"\x00")]


@pytest.fixture
def sealed(trained_model: TrainedModel, tmp_path: Path) -> tuple[Path, bytes]:
    key = FixedKey()
    path = tmp_path / "digits.enc"
    with open(path, "wb") as sink:
        encrypt_stream(io.BytesIO(trained_model.data), sink, key, CONTEXT, frame_length=4096)
    return path, key.data_key


@pytest.fixture
def enclave(sealed: tuple[Path, bytes], tmp_path: Path) -> Iterator[Address]:
    address = Address.parse(f"unix:{tmp_path / 'enclave.sock'}")
    config = EnclaveConfig(region="eu-west-1", key_arns=("arn:aws:kms:eu-west-1:1:key/k",),
                           context={"model": "digits"})
    app = EnclaveApp(config, lambda config, credentials: StaticUnwrapper(sealed[1]), VERIFIER)
    listener = address.listen()
    threading.Thread(target=app.serve, args=(listener,), daemon=True).start()
    yield address
    listener.close()


def test_load_then_predict(enclave: Address, sealed: tuple[Path, bytes], trained_model: TrainedModel) -> None:
    client = EnclaveClient(enclave)
    assert client.ping() == {"type": "pong", "loaded": False}
    assert client.load(sealed[0], key_arns=[], context=CONTEXT,
                       credentials={})["classes"] == 10
    labels = client.predict(trained_model.test_inputs[:20].tolist(), ISSUER.headers())
    assert sum(a == b for a, b in zip(labels, trained_model.test_labels[:20], strict=True)) >= 17
    assert client.ping()["loaded"] is True


def test_tampered_weights_are_refused_and_the_connection_stays_usable(enclave: Address,
                                                                      sealed: tuple[Path, bytes],
                                                                      tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.enc"
    data = bytearray(sealed[0].read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(data)
    client = EnclaveClient(enclave)
    with pytest.raises(EnclaveError, match=r"weights refused: frame .* failed authentication"):
        client.load(tampered, key_arns=[], context=CONTEXT, credentials={})
    assert client.ping()["loaded"] is False  # same connection: the rest of the file was drained
    with pytest.raises(EnclaveError, match="this image serves model='digits' only"):
        client.load(sealed[0], key_arns=[], context={"model": "other"}, credentials={})
    # The parent may ask for more than the image requires (a version), checked against the file.
    with pytest.raises(EnclaveError, match="encryption context does not match: 'version' is '1'"):
        client.load(sealed[0], key_arns=[], context={"version": "2"}, credentials={})


def test_protocol_errors(enclave: Address) -> None:
    with enclave.connect() as sock, sock.makefile("rwb", buffering=0) as stream:
        send_message(stream, {"type": "predict", "version": 1, "inputs": [[0] * 64],
                              "auth": ISSUER.headers()})
        # The caller was verified, so the refusal's audit names it; no model, no version.
        assert read_message(stream) == {"type": "error", "error": "no model loaded", "audit": {
            "clientId": FIRST_PARTY_ID, "partner": "inference", "route": "POST /v1/infer",
            "rows": 1, "model": None, "modelVersion": None, "decision": "refused",
            "reason": "no model loaded"}}
        send_message(stream, {"type": "ping", "version": 99})
        assert "protocol version 99" in str(read_message(stream))
        stream.write(b"\xff\xff\xff\xff")  # a length far beyond the limit: the enclave hangs up
        assert read_message(stream) is None
    with pytest.raises(ProtocolError, match="expected vsock"):
        Address.parse("http://enclave")


def test_parent_http_endpoint(enclave: Address, sealed: tuple[Path, bytes],
                              trained_model: TrainedModel) -> None:
    client = EnclaveClient(enclave)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(client))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def call(path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        try:
            request = urllib.request.Request(base + path, data=data, headers=ISSUER.headers())
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        assert call("/health")[0] == 503  # no model yet: the load balancer keeps traffic away
        client.load(sealed[0], key_arns=[], context=CONTEXT, credentials={})
        assert call("/health") == (200, {"status": "ready"})
        status, body = call("/predict", {"inputs": trained_model.test_inputs[:3].tolist()})
        assert status == 200 and len(body["labels"]) == 3
        assert call("/predict", {"inputs": [[1] * 5]})[0] == 400
        assert call("/predict", {"rows": []})[0] == 400
        # Nested too deeply to parse, or deeper than rows of numbers: refused by the parent.
        assert call("/predict", b'{"inputs": ' + b"[" * 100_000)[0] == 400
        assert call("/predict", {"inputs": [[[1] * 64]]})[0] == 400
        assert call("/nothing")[0] == 404
    finally:
        server.shutdown()


def test_unreachable_enclave_is_a_503(tmp_path: Path) -> None:
    client = EnclaveClient(Address.parse(f"unix:{tmp_path / 'absent.sock'}"), timeout=1)
    with pytest.raises(EnclaveError, match="unreachable"):
        client.ping()


def test_the_plaintext_buffer_never_grows_and_is_wiped() -> None:
    from enclave_images.enclave.app import _Memory
    memory = _Memory(8)
    memory.write(b"weights!")
    assert bytes(memory.view) == b"weights!"
    with pytest.raises(ValueError, match="refusing to grow"):
        memory.write(b"x")
    buffer = memory._buffer
    memory.wipe()
    assert buffer == bytearray(8) and bytes(memory.view) == b""


def test_an_unexpected_failure_refuses_the_load_and_keeps_the_stream_in_step(sealed: tuple[Path, bytes],
                                                                             tmp_path: Path) -> None:
    def broken(config: EnclaveConfig, credentials: dict[str, str]) -> StaticUnwrapper:
        raise RuntimeError("no attestation device")

    config = EnclaveConfig(region="eu-west-1", key_arns=("arn:aws:kms:eu-west-1:1:key/k",),
                           context={"model": "digits"})
    address = Address.parse(f"unix:{tmp_path / 'broken.sock'}")
    listener = address.listen()
    threading.Thread(target=EnclaveApp(config, broken, VERIFIER).serve, args=(listener,), daemon=True).start()
    client = EnclaveClient(address)
    with pytest.raises(EnclaveError, match="weights refused: RuntimeError while loading"):
        client.load(sealed[0], key_arns=[], context=CONTEXT, credentials={})
    assert client.ping() == {"type": "pong", "loaded": False}
    listener.close()


def test_weights_cross_a_socket_whose_writes_are_partial(enclave: Address, sealed: tuple[Path, bytes],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With a small send buffer each write() of a raw socket stream with a timeout sends only part of
    a weights chunk; the parent must send the rest, or both sides wait for each other."""
    connect = Address.connect

    def small_send_buffer(address: Address, timeout: float | None = 30.0) -> socket.socket:
        sock = connect(address, timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return sock

    monkeypatch.setattr(Address, "connect", small_send_buffer)
    assert sealed[0].stat().st_size > 4 * 4096  # several times the buffer (the kernel doubles it)
    client = EnclaveClient(enclave, timeout=10)
    assert client.load(sealed[0], key_arns=[], context=CONTEXT, credentials={})["classes"] == 10
    assert client.ping() == {"type": "pong", "loaded": True}


def test_a_deeply_nested_message_closes_the_connection_without_a_traceback() -> None:
    app = EnclaveApp(CONFIG, lambda config, credentials: StaticUnwrapper(bytes(32)), VERIFIER)
    parent, enclave_side = socket.socketpair()
    body = b"[" * 100_000

    def send() -> None:
        parent.sendall(struct.pack(">I", len(body)) + body)
        parent.shutdown(socket.SHUT_WR)

    writer = threading.Thread(target=send)
    writer.start()
    app._connection(enclave_side)  # the connection thread's body: must return, not raise
    writer.join(timeout=10)
    with parent:
        assert parent.recv(1) == b""  # the enclave hung up


def test_a_number_beyond_float_is_bad_input_and_the_connection_stays_usable(
        enclave: Address, sealed: tuple[Path, bytes]) -> None:
    client = EnclaveClient(enclave)
    client.load(sealed[0], key_arns=[], context=CONTEXT, credentials={})
    with pytest.raises(EnclaveError, match="inputs must be numbers"):
        client.predict([[10 ** 400] * 64], ISSUER.headers())  # valid JSON, too large for a float
    assert client.ping() == {"type": "pong", "loaded": True}


def test_a_prediction_that_fails_unexpectedly_is_refused_and_the_connection_stays_usable(
        enclave: Address, sealed: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    client = EnclaveClient(enclave)
    client.load(sealed[0], key_arns=[], context=CONTEXT, credentials={})

    def broken(self: object, inputs: object) -> list[int]:
        raise ArithmeticError("a bug")

    monkeypatch.setattr(DigitsModel, "predict", broken)
    with pytest.raises(EnclaveError, match="prediction refused: ArithmeticError"):
        client.predict([[0] * 64], ISSUER.headers())
    assert client.ping() == {"type": "pong", "loaded": True}
