"""The parent-side agent (a systemd unit on the inference instances, baked by the AMI pipeline).

    python -m enclave_images.parent.agent --bucket B --key models/digits.enc --key-arn ARN \
        --context model=digits --context version=7 [--enclave vsock:16:5005] [--listen 0.0.0.0:8080] \
        [--tls] [--events-log-group /zero-trust-ai/<env>/inference-events]

It fetches the *encrypted* weights from S3, streams them to the enclave with the instance role's
short-lived credentials (used by the enclave for one attested KMS Decrypt), forwards inference
requests from the load balancer to the enclave, and answers health checks. It never holds a data
key or plaintext weights: its role's key-policy grant works only with the enclave's attestation.

It decides nothing about callers: it passes the caller's Authorization header and the headers the
API gateway's integration writes (the client certificate's issuer, subject and serial, the route)
to the enclave, which verifies them (enclave/auth.py) and answers 401/403 for a request that did
not pass the gateway's checks. A parent that relays anything else gets the same refusal.

Every inference request it answers, served or refused, leaves one inference event
(ztai_runtime/inference_events.py, docs/inference-events.md): the gateway's request id
(`x-ztai-request-id`), the enclave's account of its decision (the `audit` object of its answer:
the client it verified, the model and version it ran), sizes, latency and status; never the
body, the token or the certificate. The line goes to the journal and, with `--events-log-group`,
to that CloudWatch Logs group (event_sink.py). It is written before the answer is sent.

With `--tls` (the fleet's default: its load balancer's target group is TLS) it serves HTTPS with
an RSA key and self-signed certificate `openssl` makes at start (written only to a private
temporary directory while the TLS context loads them, then removed): the load balancer
re-encrypts to the instance and does not validate target certificates, so there is no
certificate to distribute; what the key protects is the hop on the VPC's network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from enclave_images.parent.event_sink import CloudWatchEventSink, InferenceEvents, stream_name
from enclave_images.protocol import (
    MAX_TCP_PORT,
    PROTOCOL_VERSION,
    Address,
    ProtocolError,
    read_message,
    send_message,
    write_all,
)
from ztai_runtime.inference_events import inference_event, input_summary
from ztai_runtime.jsonlog import get_logger, log_decision

# Below the protocol's message limit, so a request that passes here fits one predict message.
MAX_REQUEST_BYTES = 2 * 1024 * 1024
# What the enclave verifies (enclave/auth.py), lower case; the gateway writes all but the first.
FORWARDED_HEADERS = ("authorization", "x-ztai-route", "x-ztai-client-cert-issuer",
                     "x-ztai-client-cert-subject", "x-ztai-client-cert-serial")
MAX_HEADER_BYTES = 16 * 1024
ROUTE_HEADER = "x-ztai-route"
# The API gateway's own id of the request ($context.requestId, components/api_gateway.py), the
# `requestId` of its access log: the two records of one request join on it. Never forwarded.
REQUEST_ID_HEADER = "x-ztai-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9=+/_.:-]{1,128}")
# CloudWatch Logs' log group names: 1-512 of these characters.
_LOG_GROUP_NAME = re.compile(r"[A-Za-z0-9._/#-]{1,512}")
_log = get_logger("ztai.parent")
# Where each request's inference event goes (ztai_runtime/inference_events.py).
Emit = Callable[[dict[str, Any]], None]


class EnclaveError(Exception):
    """The enclave refused or did not answer. `status`: 401/403 when it refused the caller;
    `audit`: the enclave's account of its refusal (None when it did not answer)."""

    def __init__(self, message: str, status: int | None = None,
                 audit: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.audit = audit


class EnclaveClient:
    """One connection to the enclave application, used by one request at a time."""

    def __init__(self, address: Address, timeout: float = 60.0) -> None:
        self._address, self._timeout = address, timeout
        self._lock = threading.Lock()
        self._stream: Any = None

    def _call(self, message: dict[str, Any], payload: Path | None = None) -> dict[str, Any]:
        with self._lock:
            try:
                if self._stream is None:
                    self._stream = self._address.connect(self._timeout).makefile("rwb", buffering=0)
                send_message(self._stream, message)
                if payload is not None:
                    with open(payload, "rb") as source:
                        while chunk := source.read(1 << 20):
                            write_all(self._stream, chunk)
                answer = read_message(self._stream)
            except (OSError, ProtocolError) as error:
                self._stream = None
                raise EnclaveError(f"enclave at {self._address.family}:{self._address.host}:"
                                   f"{self._address.port} unreachable: {error}") from None
        if answer is None:
            self._stream = None
            raise EnclaveError("the enclave closed the connection")
        if answer["type"] == "error":
            status = answer.get("status")
            audit = answer.get("audit")
            raise EnclaveError(str(answer.get("error")), status if status in (401, 403) else None,
                               audit if isinstance(audit, dict) else None)
        return answer

    def ping(self) -> dict[str, Any]:
        return self._call({"type": "ping", "version": PROTOCOL_VERSION})

    def load(self, weights: Path, *, key_arns: Sequence[str], context: Mapping[str, str],
             credentials: Mapping[str, str]) -> dict[str, Any]:
        return self._call({"type": "load", "version": PROTOCOL_VERSION, "size": weights.stat().st_size,
                           "key_arns": list(key_arns), "context": dict(context),
                           "credentials": dict(credentials)}, payload=weights)

    def predict(self, inputs: Any, auth: Mapping[str, str]) -> list[int]:
        """`auth`: the caller's headers the enclave verifies (FORWARDED_HEADERS)."""
        return self.infer(inputs, auth)[0]

    def infer(self, inputs: Any, auth: Mapping[str, str]) -> tuple[list[int], dict[str, Any]]:
        """The labels and the enclave's audit of the request (empty if it sent none)."""
        answer = self._call({"type": "predict", "version": PROTOCOL_VERSION, "inputs": inputs,
                             "auth": dict(auth)})
        labels: list[int] = answer["labels"]
        audit = answer.get("audit")
        return labels, audit if isinstance(audit, dict) else {}


def fetch_weights(s3: Any, bucket: str, key: str, directory: Path) -> Path:
    """Download the encrypted weights (ciphertext only ever touches the parent's disk)."""
    descriptor, name = tempfile.mkstemp(prefix="weights-", suffix=".enc", dir=directory)
    with os.fdopen(descriptor, "wb") as sink:
        s3.download_fileobj(bucket, key, sink)
    log_decision(_log, "weights-fetched", bucket=bucket, key=key, bytes=os.path.getsize(name))
    return Path(name)


def instance_credentials() -> dict[str, str]:  # pragma: no cover - needs an instance role
    """The instance role's current temporary credentials (IMDSv2), for the enclave's one KMS call."""
    import boto3
    frozen = boto3.Session().get_credentials().get_frozen_credentials()
    return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key,
            "session_token": frozen.token or ""}


