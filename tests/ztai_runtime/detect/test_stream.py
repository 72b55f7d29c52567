"""The detection stream function (ztai_runtime/detect/stream.py) under moto: CloudWatch Logs
payloads in, findings on an EventBridge bus (read back through a rule to an SQS queue) and OCSF
Detection Findings out, learned state in S3 written conditionally; replays not counted twice, bad
messages skipped, control messages ignored. The detector is a fake passed in, so these tests do not
depend on the real detectors."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ztai_runtime.detect import stream
from ztai_runtime.detect.allowlist import AllowList
from ztai_runtime.detect.engine import BURST_GAP_MS, STREAM_MAX_IDS, Engine, Finding
from ztai_runtime.detect.signals import Signal
from ztai_runtime.detect.sources import Event, InputError
from ztai_runtime.detect.stream import (
    ConfigError,
    PublishError,
    StateConflictError,
    StateError,
    StateStore,
    StreamConfig,
    config_from_environment,
    ocsf_findings,
    process,
    publish,
)
from ztai_runtime.siem.schemas import validate

REGION = "eu-west-1"
BUCKET = "ztai-dev-detect-state"
BUS = "zero-trust-ai-dev-detections"
GROUP = "/zero-trust-ai/dev/cloudtrail"
T0 = 1_765_000_000_000  # 2025-12-06


class FakeDetector:
    """Flags every kms Decrypt; learns how many events it saw (its state)."""

    name = "fake"

    def __init__(self, seen: int = 0) -> None:
        self.seen = seen

    def observe(self, event: Event, principal: str) -> list[Signal]:
        self.seen += 1
        if event.record.get("eventName") == "Decrypt":
            return [Signal("fake-decrypt", "high", principal, "decrypt on the weights key",
                           technique="T1552.004")]
        return []

    def to_state(self) -> dict[str, Any]:
        return {"seen": self.seen}


def fake_build(*, rules_ir: Any = None, context: Any = None, allow: AllowList | None = None,
               state: Mapping[str, Any] | None = None, max_ids: int | None = None) -> Engine:
    seen = int(state["detectors"]["fake"]["seen"]) if state else 0
    engine = Engine([FakeDetector(seen)], allow=allow, max_ids=max_ids)
    if state is not None:
        engine.restore(dict(state))
    return engine


def trail_record(event_id: str, name: str = "Decrypt", offset_ms: int = 0) -> dict[str, Any]:
    seconds = (T0 + offset_ms) // 1000
    return {"eventVersion": "1.09", "eventSource": "kms.amazonaws.com", "eventName": name,
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)),
            "eventID": event_id, "awsRegion": REGION,
            "userIdentity": {"type": "AssumedRole",
                             "arn": "arn:aws:sts::111122223333:assumed-role/engineer/alice",
                             "principalId": "AROAEXAMPLE:alice", "accountId": "111122223333"}}


def payload(messages: list[tuple[str, str]], *, kind: str = "DATA_MESSAGE",
            group: str = GROUP) -> dict[str, Any]:
    body = {"owner": "111122223333", "logGroup": group, "logStream": "s",
            "subscriptionFilters": ["detect"], "messageType": kind,
            "logEvents": [{"id": cwl_id, "timestamp": T0, "message": message}
                          for cwl_id, message in messages]}
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()}}


def trail_payload(*records: dict[str, Any]) -> dict[str, Any]:
    return payload([(f"cwl-{r['eventID']}", json.dumps(r)) for r in records])


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        events = boto3.client("events", region_name=REGION)
        events.create_event_bus(Name=BUS)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="playbooks")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        events.put_rule(Name="findings", EventBusName=BUS,
                        EventPattern=json.dumps({"source": [stream.SOURCE]}))
        events.put_targets(Rule="findings", EventBusName=BUS, Targets=[{"Id": "q", "Arn": queue_arn}])
        yield {"s3": s3, "events": events, "sqs": sqs, "queue": queue_url}


def delivered(aws: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10)
        if not got.get("Messages"):
            return out
        for message in got["Messages"]:
            out.append(json.loads(message["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=message["ReceiptHandle"])


SOURCE_KINDS = json.dumps([[GROUP, ["cloudtrail"]],
                           ["/zero-trust-ai/dev/inference-events", ["inference"]],
                           ["/aws/apigateway/zero-trust-ai-dev-*", ["gateway"]]])
KINDS = stream.parse_source_kinds(SOURCE_KINDS)
CONFIG = StreamConfig(state_bucket=BUCKET, bus_name=BUS, source_kinds=KINDS)


def run(aws: dict[str, Any], event: dict[str, Any], lines: list[dict[str, Any]] | None = None,
        now_ms: int = T0 + 1000, **more: Any) -> stream.StreamStats:
    out = lines if lines is not None else []

    def keep(line: Mapping[str, Any]) -> None:
        out.append(dict(line))
    return process(event, config=more.pop("config", CONFIG), s3=aws["s3"], events_client=aws["events"],
                   now_ms=now_ms, region=REGION, account="111122223333", build=more.pop("build", fake_build),
                   emit=keep, sleep=lambda _s: None, **more)


def saved_state(aws: dict[str, Any]) -> dict[str, Any]:
    body = aws["s3"].get_object(Bucket=BUCKET, Key=stream.DEFAULT_STATE_KEY)["Body"].read()
    state: dict[str, Any] = json.loads(gzip.decompress(body))
    return state


def test_a_finding_reaches_the_bus_and_the_siem_and_the_state_is_saved(aws: dict[str, Any]) -> None:
    lines: list[dict[str, Any]] = []
    stats = run(aws, trail_payload(trail_record("e1"), trail_record("e2", "Encrypt", 10)), lines)
    assert (stats.events, stats.records, stats.opened, stats.published) == (2, 2, 1, 1)
    [message] = delivered(aws)
    assert message["source"] == "zero-trust-ai.detect" and message["detail-type"] == "Detection Finding"
    detail = message["detail"]
    assert detail["rule"] == "fake-decrypt" and detail["severity"] == "high"
    assert detail["principal"].endswith("role/engineer/alice") and detail["eventIds"] == ["e1"]
    assert detail["attack"] == "T1552.004" and detail["id"]
    assert {"firstSeen", "lastSeen", "reason"} <= set(detail)
    [ocsf] = [line for line in lines if line.get("class_uid") == 2004]
    assert validate(ocsf) == []
    assert ocsf["activity_id"] == 1 and ocsf["finding_info"]["uid"] == detail["id"]
    assert ocsf["finding_info"]["attacks"] == [{"technique": {"uid": "T1552"},
                                                "sub_technique": {"uid": "T1552.004"}}]
    state = saved_state(aws)
    assert state["engine"]["detectors"]["fake"] == {"seen": 2}
    assert len(state["recentIds"]) == 2


def test_the_state_carries_learning_and_open_bursts_between_invocations(aws: dict[str, Any]) -> None:
    run(aws, trail_payload(trail_record("e1")))
    stats = run(aws, trail_payload(trail_record("e3", offset_ms=60_000)))
    assert stats.opened == 0  # the same burst: no second event on the bus
    assert len(delivered(aws)) == 1
    state = saved_state(aws)
    assert state["engine"]["detectors"]["fake"] == {"seen": 2}
    assert state["engine"]["open"][0]["ids"] == ["e1", "e3"]


def test_a_replayed_payload_is_not_counted_twice(aws: dict[str, Any]) -> None:
    event = trail_payload(trail_record("e1"), trail_record("e2", "Encrypt"))
    run(aws, event)
    delivered(aws)
    again = run(aws, event)
    assert (again.replayed, again.records, again.opened) == (2, 0, 0)
    assert delivered(aws) == []
    state = saved_state(aws)
    assert state["engine"]["detectors"]["fake"] == {"seen": 2}
    assert state["engine"]["open"][0]["count"] == 1


def test_unreadable_messages_are_skipped_and_logged_the_rest_processed(aws: dict[str, Any]) -> None:
    lines: list[dict[str, Any]] = []
    event = payload([("a", "2 123 eni-1 10.0.0.1 10.0.0.2 443 5 6 1 40 1 2 ACCEPT OK"),
                     ("b", '{"hello": "world"}'), ("c", "[1, 2"),
                     ("d", json.dumps(trail_record("e1")))])
    stats = run(aws, event, lines)
    assert (stats.events, stats.unreadable, stats.records, stats.opened) == (4, 3, 1, 1)
    skipped = [line for line in lines if line.get("event") == "detect.skipped"]
    assert [s["eventId"] for s in skipped] == ["a", "b", "c"]
    assert all(s["logGroup"] == GROUP and s["why"] for s in skipped)
    assert "not a JSON record" in skipped[0]["why"]
    assert len(delivered(aws)) == 1


def test_skipped_messages_are_logged_up_to_a_limit_and_counted_past_it(aws: dict[str, Any]) -> None:
    lines: list[dict[str, Any]] = []
    stats = run(aws, payload([(str(i), "START RequestId: x") for i in range(stream.LOGGED_SKIPS + 5)]), lines)
    assert stats.unreadable == stream.LOGGED_SKIPS + 5
    assert len([line for line in lines if line.get("event") == "detect.skipped"]) == stream.LOGGED_SKIPS
    [summary] = [line for line in lines if line.get("event") == "detect.batch"]
    assert summary["unreadable"] == stream.LOGGED_SKIPS + 5


def test_a_control_message_is_ignored_and_writes_no_state(aws: dict[str, Any]) -> None:
    lines: list[dict[str, Any]] = []
    stats = run(aws, payload([], kind="CONTROL_MESSAGE"), lines)
    assert stats.control == 1 and stats.events == 0
    assert lines == [{"event": "detect.control-message", "logGroup": GROUP}]
    assert aws["s3"].list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


@pytest.mark.parametrize("event", [{}, {"awslogs": {"data": "not base64 gzip"}}, {"awslogs": "x"},
                                   {"awslogs": {"data": 5}}, "text", None])
def test_an_event_that_is_not_a_subscription_fails_with_a_message(aws: dict[str, Any], event: Any) -> None:
    with pytest.raises(InputError, match="not a CloudWatch Logs subscription event"):
        run(aws, event)


def test_a_concurrent_write_fails_the_invocation_and_keeps_the_other_state(aws: dict[str, Any]) -> None:
    run(aws, trail_payload(trail_record("e0", "Encrypt")))

    def racing_build(**kwargs: Any) -> Engine:
        # Another invocation writes between this one's read and its write.
        aws["s3"].put_object(Bucket=BUCKET, Key=stream.DEFAULT_STATE_KEY, Body=b"theirs")
        return fake_build(**kwargs)
    with pytest.raises(StateConflictError, match="written by another invocation"):
        run(aws, trail_payload(trail_record("e1", "Encrypt")), build=racing_build)
    body = aws["s3"].get_object(Bucket=BUCKET, Key=stream.DEFAULT_STATE_KEY)["Body"].read()
    assert body == b"theirs"


def test_the_first_write_is_conditional_too(aws: dict[str, Any]) -> None:
    store = StateStore(aws["s3"], BUCKET, "k")
    assert store.load() == (None, None)
    aws["s3"].put_object(Bucket=BUCKET, Key="k", Body=b"theirs")
    with pytest.raises(StateConflictError):
        store.save({"x": 1}, None)


def test_a_conditional_write_after_a_clean_read_succeeds(aws: dict[str, Any]) -> None:
    store = StateStore(aws["s3"], BUCKET, "k")
    first = {"format": stream.STATE_FORMAT, "version": stream.STATE_VERSION, "engine": {}, "recentIds": [],
             "n": 1}
    etag = store.save(first, None)
    state, read_etag = store.load()
    assert state == first and read_etag == etag
    store.save({**first, "n": 2}, read_etag)
    assert store.load()[0] == {**first, "n": 2}
    with pytest.raises(StateConflictError):  # the ETag read before the second write is stale now
        store.save(first, read_etag)


@pytest.mark.parametrize(("body", "message"), [
    (b"not gzip", "is not gzip'd JSON"),
    (gzip.compress(b"{not json"), "is not gzip'd JSON"),
    (gzip.compress(b'{"format": "other", "version": 1}'), "is not format"),
    (gzip.compress(json.dumps({"format": stream.STATE_FORMAT, "version": 1, "engine": {},
                               "recentIds": {}}).encode()), "is not format"),
    (gzip.compress(json.dumps({"format": stream.STATE_FORMAT, "version": 1, "recentIds": [],
                               "engine": {"version": 99}}).encode()), "cannot be restored"),
    (gzip.compress(json.dumps({"format": stream.STATE_FORMAT, "version": 1, "recentIds": [],
                               "engine": {"version": 1, "detectors": {}}}).encode()), "cannot be restored"),
])
def test_an_unreadable_state_fails_naming_the_object_and_the_way_out(
        aws: dict[str, Any], body: bytes, message: str) -> None:
    aws["s3"].put_object(Bucket=BUCKET, Key=stream.DEFAULT_STATE_KEY, Body=body)
    with pytest.raises(StateError, match=message) as caught:
        run(aws, trail_payload(trail_record("e1")))
    assert f"s3://{BUCKET}/{stream.DEFAULT_STATE_KEY}" in str(caught.value)
    assert "restore an earlier version" in str(caught.value)


def test_idle_bursts_close_with_an_ocsf_update_listing_every_event(aws: dict[str, Any]) -> None:
    run(aws, trail_payload(trail_record("e1"), trail_record("e2", offset_ms=1000)))
    lines: list[dict[str, Any]] = []
    later = T0 + BURST_GAP_MS + 10_000
    stats = run(aws, trail_payload(trail_record("e9", "Encrypt", offset_ms=BURST_GAP_MS + 5000)), lines,
                now_ms=later)
    assert stats.closed == 1 and stats.opened == 0
    [update] = [line for line in lines if line.get("class_uid") == 2004]
    assert validate(update) == []
    assert update["activity_id"] == 2 and update["activity_name"] == "Update"
    assert [e["uid"] for e in update["finding_info"]["related_events"]] == ["e1", "e2"]
    assert saved_state(aws)["engine"]["open"] == []


def test_a_large_finding_is_split_over_ocsf_lines_of_one_uid() -> None:
    ids = [f"e{i}" for i in range(stream.OCSF_IDS_PER_LINE + 3)]
    finding = Finding(rule="model:rate", principal="p", group="", severity="medium", reason="r",
                      technique=None, first_ms=T0, last_ms=T0 + 5, event_ids=ids, event_count=len(ids))
    parts = ocsf_findings(finding, stream.ACTIVITY_UPDATE, now_ms=T0, region=REGION, account="1")
    assert len(parts) == 2 and len({p["finding_info"]["uid"] for p in parts}) == 1
    assert [e["uid"] for p in parts for e in p["finding_info"]["related_events"]] == ids
    assert all(p["finding_info"]["related_events_count"] == len(ids) for p in parts)
    assert parts[0]["finding_info"]["analytic"]["type_id"] == 2  # Behavioral, a model
    assert all(validate(p) == [] for p in parts)


class FlakyEvents:
    """PutEvents that refuses one entry of a call (the second, or the only one), `failures` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls.append(Entries)
        if self.failures:
            self.failures -= 1
            results = [{"EventId": "x"}] * len(Entries)
            results[min(1, len(Entries) - 1)] = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            return {"FailedEntryCount": 1, "Entries": results}
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"}] * len(Entries)}


