"""The transform's output delivered over Firehose's HTTP endpoint contract to a local collector
(real sockets on 127.0.0.1), and the delivery rules: only 200 succeeds, retries with back-off and
the same request id, 413 permanent and not backed up, exhausted retries to the error output."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import firehose_http as endpoint
from tests.support import firehose_records as fx
from ztai_runtime.siem import firehose
from ztai_runtime.siem.ocsf import to_ocsf

KEY = "collector-key-0123456789"


class FakeTime:
    """A clock that moves only when the simulator sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def collector() -> Iterator[endpoint.CollectorEndpoint]:
    with endpoint.running(endpoint.CollectorEndpoint(access_key=KEY)) as running:
        yield running


def delivery(collector: endpoint.CollectorEndpoint, time: FakeTime,
             **options: Any) -> endpoint.FirehoseDelivery:
    options.setdefault("access_key", KEY)
    return endpoint.FirehoseDelivery(url=collector.url, clock=time.clock, sleep=time.sleep, **options)


def transformed_batch(messages: list[str]) -> tuple[list[bytes], list[Any]]:
    """The transform's Ok outputs (as Firehose hands them to the destination) and the lines the
    SIEM must end up with: each message's OCSF event, or the message itself when unmapped."""
    records = [fx.record(f"r{start}", fx.encode(fx.payload(messages[start:start + 7])))
               for start in range(0, len(messages), 7)]
    result = firehose.transform_records(records)
    assert {output["result"] for output in result.outputs} == {"Ok"}
    expected = []
    for message in messages:
        event = to_ocsf(message, log_group=fx.LOG_GROUP)
        expected.append(event if event is not None else message)
    return [base64.b64decode(output["data"]) for output in result.outputs], expected


def lines_of(collector: endpoint.CollectorEndpoint, expected: list[Any]) -> list[Any]:
    """The collector's lines, each read as the expected item is: JSON for an OCSF event, the text
    itself for a forwarded line."""
    lines = [line for item in collector.records for line in item.decode().split("\n")[:-1]]
    return [json.loads(line) if isinstance(want, dict) else line
            for line, want in zip(lines, expected, strict=True)]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_transformed_records_reach_the_collector_as_ocsf_lines(
        collector: endpoint.CollectorEndpoint, compress: bool) -> None:
    messages = fx.stratus_messages()
    messages = (messages[:40] if messages else [json.dumps(fx.cloudtrail_record("GetObject", index))
                                                for index in range(40)])
    messages.insert(3, "a line no mapping knows")
    data, expected = transformed_batch(messages)
    time = FakeTime()
    outcome = delivery(collector, time, compress=compress).deliver(data)

    assert (outcome.delivered, outcome.attempts, outcome.backed_up) == (True, 1, False)
    assert lines_of(collector, expected) == expected
    [seen] = collector.seen
    assert seen.headers["x-amz-firehose-request-id"] == outcome.request_id
    assert seen.headers["x-amz-firehose-source-arn"].startswith("arn:aws:firehose:")
    assert seen.headers.get("content-encoding") == ("gzip" if compress else None)
    assert time.sleeps == []


def test_two_server_errors_then_success_deliver_once_under_one_request_id(
        collector: endpoint.CollectorEndpoint) -> None:
    collector.script = [500, 500]
    time = FakeTime()
    outcome = delivery(collector, time).deliver([b"one\n", b"two\n"])

    assert (outcome.delivered, outcome.statuses, outcome.backed_up) == (True, [500, 500, 200], False)
    assert [seen.request_id for seen in collector.seen] == [outcome.request_id] * 3
    assert collector.records == [b"one\n", b"two\n"]
    # Back-off from 1 s, doubling, within the documented jitter.
    assert len(time.sleeps) == 2
    assert 0.85 <= time.sleeps[0] <= 1.15 and 1.7 <= time.sleeps[1] <= 2.3


def test_oversized_batch_is_refused_with_413_not_retried_not_backed_up() -> None:
    small = endpoint.CollectorEndpoint(access_key=KEY, max_body_bytes=64 * 1024)
    with endpoint.running(small):
        time = FakeTime()
        sender = delivery(small, time)
        outcome = sender.deliver([b"x" * 200_000])
    assert (outcome.delivered, outcome.statuses, outcome.backed_up) == (False, [413], False)
    assert sender.error_output == []
    assert small.records == [] and time.sleeps == []
    assert "over this collector's" in outcome.error_message


def test_gzip_that_expands_past_the_limit_is_413() -> None:
    small = endpoint.CollectorEndpoint(access_key=KEY, max_body_bytes=64 * 1024)
    with endpoint.running(small):
        sender = delivery(small, FakeTime(), compress=True)
        outcome = sender.deliver([b"\0" * 500_000])  # compresses to a few hundred bytes
    assert outcome.statuses == [413] and not outcome.backed_up and sender.error_output == []


def test_wrong_access_key_is_401_retried_then_backed_up(collector: endpoint.CollectorEndpoint) -> None:
    time = FakeTime()
    sender = delivery(collector, time, access_key="not-the-key", retry_duration_seconds=60)
    outcome = sender.deliver([b"alpha\n", b"beta\n"])

    assert not outcome.delivered and outcome.backed_up
    assert set(outcome.statuses) == {401} and outcome.attempts >= 3
    assert time.now <= 60 and sum(time.sleeps) <= 60
    assert collector.records == []
    assert [base64.b64decode(item.rawData) for item in sender.error_output] == [b"alpha\n", b"beta\n"]
    assert {item.errorCode for item in sender.error_output} == {endpoint.REFUSED}
    assert {item.attemptsMade for item in sender.error_output} == {outcome.attempts}
    assert {item.errorMessage for item in sender.error_output} == {"the access key is not the one configured"}