def _is_rows(inputs: Any) -> bool:
    """A list of flat rows. Only that shape is forwarded (the enclave checks the numbers), so no
    structure nested deeper than the protocol can encode reaches the enclave channel."""
    return isinstance(inputs, list) and all(
        isinstance(row, list) and not any(isinstance(cell, list | dict) for cell in row) for row in inputs)


def make_handler(enclave: EnclaveClient, health: EnclaveClient | None = None, *,
                 events: Emit | None = None,
                 model_context: Mapping[str, str] | None = None) -> type[BaseHTTPRequestHandler]:
    """`health`: a second connection for /health, so checks never queue behind predictions.
    `events`: where each request's inference event goes (default: the journal only).
    `model_context`: the encryption context the agent asked the enclave to load under (its
    `model` and `version` name the model of an event the enclave did not answer)."""
    health_client = health or enclave
    emit: Emit = events or InferenceEvents(_log)
    configured = dict(model_context or {})

    class Handler(BaseHTTPRequestHandler):
        server_version = "ztai-parent"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one JSON line per request is written below instead

        def _reply(self, status: int, body: dict[str, Any], *, started: float | None = None,
                   **facts: Any) -> None:
            """Send the reply; with `started`, the request's event is written first, so no caller
            has an answer whose event is not on its way."""
            data = json.dumps(body).encode("utf-8")
            if started is not None:
                self._record(started, status, len(data), **facts)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/health":
                self._reply(404, {"error": "not found"}, started=time.monotonic(), reason="not found")
                return
            # Health checks are the load balancer's, not inference requests: no event.
            try:
                loaded = bool(health_client.ping().get("loaded"))
            except EnclaveError as error:
                self._reply(503, {"status": "enclave unreachable", "error": str(error)})
                return
            self._reply(200 if loaded else 503, {"status": "ready" if loaded else "no model loaded"})

        def do_POST(self) -> None:
            started = time.monotonic()
            status, body, facts = self._predict()
            self._reply(status, body, started=started, **facts)

        def _predict(self) -> tuple[int, dict[str, Any], dict[str, Any]]:
            """The reply's status and body, and what the event says of the request."""
            if self.path != "/predict":
                return 404, {"error": "not found"}, {"reason": "not found"}
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_REQUEST_BYTES:
                text = f"body must be 1..{MAX_REQUEST_BYTES} bytes"
                return 413 if length else 411, {"error": text}, {"reason": text}
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
                body = None
            inputs = body.get("inputs") if isinstance(body, dict) else None
            if not isinstance(inputs, list) or not _is_rows(inputs):
                text = 'expected {"inputs": [[64 numbers], ...]}'
                return 400, {"error": text}, {"reason": text, "request_bytes": len(raw)}
            auth = {name: value for name in FORWARDED_HEADERS
                    if (value := self.headers.get(name)) is not None and len(value) <= MAX_HEADER_BYTES}
            facts: dict[str, Any] = {"request_bytes": len(raw), "rows": len(inputs)}
            try:
                labels, audit = enclave.infer(inputs, auth)
            except EnclaveError as error:
                status = error.status or (400 if "must" in str(error) else 502)
                return status, {"error": str(error)}, {**facts, "reason": str(error),
                                                       "audit": error.audit}
            return 200, {"labels": labels}, {**facts, "audit": audit}

        def _record(self, started: float, status: int, response_bytes: int, *,
                    reason: str | None = None, rows: int = 0, request_bytes: int = 0,
                    audit: dict[str, Any] | None = None) -> None:
            """The request's one inference event. With the enclave's audit (it answered), the
            caller, model and decision are the enclave's; otherwise the agent's own."""
            said = audit or {}
            claimed_route = _text(self.headers.get(ROUTE_HEADER))
            route = (_text(said.get("route")) or claimed_route
                     or f"{self.command} {self.path.split('?', 1)[0]}")
            counted = said.get("rows")
            reason = (_text(said.get("reason")) or reason) if status != 200 else None
            # The enclave's input summary of a request it served, relayed as it came (dropped when
            # malformed: a relay never fails the request).
            summary = input_summary(said) if audit and status == 200 else {}
            emit(inference_event(
                source="enclave" if audit else "parent", request_id=_request_id(self.headers),
                client_id=_text(said.get("clientId")), partner=_text(said.get("partner")),
                route=route,
                rows=counted if isinstance(counted, int) and not isinstance(counted, bool)
                and counted >= 0 else rows,
                request_bytes=request_bytes, response_bytes=response_bytes,
                latency_ms=(time.monotonic() - started) * 1000,
                model=_text(said.get("model")) if audit else configured.get("model"),
                model_version=_text(said.get("modelVersion")) if audit else configured.get("version"),
                decision="served" if status == 200 else "refused",
                reason=_scrub(reason, [value for name in FORWARDED_HEADERS if name != ROUTE_HEADER
                                       and (value := self.headers.get(name))]),
                status=status, input_cells=summary.get("inputCells"),
                input_cell_count=summary.get("inputCellCount")))

    return Handler


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _request_id(headers: Any) -> str:
    """The gateway's request id (its access log's `requestId`), or one made here, marked
    `agent-`, for a request that carries none or a malformed one (it did not come through the
    gateway's integration, which always writes it)."""
    given = headers.get(REQUEST_ID_HEADER)
    if isinstance(given, str) and _REQUEST_ID.fullmatch(given):
        return given
    return f"agent-{uuid.uuid4()}"