def entries(count: int) -> list[dict[str, Any]]:
    return [{"Source": stream.SOURCE, "DetailType": stream.DETAIL_TYPE, "EventBusName": BUS,
             "Detail": json.dumps({"n": n})} for n in range(count)]


def test_publish_batches_by_ten_and_retries_only_the_refused_entries() -> None:
    client = FlakyEvents(failures=1)
    assert publish(client, entries(12), sleep=lambda _s: None) == 12
    assert [len(call) for call in client.calls] == [10, 1, 2]
    assert client.calls[1] == [entries(12)[1]]


def test_publish_fails_when_entries_stay_refused(aws: dict[str, Any]) -> None:
    client = FlakyEvents(failures=99)
    with pytest.raises(PublishError, match="refused 1 finding"):
        publish(client, entries(2), sleep=lambda _s: None)
    # Through the function: the batch is not marked processed, so its retry redoes it.
    with pytest.raises(PublishError):
        process(trail_payload(trail_record("e1"), trail_record("e2")), config=CONFIG, s3=aws["s3"],
                events_client=FlakyEvents(failures=99), now_ms=T0, build=lambda **k: _two_findings(k),
                emit=lambda _l: None, sleep=lambda _s: None)
    assert aws["s3"].list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


class _PerEvent(FakeDetector):
    def observe(self, event: Event, principal: str) -> list[Signal]:
        return [Signal("fake-each", "low", principal, "each", group=event.uid)]


