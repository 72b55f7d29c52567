"""Both ends of Amazon Data Firehose's HTTP endpoint delivery, on real sockets on 127.0.0.1.

The contract ("Understand HTTP endpoint delivery request and response specifications",
https://docs.aws.amazon.com/firehose/latest/dev/httpdeliveryrequestresponse.html, and
"Troubleshooting HTTP endpoints", https://docs.aws.amazon.com/firehose/latest/dev/http_troubleshooting.html):

- request: POST, headers X-Amz-Firehose-Protocol-Version "1.0", X-Amz-Firehose-Request-Id (an
  opaque id, the same across the retries of one batch), X-Amz-Firehose-Source-Arn,
  X-Amz-Firehose-Access-Key (the configured key verbatim, at most 4096 bytes), Content-Type
  application/json, Content-Encoding gzip only when compression is on; body
  `{"requestId", "timestamp" (ms), "records": [{"data": base64}]}`;
- response: `{"requestId" (the request's), "timestamp" (ms), "errorMessage"?}`, JSON, not
  compressed, at most 1 MiB. Only 200 is success (another 2xx is a failure); a response that does
  not follow the format counts as a failure; 413 is permanent: the batch is neither retried nor
  written to the error bucket; anything else is retried with back-off (from 1 s, doubling, with
  jitter, capped) until the configured retry duration is spent, then the batch's records go to
  the S3 error output.

Real Firehose sends HTTPS to port 443 only; these tests speak plain HTTP on a loopback port, which
changes the transport, not the contract.

`CollectorEndpoint` is what a SIEM collector does with it: it checks every header and the body,
compares the access key in constant time, answers 413 for a body over its limit, and stores each
batch once per request id (a retried batch is acknowledged again, not stored twice).
`FirehoseDelivery` is the Firehose side: it sends one batch and applies the retry rules above with
an injectable clock and sleep, so a test runs the back-off in no time.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import http.client
import json
import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

PROTOCOL_VERSION = "1.0"
MAX_ACCESS_KEY_BYTES = 4096
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_ERROR_MESSAGE_CHARS = 8192
# The request body is at most 64 MiB before compression (the buffer size bounds it); a collector
# chooses its own, smaller limit and answers 413 above it.
DEFAULT_COLLECTOR_LIMIT_BYTES = 1024 * 1024

# Back-off between attempts: from 1 s, doubling, +-15 % jitter, at most 2 minutes per wait.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 120.0
BACKOFF_JITTER = 0.15
ENDPOINT_TIMEOUT_SECONDS = 180.0

# The error code Firehose logs for a delivery the endpoint refused (troubleshooting page above); the
# simulator uses it in the error output, and its own name for a response that broke the format.
REFUSED = "HttpEndpoint.DestinationException"
INVALID_RESPONSE = "HttpEndpoint.InvalidResponseFromDestination"


@dataclass
class SeenRequest:
    """One request as the collector saw it, and what it answered."""

    request_id: str
    status: int
    headers: dict[str, str]


@dataclass
class CollectorEndpoint:
    """A SIEM collector implementing the endpoint side. `script` forces the next answers (a status,
    or "malformed" for a 200 whose body breaks the format) before normal handling resumes."""

    access_key: str
    max_body_bytes: int = DEFAULT_COLLECTOR_LIMIT_BYTES
    script: list[int | str] = field(default_factory=list)
    seen: list[SeenRequest] = field(default_factory=list)
    batches: dict[str, list[bytes]] = field(default_factory=dict)
    url: str = ""

    @property
    def records(self) -> list[bytes]:
        """Every record stored, batch after batch, each once."""
        return [item for batch in self.batches.values() for item in batch]

    def answer(self, headers: dict[str, str], body: bytes | None) -> tuple[int, dict[str, Any] | bytes]:
        """(status, response document or raw bytes) for one request; body None = not read (too big)."""
        request_id = headers.get("x-amz-firehose-request-id", "")

        def error(status: int, message: str) -> tuple[int, dict[str, Any]]:
            return status, {"requestId": request_id, "timestamp": _now_ms(),
                            "errorMessage": message[:MAX_ERROR_MESSAGE_CHARS]}

        if self.script:
            forced = self.script.pop(0)
            if forced == "malformed":
                return 200, b'{"status": "ok"}'
            return error(int(forced), "scripted failure")
        if not request_id:
            return error(400, "X-Amz-Firehose-Request-Id is missing")
        if headers.get("x-amz-firehose-protocol-version") != PROTOCOL_VERSION:
            return error(400, f"X-Amz-Firehose-Protocol-Version must be {PROTOCOL_VERSION}")
        key = headers.get("x-amz-firehose-access-key", "").encode()
        # Constant time: how long the comparison takes says nothing about how much of a guess matched.
        if len(key) > MAX_ACCESS_KEY_BYTES or not hmac.compare_digest(key, self.access_key.encode()):
            return error(401, "the access key is not the one configured")
        if body is None:
            return error(413, f"the body is over this collector's {self.max_body_bytes} bytes")
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error(400, "Content-Type must be application/json")
        encoding = headers.get("content-encoding")
        if encoding == "gzip":
            try:
                body = _bounded_gunzip(body, self.max_body_bytes)
            except OverflowError:
                return error(413, f"the body is over this collector's {self.max_body_bytes} bytes")
            except (OSError, EOFError, zlib.error):
                return error(400, "the body is not valid gzip")
        elif encoding is not None:
            return error(400, f"Content-Encoding {encoding!r} is not supported (gzip or none)")
        problem, records = _parse_request(body, request_id)
        if problem:
            return error(400, problem)
        # Deduplicate on the request id, which Firehose keeps across the retries of one batch.
        self.batches.setdefault(request_id, records)
        return 200, {"requestId": request_id, "timestamp": _now_ms()}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _bounded_gunzip(body: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes (a small gzip must not expand into a huge body)."""
    inflater = zlib.decompressobj(wbits=31)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise OverflowError
    if not inflater.eof:
        raise EOFError
    return out


