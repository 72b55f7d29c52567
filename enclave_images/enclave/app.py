"""The enclave application: receives encrypted weights from the parent, decrypts them with a data
key that KMS releases only to this attested enclave, and serves predictions.

    python -m enclave_images.enclave.app [--listen vsock:-1:5005]

What the parent can see: the encrypted weights it streams in, the prediction requests and labels.
What it cannot: the data key (KMS wraps it to this enclave's RSA key inside CiphertextForRecipient)
and the plaintext weights (decrypted into enclave memory only and verified to the last frame
before they are used). The buffer holding the decrypted file is wiped after loading or on any
refusal; other transient copies (the parsed arrays' temporaries, the data key) are left to the
enclave's memory, which the parent cannot read.

Which weights the enclave accepts is decided by the image, not by the parent: the key ARNs, the
region and the encryption context pairs are read from `/app/enclave-config.json`, baked at build
time (`build.sh`), so they are covered by the enclave's measurements (PCR2). The parent supplies
only the ciphertext and short-lived credentials; a load naming another key, region or model is
refused. Attestation proves the code; this is what ties the code to the weights.

Whom the enclave serves is decided the same way: every prediction carries the caller's token and
the gateway's client-certificate headers, and `enclave_images/enclave/auth.py` verifies them
against `/app/enclave-trust.json` (the issuer's keys, the clients and their CAs, the routes'
scopes), also baked into the image. A request relayed around the gateway (a second API on the VPC
link, or root on the parent writing to vsock) without a valid, bound token gets nothing.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from enclave_images.enclave.auth import ROUTE_HEADER, AuthError, RequestVerifier, TrustConfig
from enclave_images.enclave.input_cells import InputCells
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
CONFIG_PATH = "/app/enclave-config.json"


@dataclass(frozen=True)
class EnclaveConfig:
    """What this image accepts, fixed at build time (covered by PCR2)."""

    region: str
    key_arns: tuple[str, ...]
    context: dict[str, str]  # pairs every accepted weights file must carry (e.g. model=digits)

    @classmethod
    def load(cls, path: str = CONFIG_PATH) -> EnclaveConfig:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
        config = cls(region=str(raw["region"]), key_arns=tuple(str(arn) for arn in raw["key_arns"]),
                     context={str(k): str(v) for k, v in raw["context"].items()})
        if not config.key_arns or not config.context:
            raise ValueError(f"{path}: key_arns and context must not be empty")
        return config

_log = get_logger("ztai.enclave")

# Builds the unwrapper for one load: (the enclave's configuration, the parent's credentials) -> a
# KMS client for the configured region with the enclave's attestation source. Injected so tests
# can supply a KMS stand-in.
UnwrapperFactory = Callable[[EnclaveConfig, dict[str, str]], DataKeyUnwrapper]


class _Memory:
    """An in-memory sink of fixed capacity whose bytes can be wiped.

    Its capacity is the ciphertext's length (the plaintext is shorter), so it never reallocates:
    a growing buffer would leave copies of plaintext in freed memory. It is allocated on the first
    write, i.e. only once the data key was released and the header verified.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._buffer = bytearray()
        self.length = 0

    @property
    def view(self) -> memoryview:
        return memoryview(self._buffer)[:self.length]

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if not self._buffer:
            self._buffer = bytearray(self._capacity)
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
    def __init__(self, config: EnclaveConfig, unwrapper_factory: UnwrapperFactory,
                 verifier: RequestVerifier) -> None:
        self._config = config
        self._verifier = verifier
        self._unwrapper_factory = unwrapper_factory
        self._model: DigitsModel | None = None
        # The loaded model's input cells: each served request's audit summarises its inputs with
        # them (enclave_images/enclave/input_cells.py), for the model-extraction detector.
        self._cells: InputCells | None = None
        # The encryption context of the loaded weights, as their decryption verified it: the
        # model and version each prediction's audit names.
        self._model_context: dict[str, str] = {}
        self._lock = threading.Lock()
        # One load at a time: each holds up to MAX_WEIGHTS_BYTES of enclave memory.
        self._loading = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def serve(self, listener: socket.socket) -> None:
        """Serve until the listener is closed."""
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the enclave (or a test) is shutting down
            threading.Thread(target=self._connection, args=(connection,), daemon=True).start()

    def _connection(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rwb", buffering=0) as stream:
            try:
                while (message := read_message(stream)) is not None:
                    send_message(stream, self.handle(message, stream))
            except (ProtocolError, OSError) as error:
                log_decision(_log, "connection-closed", reason=str(error))

    def handle(self, message: dict[str, Any], stream: Any) -> dict[str, Any]:
        if message["type"] == "load":
            return self._load(message, stream)  # checks the version after learning the size
        if message.get("version") != PROTOCOL_VERSION:
            return _error(f"protocol version {message.get('version')!r}; "
                          f"this enclave speaks {PROTOCOL_VERSION}")
        kind = message["type"]
        if kind == "ping":
            return {"type": "pong", "loaded": self.loaded}
        if kind == "predict":
            return self._predict(message)
        return _error(f"unknown message type {kind!r}")

    def _predict(self, message: dict[str, Any]) -> dict[str, Any]:
        """A prediction, or a refusal; either way with the `audit` object the parent writes into
        the request's inference event (the enclave has no network and no log of its own)."""
        inputs = message.get("inputs")
        auth = message.get("auth")
        headers = ({str(k).lower(): str(v) for k, v in auth.items()} if isinstance(auth, dict) else {})
        with self._lock:
            model, context, cells = self._model, self._model_context, self._cells
        audit: dict[str, Any] = {
            "clientId": None, "partner": None, "route": headers.get(ROUTE_HEADER),
            "rows": len(inputs) if isinstance(inputs, list) else 0,
            "model": context.get("model"), "modelVersion": context.get("version"),
            "decision": "refused", "reason": None}
        # Who asks is checked before anything else, the model's state included.
        try:
            caller = self._verifier.verify(headers)
        except AuthError as error:
            log_decision(_log, "predict-unauthorised", status=error.status, reason=str(error),
                         route=headers.get(ROUTE_HEADER))
            return {**_error(f"refused: {error}"), "status": error.status,
                    "audit": {**audit, "reason": f"refused: {error}"}}
        log_decision(_log, "predict-authorised", client=caller.client_name,
                     client_id=caller.client_id, route=caller.route, scope=caller.scope,
                     token_id=caller.token_id, cert_subject=caller.cert_subject,
                     cert_serial=caller.cert_serial)
        audit.update(clientId=caller.client_id, partner=caller.client_name, route=caller.route)
        if model is None:
            return {**_error("no model loaded"), "audit": {**audit, "reason": "no model loaded"}}
        try:
            labels = model.predict(inputs)  # type: ignore[arg-type]
        except ModelError as error:
            return {**_error(str(error)), "audit": {**audit, "reason": str(error)}}
        except Exception as error:  # noqa: BLE001 - refuse this request, keep serving the connection
            log_decision(_log, "predict-refused", reason=str(error), kind=type(error).__name__)
            text = f"prediction refused: {type(error).__name__} (see the enclave log)"
            return {**_error(text), "audit": {**audit, "reason": text}}
        summary = cells.summary(inputs) if cells is not None else {}
        return {"type": "prediction", "labels": labels,
                "audit": {**audit, "rows": len(labels), "decision": "served", **summary}}

    def _load(self, message: dict[str, Any], stream: Any) -> dict[str, Any]:
        size = message.get("size")
        if not isinstance(size, int) or not 0 < size <= MAX_WEIGHTS_BYTES:
            # The byte count is unknown, so the stream cannot be resynchronised: end it.
            raise ProtocolError(f"load size {size!r} outside 1..{MAX_WEIGHTS_BYTES}")
        weights = LimitedReader(stream, size)
        if not self._loading.acquire(blocking=False):
            weights.drain()
            return _error("another load is in progress")
        memory = _Memory(size)
        try:
            refusal = self._check_load(message)
            if refusal:
                weights.drain()
                log_decision(_log, "load-refused", reason=refusal)
                return _error(f"weights refused: {refusal}")
            credentials = message.get("credentials")
            unwrapper = self._unwrapper_factory(
                self._config, credentials if isinstance(credentials, dict) else {})
            # The configured pairs must be in the file; the parent may ask for more (a version).
            expected = {**{str(k): str(v) for k, v in (message.get("context") or {}).items()},
                        **self._config.context}
            info = decrypt_stream(weights, memory, unwrapper, expected_context=expected)  # type: ignore[arg-type]
            model = DigitsModel.from_bytes(memory.view)
            cells = InputCells.for_weights(model.w1)
        except Exception as error:  # noqa: BLE001 - any failure refuses the load, keeps the stream in step
            weights.drain()
            log_decision(_log, "load-refused", reason=str(error), kind=type(error).__name__)
            known = isinstance(error, WeightsFormatError | UnwrapError | ModelError)
            return _error(f"weights refused: {error}" if known else
                          f"weights refused: {type(error).__name__} while loading (see the enclave log)")
        finally:
            memory.wipe()  # the decrypted file bytes; the model keeps its own arrays
            self._loading.release()
        with self._lock:
            replaced = self._model is not None
            self._model, self._cells = model, cells
            self._model_context = {str(k): str(v) for k, v in info.encryption_context.items()}
        log_decision(_log, "model-loaded", message_id=info.message_id, context=info.encryption_context,
                     bytes=info.plaintext_length, classes=model.classes, replaced=replaced)
        return {"type": "loaded", "classes": model.classes, "features": int(model.w1.shape[0])}

    def _check_load(self, message: dict[str, Any]) -> str | None:
        if message.get("version") != PROTOCOL_VERSION:
            return (f"protocol version {message.get('version')!r}; "
                    f"this enclave speaks {PROTOCOL_VERSION}")
        asked = message.get("key_arns")
        accepted = list(self._config.key_arns)
        if asked is not None and (not isinstance(asked, list) or not set(asked) <= set(accepted)):
            return f"key ARNs {asked!r} are not among those this image accepts {accepted}"
        context = message.get("context") or {}
        if not isinstance(context, dict):
            return "context must be an object"
        for key, value in self._config.context.items():
            if key in context and context[key] != value:
                return f"context {key}={context[key]!r}: this image serves {key}={value!r} only"
        return None


def _error(text: str) -> dict[str, Any]:
    return {"type": "error", "error": text}


def production_unwrapper(  # pragma: no cover - needs an enclave
        config: EnclaveConfig, credentials: dict[str, str]) -> DataKeyUnwrapper:
    """KMS through the parent's vsock-proxy, TLS end to end, with attestation from /dev/nsm."""
    import boto3

    from ztai_runtime.attestation.nsm import NsmAttestationSource
    from ztai_runtime.attestation.recipient import AttestedKmsUnwrapper

    kms = boto3.client(
        "kms", region_name=config.region, aws_access_key_id=credentials.get("access_key_id"),
        aws_secret_access_key=credentials.get("secret_access_key"),
        aws_session_token=credentials.get("session_token"))
    return AttestedKmsUnwrapper(kms, NsmAttestationSource(), key_arns=list(config.key_arns))


def main() -> None:  # pragma: no cover - the enclave's entry point
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default=f"vsock:{socket.VMADDR_CID_ANY}:{ENCLAVE_PORT}")
    args = parser.parse_args()
    app = EnclaveApp(EnclaveConfig.load(), production_unwrapper, RequestVerifier(TrustConfig.load()))
    app.serve(Address.parse(args.listen).listen())


if __name__ == "__main__":
    main()
