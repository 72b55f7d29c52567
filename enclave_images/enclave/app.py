"""The enclave application: receives encrypted weights from the parent, decrypts them with a data
key that KMS releases only to this attested enclave, and serves predictions.

    python -m enclave_images.enclave.app [--listen vsock:-1:5005]

What the parent can see: the encrypted weights it streams in, the prediction requests and labels.
What it cannot: the data key (KMS wraps it to this enclave's RSA key inside CiphertextForRecipient)
and the plaintext weights (decrypted into enclave memory only, verified to the last frame before
they are used, and wiped if anything fails).
"""

from __future__ import annotations

import argparse
import ctypes
import socket
import threading
from collections.abc import Callable
from typing import Any

from enclave_images.enclave.model import DigitsModel, ModelError
from enclave_images.protocol import (
    ENCLAVE_PORT,
    PROTOCOL_VERSION,
    Address,
    LimitedReader,
    ProtocolError,
    read_message,
    send_message,
)
from ztai_runtime.jsonlog import get_logger, log_decision
from ztai_runtime.weights import DataKeyUnwrapper, UnwrapError, WeightsFormatError
from ztai_runtime.weights.stream import decrypt_stream

# Weights larger than this are refused before a byte is decrypted: enclave memory is fixed at launch.
MAX_WEIGHTS_BYTES = 1 << 30

_log = get_logger("ztai.enclave")

# Builds the unwrapper for one load message (KMS client with the parent-supplied credentials and
# the enclave's attestation source). Injected so tests can supply a KMS stand-in.
UnwrapperFactory = Callable[[dict[str, Any]], DataKeyUnwrapper]


class _Memory:
    """An in-memory sink of fixed capacity whose bytes can be wiped.

    Sized once from the ciphertext's length (the plaintext is shorter), so it never reallocates:
    a growing buffer would leave copies of plaintext in freed memory that nothing wipes.
    """

    def __init__(self, capacity: int) -> None:
        self._buffer = bytearray(capacity)
        self.length = 0

    @property
    def view(self) -> memoryview:
        return memoryview(self._buffer)[:self.length]

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        count = len(data)
        if self.length + count > len(self._buffer):
            raise ValueError("plaintext longer than its ciphertext: refusing to grow the buffer")
        self._buffer[self.length:self.length + count] = data
        self.length += count
        return count

    def flush(self) -> None:
        pass

    def wipe(self) -> None:
        if self._buffer:
            ctypes.memset((ctypes.c_char * len(self._buffer)).from_buffer(self._buffer), 0, len(self._buffer))
        self.length = 0


class EnclaveApp:
    def __init__(self, unwrapper_factory: UnwrapperFactory) -> None:
        self._unwrapper_factory = unwrapper_factory
        self._model: DigitsModel | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def serve(self, listener: socket.socket) -> None:
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=self._connection, args=(connection,), daemon=True).start()

    def _connection(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rwb", buffering=0) as stream:
            try:
                while (message := read_message(stream)) is not None:
                    send_message(stream, self.handle(message, stream))
            except (ProtocolError, OSError) as error:
                log_decision(_log, "connection-closed", reason=str(error))

    def handle(self, message: dict[str, Any], stream: Any) -> dict[str, Any]:
        if message.get("version") != PROTOCOL_VERSION:
            return _error(f"protocol version {message.get('version')!r}; "
                          f"this enclave speaks {PROTOCOL_VERSION}")
        kind = message["type"]
        if kind == "ping":
            return {"type": "pong", "loaded": self.loaded}
        if kind == "load":
            return self._load(message, stream)
        if kind == "predict":
            model = self._model
            if model is None:
                return _error("no model loaded")
            try:
                return {"type": "prediction", "labels": model.predict(message.get("inputs"))}  # type: ignore[arg-type]
            except ModelError as error:
                return _error(str(error))
        return _error(f"unknown message type {kind!r}")

    def _load(self, message: dict[str, Any], stream: Any) -> dict[str, Any]:
        size = message.get("size")
        if not isinstance(size, int) or not 0 < size <= MAX_WEIGHTS_BYTES:
            # The byte count is unknown, so the stream cannot be resynchronised: end it.
            raise ProtocolError(f"load size {size!r} outside 1..{MAX_WEIGHTS_BYTES}")
        weights = LimitedReader(stream, size)
        context = message.get("context") or {}
        memory = _Memory(size)
        try:
            unwrapper = self._unwrapper_factory(message)
            info = decrypt_stream(weights, memory, unwrapper, expected_context=context)  # type: ignore[arg-type]
            model = DigitsModel.from_bytes(memory.view)
        except (WeightsFormatError, UnwrapError, ModelError, ValueError) as error:
            weights.drain()
            log_decision(_log, "load-refused", reason=str(error), kind=type(error).__name__)
            return _error(f"weights refused: {error}")
        finally:
            memory.wipe()  # the parsed arrays are copies; the decrypted file bytes go now
        with self._lock:
            self._model = model
        log_decision(_log, "model-loaded", message_id=info.message_id, context=info.encryption_context,
                     bytes=info.plaintext_length, classes=model.classes)
        return {"type": "loaded", "classes": model.classes, "features": int(model.w1.shape[0])}


def _error(text: str) -> dict[str, Any]:
    return {"type": "error", "error": text}


def production_unwrapper(message: dict[str, Any]) -> DataKeyUnwrapper:  # pragma: no cover - needs an enclave
    """KMS through the parent's vsock-proxy, TLS end to end, with attestation from /dev/nsm."""
    import boto3

    from ztai_runtime.attestation.nsm import NsmAttestationSource
    from ztai_runtime.attestation.recipient import AttestedKmsUnwrapper

    credentials = message.get("credentials") or {}
    kms = boto3.client(
        "kms", region_name=message["region"], aws_access_key_id=credentials.get("access_key_id"),
        aws_secret_access_key=credentials.get("secret_access_key"),
        aws_session_token=credentials.get("session_token"))
    return AttestedKmsUnwrapper(kms, NsmAttestationSource(), key_arns=message.get("key_arns") or [])


def main() -> None:  # pragma: no cover - the enclave's entry point
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default=f"vsock:{socket.VMADDR_CID_ANY}:{ENCLAVE_PORT}")
    args = parser.parse_args()
    EnclaveApp(production_unwrapper).serve(Address.parse(args.listen).listen())


if __name__ == "__main__":
    main()
