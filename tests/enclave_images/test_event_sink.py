"""The agent's CloudWatch Logs sink: every event reaches the log group in PutLogEvents' batch
rules, a failed call loses nothing (the batch waits), and a queue that overflows says so."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from enclave_images.parent.event_sink import (
    EVENT_OVERHEAD_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    CloudWatchEventSink,
    InferenceEvents,
    stream_name,
)
from ztai_runtime.inference_events import inference_event

GROUP = "/zero-trust-ai/dev/inference-events"


def event(number: int = 0, reason: str | None = None) -> dict[str, Any]:
    return inference_event(source="parent", request_id=f"r-{number}", client_id=None, partner=None,
                           route="POST /v1/infer", rows=1, request_bytes=10, response_bytes=10,
                           latency_ms=1.0, model="digits", model_version="1",
                           decision="refused" if reason else "served", reason=reason,
                           status=400 if reason else 200)


def logger() -> tuple[logging.Logger, io.StringIO]:
    text = io.StringIO()
    log = logging.getLogger(f"tests.sink.{time.monotonic_ns()}")
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, text


class FakeLogs:
    """Records PutLogEvents calls; fails the next `failures` calls."""

    def __init__(self, failures: int = 0, stream_exists: bool = False) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.failures = failures
        self.stream_exists = stream_exists
        self.streams_created = 0

    def create_log_stream(self, **kwargs: Any) -> None:
        self.streams_created += 1
        if self.stream_exists:
            raise ClientError({"Error": {"Code": "ResourceAlreadyExistsException", "Message": "exists"}},
                              "CreateLogStream")

    def put_log_events(self, **kwargs: Any) -> dict[str, Any]:  # boto3's argument names
        if self.failures:
            self.failures -= 1
            raise EndpointConnectionError(endpoint_url="https://logs.eu-west-1.amazonaws.com")
        assert kwargs["logGroupName"] == GROUP and kwargs["logStreamName"] == "s"
        self.calls.append(kwargs["logEvents"])
        return {}


@mock_aws
def test_events_reach_the_log_group_as_their_json_lines() -> None:
    client = boto3.client("logs", region_name="eu-west-1")
    client.create_log_group(logGroupName=GROUP)
    log, _ = logger()
    stream = stream_name("ip-10-12-1-7.eu-west-1.compute.internal")
    sink = CloudWatchEventSink(client, GROUP, stream, logger=log)
    emit = InferenceEvents(log, sink)
    sent = [event(1), event(2, "refused: no token")]
    for record in sent:
        emit(record)
    assert sink.flush() is True
    got = client.get_log_events(logGroupName=GROUP, logStreamName=stream)["events"]
    assert [json.loads(item["message"]) for item in got] == sent
    assert sink.sent == 2 and sink.dropped == 0


def test_a_stream_name_is_the_hosts_and_never_holds_a_colon_or_a_star() -> None:
    name = stream_name("weird:host*name", started=0)
    assert name.startswith("parent/weird-host-name/1970-01-01T00-00-00Z/")
    assert ":" not in name and "*" not in name and len(name) <= 512
    assert stream_name("h", started=0) != stream_name("h", started=0)  # a restart: a stream of its own


def test_a_failed_call_keeps_the_batch_for_the_next_try() -> None:
    log, text = logger()
    client = FakeLogs(failures=1)
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log)
    sink.put(event(1))
    assert sink.flush() is False
    assert client.calls == []
    line = json.loads(text.getvalue().splitlines()[0])
    assert line["event"] == "inference-events-unsent" and line["waiting"] == 1
    assert sink.flush() is True
    assert [json.loads(item["message"])["requestId"] for item in client.calls[0]] == ["r-1"]


def test_an_existing_stream_is_fine_any_other_error_is_retried() -> None:
    log, _ = logger()
    client = FakeLogs(stream_exists=True)
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log)
    sink.put(event())
    assert sink.flush() is True and client.streams_created == 1
    sink.put(event())
    assert sink.flush() is True and client.streams_created == 1  # created once per agent


def test_batches_keep_to_putlogevents_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = logger()
    client = FakeLogs()
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log, queue_limit=30_000)
    sent = [event(number, "x" * (number % 500) or None) for number in range(12_000)]
    for record in sent:
        sink.put(record)
    assert sink.flush() is True
    assert [json.loads(item["message"]) for call in client.calls for item in call] == sent
    for call in client.calls:
        assert len(call) <= MAX_BATCH_EVENTS
        assert sum(len(item["message"].encode()) + EVENT_OVERHEAD_BYTES for item in call) <= MAX_BATCH_BYTES
        stamps = [item["timestamp"] for item in call]
        assert stamps == sorted(stamps)
    # Each call but the last is full: the next event would not have fitted.
    for call, following in zip(client.calls, client.calls[1:], strict=False):
        size = sum(len(item["message"].encode()) + EVENT_OVERHEAD_BYTES for item in call)
        assert size + len(following[0]["message"].encode()) + EVENT_OVERHEAD_BYTES > MAX_BATCH_BYTES
    # Our events are some hundreds of bytes, so bytes bind first; the count limit still holds.
    monkeypatch.setattr("enclave_images.parent.event_sink.MAX_BATCH_EVENTS", 7)
    client.calls.clear()
    for record in sent[:20]:
        sink.put(record)
    assert sink.flush() is True
    assert [len(call) for call in client.calls] == [7, 7, 6]


def test_an_overflowing_queue_drops_the_oldest_and_says_so() -> None:
    log, text = logger()
    client = FakeLogs(failures=10)
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log, queue_limit=3)
    for number in range(5):
        sink.put(event(number))
    assert sink.dropped == 2
    dropped = [json.loads(line) for line in text.getvalue().splitlines()]
    assert [line["event"] for line in dropped] == ["inference-events-dropped"] * 2
    client.failures = 0
    assert sink.flush() is True
    assert [json.loads(item["message"])["requestId"] for item in client.calls[0]] == ["r-2", "r-3", "r-4"]


def test_the_background_thread_sends_and_close_sends_the_rest() -> None:
    log, _ = logger()
    client = FakeLogs()
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log, flush_seconds=0.05)
    sink.start()
    sink.put(event(1))
    deadline = time.monotonic() + 5
    while not client.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(client.calls) == 1
    sink.put(event(2))
    sink.close()
    assert sink.sent == 2


@pytest.mark.parametrize("rejected", [{"tooOldLogEventEndIndex": 0}])
def test_rejected_events_are_named_in_the_journal(rejected: dict[str, int]) -> None:
    log, text = logger()
    client = FakeLogs()
    client.put_log_events = lambda **kwargs: {"rejectedLogEventsInfo": rejected}  # type: ignore[method-assign]
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log)
    sink.put(event())
    assert sink.flush() is True
    line = json.loads(text.getvalue().splitlines()[0])
    assert line["event"] == "inference-events-rejected" and line["rejected"] == rejected


def test_events_arriving_while_a_batch_is_in_flight_are_kept() -> None:
    """Requests keep coming while PutLogEvents runs; if the queue overflows meanwhile, what was
    sent is what leaves the queue, never the newer events."""
    log, _ = logger()
    client = FakeLogs()
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log, queue_limit=3)
    sent = client.put_log_events

    def busy(**kwargs: Any) -> dict[str, Any]:
        if not client.calls:
            sink.put(event(3))
            sink.put(event(4))  # the queue holds 3: r-0 and r-1, in flight, are pushed out
        return sent(**kwargs)

    client.put_log_events = busy  # type: ignore[method-assign]
    for number in range(3):
        sink.put(event(number))
    assert sink.flush() is True
    assert [[json.loads(item["message"])["requestId"] for item in call] for call in client.calls] == [
        ["r-0", "r-1", "r-2"], ["r-3", "r-4"]]


# -- a deleted stream, losses told in the stream, close after a hung call, rejected events ----------

class StreamsLogs:
    """PutLogEvents as CloudWatch answers it: ResourceNotFoundException for a stream (or group)
    that is not there; `group` False makes CreateLogStream fail the same way."""

    def __init__(self) -> None:
        self.streams: set[str] = set()
        self.group = True
        self.created = 0
        self.messages: list[dict[str, Any]] = []
        self.fail_next: Exception | None = None

    def create_log_stream(self, **kwargs: Any) -> None:
        if not self.group:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no group"}},
                              "CreateLogStream")
        self.created += 1
        self.streams.add(kwargs["logStreamName"])

    def put_log_events(self, **kwargs: Any) -> dict[str, Any]:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        if kwargs["logStreamName"] not in self.streams:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no stream"}},
                              "PutLogEvents")
        self.messages += [json.loads(item["message"]) for item in kwargs["logEvents"]]
        return {}


def test_a_deleted_stream_is_made_again_and_the_batch_sent() -> None:
    log, text = logger()
    client = StreamsLogs()
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log)
    sink.put(event(1))
    assert sink.flush() is True
    client.streams.clear()  # DeleteLogStream by someone
    sink.put(event(2))
    assert sink.flush() is True
    assert [item["requestId"] for item in client.messages] == ["r-1", "r-2"]
    assert client.created == 2 and sink.sent == 2
    assert "inference-events-stream-recreated" in text.getvalue()


def test_a_deleted_group_keeps_the_events_until_it_is_back() -> None:
    log, _ = logger()
    client = StreamsLogs()
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log)
    sink.put(event(1))
    assert sink.flush() is True
    client.streams.clear()
    client.group = False
    sink.put(event(2))
    assert sink.flush() is False
    assert sink.flush() is False  # each flush tries to make the stream again
    client.group = True
    assert sink.flush() is True
    assert [item["requestId"] for item in client.messages] == ["r-1", "r-2"]


def test_after_drops_the_stream_is_told_once_sending_works_again() -> None:
    log, _ = logger()
    client = StreamsLogs()
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log, queue_limit=2)
    client.fail_next = EndpointConnectionError(endpoint_url="https://logs.eu-west-1.amazonaws.com")
    for number in range(5):
        sink.put(event(number))
    assert sink.flush() is False
    assert sink.flush() is True
    notices = [item for item in client.messages if item["event"] == "inference-events-dropped"]
    assert [item["requestId"] for item in client.messages if item["event"] == "inference"] == ["r-3", "r-4"]
    assert len(notices) == 1
    assert (notices[0]["count"], notices[0]["rejected"], notices[0]["stream"]) == (3, 0, "s")
    assert client.messages[-1] == notices[0]  # after the events that waited
    sink.put(event(5))
    assert sink.flush() is True
    assert len([item for item in client.messages if item["event"] == "inference-events-dropped"]) == 1


def test_a_notice_that_cannot_be_sent_is_sent_next_time() -> None:
    log, _ = logger()
    client = StreamsLogs()
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log, queue_limit=1)
    sink.put(event(1))
    sink.put(event(2))  # r-1 dropped
    real = client.put_log_events
    calls = []

    def refuse_the_notice(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        if len(calls) == 2:
            raise EndpointConnectionError(endpoint_url="https://logs.eu-west-1.amazonaws.com")
        return real(**kwargs)

    client.put_log_events = refuse_the_notice  # type: ignore[method-assign]
    assert sink.flush() is False
    assert [item["event"] for item in client.messages] == ["inference"]
    assert sink.flush() is True
    assert [item["event"] for item in client.messages] == ["inference", "inference-events-dropped"]


def test_close_does_not_flush_again_while_the_thread_is_still_sending() -> None:
    log, text = logger()
    client = FakeLogs()
    release = threading.Event()
    entered = threading.Event()
    sent = client.put_log_events

    def hung(**kwargs: Any) -> dict[str, Any]:
        entered.set()
        release.wait(5)
        return sent(**kwargs)

    client.put_log_events = hung  # type: ignore[method-assign]
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log, flush_seconds=0.01)
    sink.put(event(1))
    sink.start()
    assert entered.wait(5)
    sink.close(timeout=0.1)
    release.set()
    deadline = time.monotonic() + 5
    while not client.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(client.calls) == 1  # the batch went once
    assert "CloseTimeout" in text.getvalue()


@pytest.mark.parametrize(("info", "rejected"), [
    ({"tooOldLogEventEndIndex": 1}, 1),
    ({"expiredLogEventEndIndex": 2}, 2),
    ({"tooNewLogEventStartIndex": 2}, 1),
    ({"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 2}, 2),
    ({"tooOldLogEventEndIndex": 0}, 0),
    ({"tooNewLogEventStartIndex": 3}, 0),
])
def test_rejected_events_are_not_counted_as_sent(info: dict[str, int], rejected: int) -> None:
    log, _ = logger()
    client = FakeLogs()
    answers = [{"rejectedLogEventsInfo": info}, {}]
    real = client.put_log_events

    def answer(**kwargs: Any) -> dict[str, Any]:
        real(**kwargs)
        return answers.pop(0) if answers else {}

    client.put_log_events = answer  # type: ignore[method-assign]
    sink = CloudWatchEventSink(client, GROUP, "s", logger=log)
    for number in range(3):
        sink.put(event(number))
    assert sink.flush() is True
    assert (sink.sent, sink.rejected) == (3 - rejected, rejected)
    notices = [json.loads(item["message"]) for call in client.calls[1:] for item in call]
    if rejected:
        assert [(item["event"], item["rejected"]) for item in notices] == [
            ("inference-events-dropped", rejected)]
    else:
        assert notices == []