def _two_findings(kwargs: dict[str, Any]) -> Engine:
    return Engine([_PerEvent()], max_ids=kwargs.get("max_ids"))


def test_the_allow_list_from_the_configuration_suppresses(aws: dict[str, Any]) -> None:
    allow = AllowList.parse({"allow": [{"principal": "arn:aws:iam::111122223333:role/engineer*",
                                        "reason": "the engineers decrypt in this test on purpose"}]})
    stats = run(aws, trail_payload(trail_record("e1")),
                config=StreamConfig(state_bucket=BUCKET, bus_name=BUS, allow=allow, source_kinds=KINDS))
    assert stats.opened == 0 and delivered(aws) == []


def test_the_handler_runs_the_engine_build_engine_makes(aws: dict[str, Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "build_engine", fake_build)
    monkeypatch.setattr(stream, "_CONFIG", None)
    monkeypatch.setenv("STATE_BUCKET", BUCKET)
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("SOURCE_KINDS", SOURCE_KINDS)
    monkeypatch.setattr(stream, "_now_ms", lambda: T0 + 1000)

    class Context:
        invoked_function_arn = f"arn:aws:lambda:{REGION}:111122223333:function:detect"
    result = stream.handler(trail_payload(trail_record("e1")), Context())
    assert result["opened"] == 1 and result["published"] == 1
    assert delivered(aws)[0]["detail"]["eventIds"] == ["e1"]


GOOD_ENV = {"STATE_BUCKET": BUCKET, "EVENT_BUS_NAME": BUS}


def test_the_configuration_is_read_from_the_environment() -> None:
    config = config_from_environment({**GOOD_ENV, "CONTEXT": '{"weights_key": ["arn:k"]}',
                                      "ALLOW_LIST": json.dumps({"allow": []}), "STATE_KEY": "s/x.gz"})
    assert config.context == {"weights_key": ("arn:k",)} and config.state_key == "s/x.gz"
    assert config_from_environment(GOOD_ENV).state_key == stream.DEFAULT_STATE_KEY


@pytest.mark.parametrize(("env", "message"), [
    ({"EVENT_BUS_NAME": BUS}, "STATE_BUCKET is not set"),
    ({"STATE_BUCKET": BUCKET, "EVENT_BUS_NAME": " "}, "EVENT_BUS_NAME is not set"),
    ({**GOOD_ENV, "STATE_KEY": "/abs"}, "STATE_KEY '/abs': an S3 object key"),
    ({**GOOD_ENV, "ALLOW_LIST": "{"}, "ALLOW_LIST is not JSON"),
    ({**GOOD_ENV, "ALLOW_LIST": '{"allow": [{"principal": "*", "reason": "x"}]}'}, "ALLOW_LIST: entry 1"),
    ({**GOOD_ENV, "CONTEXT": "[1"}, "CONTEXT is not JSON"),
    ({**GOOD_ENV, "CONTEXT": "[]"}, "CONTEXT is a JSON list: an object"),
    ({**GOOD_ENV, "CONTEXT": '{"weights_key": "r"}'}, "CONTEXT: 'weights_key' must be a non-empty list"),
    ({**GOOD_ENV, "CONTEXT": '{"weights_key": []}'}, "CONTEXT: 'weights_key' must be a non-empty list"),
    ({**GOOD_ENV, "CONTEXT": '{"weights_key": [""]}'}, "CONTEXT: 'weights_key' must be a non-empty list"),
    ({**GOOD_ENV, "CONTEXT": '{"weight_key": ["arn:k"]}'},
     "CONTEXT: 'weight_key' is no placeholder of the rules: one of .*weights_key"),
    ({**GOOD_ENV, "ALLOW_LIST": '{"allow": "x"}'}, "ALLOW_LIST"),
])
def test_a_bad_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_environment(env)


def test_the_handler_logs_a_configuration_error(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(stream, "_CONFIG", None)
    monkeypatch.delenv("STATE_BUCKET", raising=False)
    with pytest.raises(ConfigError):
        stream.handler(trail_payload(trail_record("e1")), None)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "detect.config-error" and "STATE_BUCKET" in line["error"]


def test_the_siem_transform_forwards_the_ocsf_finding_unchanged() -> None:
    from ztai_runtime.siem.firehose import TransformStats, ocsf_lines

    finding = Finding(rule="fake-decrypt", principal="arn:aws:iam::1:role/x", group="", severity="high",
                      reason="a secret token was decrypted", technique="T1552.004", first_ms=T0,
                      last_ms=T0, event_ids=["e1"], event_count=1)
    [event] = ocsf_findings(finding, stream.ACTIVITY_CREATE, now_ms=T0, region=REGION, account="1")
    stats = TransformStats()
    [line] = ocsf_lines([json.dumps(event)], "/aws/lambda/zero-trust-ai-dev-combined-siem-detect", stats)
    assert json.loads(line) == event and validate(json.loads(line)) == []


# -- forged records: the kinds a log group may carry, the event times believed ---------------------

INFERENCE_GROUP = "/zero-trust-ai/dev/inference-events"


def test_a_cloudtrail_shaped_line_in_the_inference_group_is_refused_and_logged(
        aws: dict[str, Any]) -> None:
    lines: list[dict[str, Any]] = []
    forged = trail_record("f1")
    stats = run(aws, payload([("cwl-f1", json.dumps(forged))], group=INFERENCE_GROUP), lines)
    assert stats.refused == 1 and stats.unreadable == 1 and stats.records == 0 and stats.opened == 0
    [refused] = [line for line in lines if line.get("event") == "detect.refused"]
    assert refused["logGroup"] == INFERENCE_GROUP and "cloudtrail record" in refused["why"]
    assert "may carry only inference" in refused["why"] and delivered(aws) == []


def test_an_ocsf_wrapped_cloudtrail_record_is_judged_by_what_it_wraps(aws: dict[str, Any]) -> None:
    wrapped = {"class_uid": 6003, "metadata": {"version": "1.7.0"}, "time": T0,
               "raw_data": json.dumps(trail_record("w1"))}
    stats = run(aws, payload([("cwl-w1", json.dumps(wrapped))], group="/aws/lambda/other"))
    assert stats.refused == 1 and stats.opened == 0


def test_a_group_no_pattern_names_may_not_carry_gateway_or_inference_lines() -> None:
    assert CONFIG.kinds_for("/aws/lambda/anything") == stream.UNMATCHED_KINDS
    assert not stream.UNMATCHED_KINDS & {"cloudtrail", "gateway", "inference"}
    assert CONFIG.kinds_for("/aws/apigateway/zero-trust-ai-dev-inference") == {"gateway"}
    assert StreamConfig(state_bucket=BUCKET, bus_name=BUS).kinds_for(GROUP) == stream.UNMATCHED_KINDS


@pytest.mark.parametrize("offset_ms", [
    stream.FUTURE_SKEW_MS + 2000,                       # ahead of the clock: would hold a burst open
    253_402_300_000_000 - T0,                           # year 9999
    -(stream.MAX_PAST_MS + 1000),                       # back-dated: would be learned as normal
])
def test_an_event_time_outside_the_believed_window_is_refused(aws: dict[str, Any], offset_ms: int) -> None:
    lines: list[dict[str, Any]] = []
    stats = run(aws, trail_payload(trail_record("t1", offset_ms=offset_ms)), lines)
    assert stats.refused == 1 and stats.records == 0 and stats.opened == 0
    assert saved_state(aws)["engine"]["detectors"]["fake"]["seen"] == 0  # nothing learned
    assert any(line.get("event") == "detect.refused" and "event time" in line["why"] for line in lines)


def test_event_times_at_the_edges_of_the_window_are_believed(aws: dict[str, Any]) -> None:
    now = T0 + stream.MAX_PAST_MS
    stats = run(aws, trail_payload(trail_record("old"), trail_record("new", offset_ms=stream.MAX_PAST_MS
                                                                      + stream.FUTURE_SKEW_MS - 1000)),
                now_ms=now)
    assert stats.refused == 0 and stats.records == 2


def test_a_future_dated_forgery_cannot_silence_later_signals(aws: dict[str, Any]) -> None:
    """Even past the time check (an engine state from before it), a burst dated after now closes."""
    forged = Finding(rule="fake-decrypt", principal="arn:aws:iam::111122223333:role/engineer/alice",
                     group="", severity="high", reason="r", technique=None,
                     first_ms=253_402_300_000_000, last_ms=253_402_300_000_000, event_ids=["x"],
                     event_count=1)
    engine = fake_build()
    engine.open[(forged.rule, forged.principal, forged.group)] = forged
    aws["s3"].put_object(Bucket=BUCKET, Key=stream.DEFAULT_STATE_KEY, Body=gzip.compress(json.dumps(
        {"format": stream.STATE_FORMAT, "version": stream.STATE_VERSION, "engine": engine.to_state(),
         "recentIds": []}).encode()))
    run(aws, trail_payload(trail_record("e0", "Encrypt")))  # closes the forged burst
    stats = run(aws, trail_payload(trail_record("e1")))
    assert stats.opened == 1 and delivered(aws)[-1]["detail"]["eventIds"] == ["e1"]


@pytest.mark.parametrize(("text", "message"), [
    ("{", "SOURCE_KINDS is not JSON"),
    ('{"a": 1}', "SOURCE_KINDS is not a list"),
    ('[["/g", ["cloudtrail", "nope"]]]', "SOURCE_KINDS: entry 1"),
    ('[["g", ["cloudtrail"]]]', "SOURCE_KINDS: entry 1"),
    ('[["/g"]]', "SOURCE_KINDS: entry 1"),
])
def test_a_bad_source_kinds_names_the_variable(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_environment({**GOOD_ENV, "SOURCE_KINDS": text})


def test_source_kinds_is_read_from_the_environment() -> None:
    config = config_from_environment({**GOOD_ENV, "SOURCE_KINDS": SOURCE_KINDS})
    assert config.kinds_for(GROUP) == {"cloudtrail"} and config.source_kinds == KINDS



# -- the size of what is published -----------------------------------------------------------------

def huge_finding(ids: int, id_chars: int) -> Finding:
    name = "k" * 250_000  # a 250 KB requestParameters name, say
    return Finding(rule="fake-decrypt", principal=f"arn:aws:sts::1:assumed-role/r/{name}", group=name,
                   severity="high", reason=f"GetObject on {name}", technique=None, first_ms=T0,
                   last_ms=T0, event_ids=[f"{i:08d}" + "x" * id_chars for i in range(ids)],
                   event_count=ids)


def test_the_event_bridge_entry_stays_far_below_256_kb() -> None:
    entry = stream.event_bridge_entry(huge_finding(STREAM_MAX_IDS, 250_000 // 100), BUS)
    assert len(entry["Detail"].encode()) < 64 * 1024
    detail = json.loads(entry["Detail"])
    assert len(detail["eventIds"]) == stream.EVENT_BRIDGE_MAX_IDS
    assert detail["eventIdsDropped"] == STREAM_MAX_IDS - stream.EVENT_BRIDGE_MAX_IDS
    assert detail["eventIds"][0].startswith("00000000x") and "characters)" in detail["eventIds"][0]
    assert detail["reason"].endswith("(250,013 characters)")


def test_a_huge_finding_is_published_whole_but_small(aws: dict[str, Any]) -> None:
    assert stream.publish(aws["events"], [stream.event_bridge_entry(huge_finding(3, 0), BUS)]) == 1


def test_every_ocsf_line_stays_below_256_kb_and_lists_every_id() -> None:
    finding = huge_finding(3_000, 5_000)
    parts = ocsf_findings(finding, stream.ACTIVITY_UPDATE, now_ms=T0, region=REGION, account="1")
    assert all(len(json.dumps(p).encode()) < 200 * 1024 for p in parts)
    related = [e["uid"] for p in parts for e in p["finding_info"]["related_events"]]
    assert len(related) == 3_000 and related[0].startswith("00000000x")
    assert all(len(uid) < stream.ID_LIMIT + 40 for uid in related)
    assert all(validate(p) == [] for p in parts[:1])


def test_gateway_lines_are_read_from_the_api_access_log_group_only(aws: dict[str, Any]) -> None:
    from tests.ztai_runtime.detect.test_sources import gateway
    line = json.dumps(gateway("g1", T0))
    forged = run(aws, payload([("cwl-g1", line)], group=INFERENCE_GROUP))
    assert forged.refused == 1 and forged.records == 0
    real = run(aws, payload([("cwl-g2", line)], group="/aws/apigateway/zero-trust-ai-dev-inference"))
    assert real.refused == 0 and real.records == 1