def _parse_request(body: bytes, request_id: str) -> tuple[str, list[bytes]]:
    """(problem, decoded records): the problem is empty when the body follows the format."""
    try:
        document = json.loads(body)
    except ValueError:
        return "the body is not JSON", []
    if not isinstance(document, dict):
        return "the body is not a JSON object", []
    if document.get("requestId") != request_id:
        return "requestId differs from the X-Amz-Firehose-Request-Id header", []
    if not isinstance(document.get("timestamp"), int):
        return "timestamp must be an integer (milliseconds)", []
    records = document.get("records")
    if not isinstance(records, list) or not records:
        return "records must be a non-empty list", []
    decoded: list[bytes] = []
    for item in records:
        data = item.get("data") if isinstance(item, dict) else None
        if not isinstance(data, str):
            return "every record needs a data string", []
        try:
            decoded.append(base64.b64decode(data, validate=True))
        except ValueError:  # binascii.Error
            return "a record's data is not base64", []
    return "", decoded


def _handler_for(collector: CollectorEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            length = int(headers.get("content-length", "0") or 0)
            if length > collector.max_body_bytes:
                # Too big to keep: read it away in chunks (bounded memory) so the sender gets the
                # 413 rather than a reset connection, and do not store it.
                body = None
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 65536))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            else:
                body = self.rfile.read(length)
            status, document = collector.answer(headers, body)
            collector.seen.append(SeenRequest(headers.get("x-amz-firehose-request-id", ""), status, headers))
            raw = document if isinstance(document, bytes) else json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self.send_error(405, "POST only")

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet tests

    return Handler


