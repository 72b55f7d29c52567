"""Where the parent agent's inference events go: its journal, and one CloudWatch Logs group.

Every event is one JSON line on stderr (the agent's systemd journal, a copy on the instance) and,
with `--events-log-group`, a log event in `/zero-trust-ai/<env>/inference-events`, sent by the
agent itself with PutLogEvents from a background thread.

Why the agent sends them rather than the CloudWatch agent shipping the journal: the agent already
carries boto3 and runs with the instance role's credentials, so nothing is added to the image (no
second daemon, no package, no configuration file to protect), and the role needs exactly two
actions on one log group's streams (logs:CreateLogStream, logs:PutLogEvents). The CloudWatch
agent would need its own package in the AMI, a configuration, and AWS's suggested policy for it
also describes every log group and writes metrics. A request is never held up by the upload:
events wait in a bounded queue and the oldest are dropped (and counted in the journal) if the
logs endpoint stays unreachable longer than the queue lasts.

The batch rules are PutLogEvents': at most 10,000 events and 1,048,576 bytes (each message's UTF-8
length plus 26 bytes), in chronological order, spanning at most 24 hours
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html).
The sequence token is no longer needed, so several agents (and restarts) never conflict.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from ztai_runtime.jsonlog import log_decision

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000
# One hour of a busy instance at ~30 requests a second; the oldest go first beyond it.
DEFAULT_QUEUE_LIMIT = 100_000
DEFAULT_FLUSH_SECONDS = 5.0


def stream_name(host: str | None = None, started: float | None = None) -> str:
    """The agent's own log stream: its host, when it started, and a random part, so a restarted
    agent or a reused host name never writes into another's stream. Stream names may not hold
    `:` or `*`."""
    host_part = "".join(c if c.isalnum() or c in "-._" else "-" for c in (host or socket.gethostname()))
    stamp = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime(time.time() if started is None else started))
    return f"parent/{host_part[:200]}/{stamp}/{uuid.uuid4().hex[:12]}"


def journal(logger: logging.Logger) -> Callable[[dict[str, Any]], None]:
    """An emitter that writes each event as one JSON line on `logger` (the agent's stderr)."""
    def emit(record: dict[str, Any]) -> None:
        logger.info(json.dumps(record))  # in the shape's own field order
    return emit


class CloudWatchEventSink:
    """Sends events to one log stream of one log group, in batches, from a background thread.

    `client`: a boto3 `logs` client (the instance role's credentials). `put` never blocks and
    never raises: a request is answered whether or not its event has been sent yet.
    """

    def __init__(self, client: Any, log_group: str, stream: str, *, logger: logging.Logger,
                 queue_limit: int = DEFAULT_QUEUE_LIMIT,
                 flush_seconds: float = DEFAULT_FLUSH_SECONDS) -> None:
        self._client, self.log_group, self.stream = client, log_group, stream
        self._log = logger
        self._queue_limit, self._flush_seconds = queue_limit, flush_seconds
        # (arrival number, timestamp in ms, line), oldest first.
        self._pending: deque[tuple[int, int, str]] = deque()
        self._arrivals = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream_ready = False
        # One flush at a time, so a batch is never sent twice by two flushes (the thread's and
        # close()'s, or a caller's).
        self._sending = threading.Lock()
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self._in_flight = 0  # the last arrival number of the batch being sent
        self._displaced = 0  # events of that batch pushed out of the queue meanwhile
        # The losses (dropped from the queue, rejected by CloudWatch) the stream has been told of.
        self._reported_dropped = 0
        self._reported_rejected = 0

    def put(self, record: dict[str, Any]) -> None:
        line = json.dumps(record)
        with self._lock:
            self._arrivals += 1
            self._pending.append((self._arrivals, int(time.time() * 1000), line))
            over = len(self._pending) - self._queue_limit
            for _ in range(max(over, 0)):
                number, _, _ = self._pending.popleft()
                # An event of the batch in flight is not lost yet: it counts as dropped only if
                # that call fails.
                if number <= self._in_flight:
                    self._displaced += 1
                    over -= 1
            self.dropped += max(over, 0)
        if over > 0:
            log_decision(self._log, "inference-events-dropped", dropped=over, total=self.dropped,
                         logGroup=self.log_group)

    def start(self) -> None:
        """Send in the background until `close`."""
        self._thread = threading.Thread(target=self._run, name="inference-events", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the background thread and try once more to send what waits. When the thread is
        still in a call after `timeout` (a hung endpoint), nothing more is tried: a second flush
        would wait on the same endpoint, and the journal keeps every event anyway."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log_decision(self._log, "inference-events-unsent", reason="the sender did not stop in time",
                             kind="CloseTimeout", waiting=len(self._pending), logGroup=self.log_group)
                return
        self.flush()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> bool:
        """Send everything waiting, batch by batch, then, if events were lost since the last time it
        could, one `inference-events-dropped` line into the stream itself: the SIEM sees the gap
        even when the instance's journal is out of its reach. False when a call failed (the batch
        stays queued for the next try, and the journal says why)."""
        with self._sending:
            while True:
                with self._lock:
                    batch = self._next_batch()
                    self._in_flight = max((number for number, _, _ in batch), default=0)
                if not batch:
                    return self._report_losses()
                try:
                    answer = self._put([{"timestamp": stamp, "message": line} for _, stamp, line in batch])
                except Exception as error:  # noqa: BLE001 - the endpoint, credentials or throttling: retry later
                    with self._lock:
                        lost, self.dropped = self._displaced, self.dropped + self._displaced
                        self._displaced = self._in_flight = 0
                    log_decision(self._log, "inference-events-unsent", reason=str(error),
                                 kind=type(error).__name__, waiting=len(self._pending), lost=lost,
                                 logGroup=self.log_group)
                    return False
                # By arrival number, not by count: `put` may have dropped the oldest meanwhile.
                last = max(number for number, _, _ in batch)
                with self._lock:
                    while self._pending and self._pending[0][0] <= last:
                        self._pending.popleft()
                    self._displaced = self._in_flight = 0
                rejected_info = (answer or {}).get("rejectedLogEventsInfo")
                rejected = _rejected_count(rejected_info, len(batch))
                self.sent += len(batch) - rejected
                self.rejected += rejected
                if rejected_info:
                    log_decision(self._log, "inference-events-rejected", rejected=rejected_info,
                                 count=rejected, logGroup=self.log_group)

    def _put(self, events: list[dict[str, Any]]) -> Any:
        """One PutLogEvents call, making the stream first. A stream deleted meanwhile (by an
        administrator, or a retention job) is made again and the call retried once."""
        self._ensure_stream()
        try:
            return self._client.put_log_events(logGroupName=self.log_group, logStreamName=self.stream,
                                               logEvents=events)
        except Exception as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
            self._stream_ready = False
            log_decision(self._log, "inference-events-stream-recreated", stream=self.stream,
                         logGroup=self.log_group)
            self._ensure_stream()
            return self._client.put_log_events(logGroupName=self.log_group, logStreamName=self.stream,
                                               logEvents=events)

    def _report_losses(self) -> bool:
        dropped = self.dropped - self._reported_dropped
        rejected = self.rejected - self._reported_rejected
        if dropped <= 0 and rejected <= 0:
            return True
        now = time.time()
        notice = {"event": "inference-events-dropped",
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                  "count": dropped, "rejected": rejected, "totalDropped": self.dropped,
                  "totalRejected": self.rejected, "stream": self.stream}
        try:
            self._put([{"timestamp": int(now * 1000), "message": json.dumps(notice)}])
        except Exception as error:  # noqa: BLE001 - told next time sending works
            log_decision(self._log, "inference-events-unsent", reason=str(error),
                         kind=type(error).__name__, waiting=len(self._pending), logGroup=self.log_group)
            return False
        self._reported_dropped += dropped
        self._reported_rejected += rejected
        return True

    def _next_batch(self) -> list[tuple[int, int, str]]:
        """The oldest events that fit one PutLogEvents call (the caller holds the lock). The
        queue is in arrival order; timestamps taken by concurrent requests may interleave by a
        millisecond, so the batch is sent sorted and cut where its span would pass 24 hours."""
        batch: list[tuple[int, int, str]] = []
        size = 0
        for number, stamp, line in self._pending:
            cost = len(line.encode("utf-8")) + EVENT_OVERHEAD_BYTES
            if batch and (len(batch) >= MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES
                          or stamp - batch[0][1] > MAX_BATCH_SPAN_MS):
                break
            batch.append((number, stamp, line))
            size += cost
        # A copy, sorted by timestamp; the queue keeps its order until the batch is sent.
        return sorted(batch, key=lambda event: event[1])

    def _ensure_stream(self) -> None:
        if self._stream_ready:
            return
        try:
            self._client.create_log_stream(logGroupName=self.log_group, logStreamName=self.stream)
        except Exception as error:  # only "already exists" is fine, checked by its code
            if _error_code(error) != "ResourceAlreadyExistsException":
                raise
        self._stream_ready = True


def _error_code(error: Exception) -> Any:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(error, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _rejected_count(info: Any, size: int) -> int:
    """How many events of a batch of `size` CloudWatch refused: those before tooOldLogEventEndIndex
    or expiredLogEventEndIndex (exclusive ends) and those from tooNewLogEventStartIndex on
    (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_RejectedLogEventsInfo.html)."""
    if not isinstance(info, dict):
        return 0

    def index(key: str) -> int | None:
        value = info.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    old = max(index("tooOldLogEventEndIndex") or 0, index("expiredLogEventEndIndex") or 0)
    new = index("tooNewLogEventStartIndex")
    start = size if new is None else max(new, 0)
    return min(max(old, 0), size) + max(size - max(start, old), 0)


class InferenceEvents:
    """The agent's one emitter: every event to the journal, and to CloudWatch Logs when a sink
    is configured."""

    def __init__(self, logger: logging.Logger, sink: CloudWatchEventSink | None = None) -> None:
        self._journal = journal(logger)
        self.sink = sink

    def __call__(self, record: dict[str, Any]) -> None:
        self._journal(record)
        if self.sink is not None:
            self.sink.put(record)