def test_zero_retry_duration_backs_up_after_one_attempt(collector: endpoint.CollectorEndpoint) -> None:
    collector.script = [503]
    sender = delivery(collector, FakeTime(), retry_duration_seconds=0)
    outcome = sender.deliver([b"a\n"])
    assert (outcome.attempts, outcome.backed_up, len(sender.error_output)) == (1, True, 1)


@pytest.mark.parametrize("script", [["malformed"], [202]], ids=["malformed-200", "other-2xx"])
def test_a_response_that_is_not_a_conforming_200_is_a_failure(
        collector: endpoint.CollectorEndpoint, script: list[int | str]) -> None:
    collector.script = list(script)
    outcome = delivery(collector, FakeTime()).deliver([b"a\n"])
    assert outcome.delivered and outcome.attempts == 2
    assert outcome.statuses[0] in (500, 202)  # a malformed body is read as a 500 without a body
    # The first attempt was answered but not accepted: the batch is stored once, by the retry.
    assert collector.records == [b"a\n"]


def test_a_collector_that_never_answers_properly_ends_in_the_error_output(
        collector: endpoint.CollectorEndpoint) -> None:
    collector.script = ["malformed"] * 50
    sender = delivery(collector, FakeTime(), retry_duration_seconds=30)
    outcome = sender.deliver([b"a\n"])
    assert outcome.backed_up and set(outcome.statuses) == {500}
    assert [item.errorCode for item in sender.error_output] == [endpoint.INVALID_RESPONSE]


def test_back_off_is_capped_at_two_minutes(collector: endpoint.CollectorEndpoint) -> None:
    collector.script = [500] * 12
    time = FakeTime()
    outcome = delivery(collector, time, retry_duration_seconds=7200).deliver([b"a\n"])
    assert outcome.delivered and outcome.attempts == 13
    assert max(time.sleeps) <= endpoint.MAX_BACKOFF_SECONDS * 1.15
    assert time.sleeps[-1] >= endpoint.MAX_BACKOFF_SECONDS * 0.85


# --- the collector's own checks, with hand-made requests ------------------------------------------

def post(collector: endpoint.CollectorEndpoint, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    port = int(collector.url.rsplit(":", 1)[1].split("/")[0])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/firehose", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def good_request(request_id: str = "req-1") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"requestId": request_id, "timestamp": 1764583300000,
                       "records": [{"data": base64.b64encode(b"line\n").decode()}]}).encode()
    return body, {"Content-Type": "application/json", "X-Amz-Firehose-Protocol-Version": "1.0",
                  "X-Amz-Firehose-Request-Id": request_id, "X-Amz-Firehose-Access-Key": KEY}


def test_a_retried_request_id_is_stored_once(collector: endpoint.CollectorEndpoint) -> None:
    body, headers = good_request()
    assert post(collector, body, headers)[0] == 200
    status, answer = post(collector, body, headers)
    assert status == 200 and answer["requestId"] == "req-1" and isinstance(answer["timestamp"], int)
    assert collector.records == [b"line\n"]


def changed(**changes: Any) -> tuple[bytes, dict[str, str]]:
    body, headers = good_request()
    document = json.loads(body)
    for name, value in changes.items():
        if name.startswith("header_"):
            header = name.removeprefix("header_").replace("_", "-")
            if value is None:
                headers.pop(header)
            else:
                headers[header] = value
        elif value is None:
            document.pop(name)
        else:
            document[name] = value
    return json.dumps(document).encode(), headers


@pytest.mark.parametrize("request_parts, status, problem", [
    (changed(header_X_Amz_Firehose_Protocol_Version="2.0"), 400, "Protocol-Version must be 1.0"),
    (changed(header_X_Amz_Firehose_Request_Id=None), 400, "Request-Id is missing"),
    (changed(header_X_Amz_Firehose_Access_Key=None), 401, "access key"),
    (changed(header_Content_Type="text/plain"), 400, "Content-Type must be application/json"),
    (changed(header_Content_Encoding="br"), 400, "Content-Encoding 'br' is not supported"),
    (changed(requestId="another"), 400, "requestId differs"),
    (changed(timestamp="2026-12-01"), 400, "timestamp must be an integer"),
    (changed(records=[]), 400, "records must be a non-empty list"),
    (changed(records=[{"data": "%%%"}]), 400, "not base64"),
    (changed(records=[{"nodata": 1}]), 400, "needs a data string"),
    ((b"{not json", good_request()[1]), 400, "not JSON"),
    ((gzip.compress(b"x")[:8], {**good_request()[1], "Content-Encoding": "gzip"}), 400, "not valid gzip"),
], ids=["protocol-version", "no-request-id", "no-access-key", "content-type", "content-encoding",
        "request-id-mismatch", "timestamp", "no-records", "bad-base64", "no-data", "not-json", "bad-gzip"])
def test_the_collector_refuses_a_request_that_breaks_the_format(
        collector: endpoint.CollectorEndpoint, request_parts: tuple[bytes, dict[str, str]],
        status: int, problem: str) -> None:
    body, headers = request_parts
    answered, answer = post(collector, body, headers)
    assert answered == status
    assert problem in answer["errorMessage"]
    assert collector.records == []