@contextmanager
def running(collector: CollectorEndpoint) -> Iterator[CollectorEndpoint]:
    """Serve the collector on an ephemeral loopback port for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(collector))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    collector.url = f"http://127.0.0.1:{server.server_address[1]}/firehose"
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class FailedRecord:
    """One record of the S3 error output after retries ran out (the fields Firehose writes)."""

    attemptsMade: int  # noqa: N815 - Firehose's field names
    arrivalTimestamp: int  # noqa: N815
    errorCode: str  # noqa: N815
    errorMessage: str  # noqa: N815
    attemptEndingTimestamp: int  # noqa: N815
    rawData: str  # noqa: N815


@dataclass
class Outcome:
    delivered: bool
    attempts: int
    statuses: list[int]
    backed_up: bool
    request_id: str
    error_message: str = ""


@dataclass
class FirehoseDelivery:
    """The Firehose side of one HTTP endpoint destination."""

    url: str
    access_key: str
    retry_duration_seconds: float = 300.0
    compress: bool = False
    source_arn: str = "arn:aws:firehose:eu-west-1:111122223333:deliverystream/zero-trust-ai-dev-siem"
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    jitter: random.Random = field(default_factory=lambda: random.Random(7))
    error_output: list[FailedRecord] = field(default_factory=list)

    def deliver(self, records: Sequence[bytes]) -> Outcome:
        request_id = str(uuid.uuid4())
        arrival = _now_ms()
        body = json.dumps({"requestId": request_id, "timestamp": arrival, "records": [
            {"data": base64.b64encode(item).decode("ascii")} for item in records]}).encode()
        headers = {"Content-Type": "application/json", "X-Amz-Firehose-Protocol-Version": PROTOCOL_VERSION,
                   "X-Amz-Firehose-Request-Id": request_id, "X-Amz-Firehose-Source-Arn": self.source_arn,
                   "X-Amz-Firehose-Access-Key": self.access_key}
        if self.compress:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        started = self.clock()
        statuses: list[int] = []
        wait = FIRST_BACKOFF_SECONDS
        while True:
            status, message, conforming = self._attempt(body, headers, request_id)
            statuses.append(status)
            if status == 200 and conforming:
                return Outcome(True, len(statuses), statuses, False, request_id)
            if status == 413 and conforming:
                # Permanent: not retried, and not written to the error output either.
                return Outcome(False, len(statuses), statuses, False, request_id, message)
            delay = min(wait, MAX_BACKOFF_SECONDS) * (
                1 + self.jitter.uniform(-BACKOFF_JITTER, BACKOFF_JITTER))
            if self.clock() - started + delay > self.retry_duration_seconds:
                code = REFUSED if conforming else INVALID_RESPONSE
                ended = _now_ms()
                self.error_output.extend(
                    FailedRecord(len(statuses), arrival, code, message, ended,
                                 base64.b64encode(item).decode("ascii")) for item in records)
                return Outcome(False, len(statuses), statuses, True, request_id, message)
            self.sleep(delay)
            wait *= 2

    def _attempt(self, body: bytes, headers: dict[str, str], request_id: str) -> tuple[int, str, bool]:
        """(status, error message, whether the response followed the format). A response that does
        not follow it is read as a 500 without a body."""
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=ENDPOINT_TIMEOUT_SECONDS)
        try:
            connection.request("POST", parts.path or "/", body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_RESPONSE_BYTES + 1)
            status = response.status
        except (OSError, http.client.HTTPException) as problem:
            return 500, f"no response: {problem}", False
        finally:
            connection.close()
        if not 200 <= status <= 599 or 300 <= status <= 399 or len(raw) > MAX_RESPONSE_BYTES:
            return 500, "", False  # redirects are not followed; a huge body is not read
        try:
            document = json.loads(raw)
        except ValueError:
            return 500, "", False
        if (not isinstance(document, dict) or document.get("requestId") != request_id
                or not isinstance(document.get("timestamp"), int)):
            return 500, "", False
        message = document.get("errorMessage", "")
        return status, message if isinstance(message, str) else "", True