def _scrub(reason: str | None, credentials: Sequence[str]) -> str | None:
    """`reason` without the caller's Authorization value, its token (or any of the token's three
    parts) or its certificate headers, should a refusal message quote them (the enclave's "must
    present a certificate from its own CA, not ..." quotes the issuer): an event never carries a
    credential or a certificate."""
    if reason is None:
        return reason
    secrets = {part for value in credentials
               for part in (value.strip(), value.strip().partition(" ")[2].strip())}
    # And each part of a JWT (header, claims, signature): a message may quote one alone. Only for a
    # value shaped like one, so a certificate's dotted names do not blank out ordinary words.
    secrets |= {segment for value in list(secrets) if value.count(".") == 2 and " " not in value
                for segment in value.split(".") if len(segment) >= 8}
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        reason = reason.replace(secret, "[redacted]")
    return reason


def self_signed_context(host_name: str = "ztai-parent-agent", openssl: str = "openssl") -> ssl.SSLContext:
    """A TLS 1.2+ server context with a fresh RSA key and a self-signed certificate, made by the
    instance's `openssl` (the agent's package carries no cryptography library). The files
    `load_cert_chain` needs live in a private directory only while it reads them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="ztai-agent-tls-") as directory:  # mode 0700
        key_path, certificate_path = Path(directory, "key.pem"), Path(directory, "cert.pem")
        try:
            subprocess.run(
                [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "397",
                 "-subj", f"/CN={host_name}", "-addext", f"subjectAltName=DNS:{host_name}",
                 "-keyout", str(key_path), "-out", str(certificate_path)],
                check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as error:
            raise SystemExit(f"--tls: could not make the agent's TLS key with {openssl} ({error})") from None
        context.load_cert_chain(certificate_path, key_path)
    return context


class AgentServer(ThreadingHTTPServer):
    """The agent's HTTP server; with a TLS context, each connection's handshake runs in that
    connection's own thread (a slow or broken client never holds up the accept loop)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(address, handler)
        self._tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self._tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(30)
        try:
            connection = self._tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log_decision(_log, "tls-handshake-failed", reason=str(error))
            return
        with connection:
            super().finish_request(connection, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # One JSON line instead of socketserver's traceback on stderr.
        error = sys.exc_info()[1]
        log_decision(_log, "connection-failed", client=str(client_address),
                     kind=type(error).__name__, reason=str(error))


def _context_pair(text: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. model=digits")
    return key, value


def _enclave_address(text: str) -> Address:
    try:
        return Address.parse(text)
    except ProtocolError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _listen_address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    try:
        number = int(port) if separator else 0
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_TCP_PORT:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT with a port 1..{MAX_TCP_PORT}")
    return host, number


def _log_group_name(text: str) -> str:
    if not _LOG_GROUP_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: a CloudWatch Logs group name, 1-512 letters, "
                                         "digits and ._/#-")
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, checked: a bad value exits with status 2 and names the option."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True, help="S3 key of the encrypted weights")
    parser.add_argument("--key-arn", action="append", required=True, help="KMS key ARN that may unwrap")
    parser.add_argument("--context", action="append", default=[], type=_context_pair, metavar="K=V",
                        help="encryption context pair the weights must carry; repeatable")
    parser.add_argument("--enclave", default="vsock:16:5005", type=_enclave_address,
                        help="the enclave application (default: vsock:16:5005)")
    parser.add_argument("--listen", default="0.0.0.0:8080", type=_listen_address, metavar="HOST:PORT",
                        help="where the load balancer reaches the agent (default: 0.0.0.0:8080)")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a key made at start (the load balancer's TLS target group)")
    parser.add_argument("--events-log-group", type=_log_group_name, metavar="NAME",
                        help="CloudWatch Logs group for the inference events (default: the journal only)")
    args = parser.parse_args(argv)
    context: dict[str, str] = {}
    for key, value in args.context:
        if key in context:
            parser.error(f"argument --context: {key!r} given twice")
        context[key] = value
    args.context = context
    return args


def main() -> None:  # pragma: no cover - runs on the instance
    import boto3

    args = parse_args()
    session = boto3.Session()
    if not session.region_name:
        raise SystemExit("no AWS region configured (AWS_REGION or the instance's metadata)")
    sink = None
    if args.events_log_group:
        sink = CloudWatchEventSink(session.client("logs"), args.events_log_group, stream_name(),
                                   logger=_log)
        sink.start()
    # systemd stops the unit with SIGTERM: end through SystemExit so the events waiting are sent.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        weights = fetch_weights(session.client("s3"), args.bucket, args.key, Path(tempfile.gettempdir()))
        enclave = EnclaveClient(args.enclave)
        enclave.load(weights, key_arns=args.key_arn, context=args.context,
                     credentials=instance_credentials())
        handler = make_handler(enclave, EnclaveClient(args.enclave, timeout=5.0),
                               events=InferenceEvents(_log, sink), model_context=args.context)
        AgentServer(args.listen, handler, self_signed_context() if args.tls else None).serve_forever()
    finally:
        if sink is not None:
            sink.close()


if __name__ == "__main__":
    main()
