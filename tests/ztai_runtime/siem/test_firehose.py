"""The Firehose transform against its contract: one output per recordId, Ok/Dropped/
ProcessingFailed, base64 newline-delimited data, the response budget with re-ingestion (moto's
Firehose and a stub that refuses records), and the EMF line of counters."""

from __future__ import annotations

import ast
import base64
import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support import firehose_records as fx
from ztai_runtime.siem import firehose
from ztai_runtime.siem.ocsf import to_ocsf

PLAIN = "START RequestId: 8f5 Version: $LATEST"  # a line no mapping knows


def mapped_json(message: str) -> Any:
    """What the transform must deliver for a line the mapping knows: its OCSF event."""
    event = to_ocsf(message, log_group=fx.LOG_GROUP)
    assert event is not None, "the fixture line is one the mapping knows"
    return event


def run(event: dict[str, Any], **options: Any) -> tuple[dict[str, Any], firehose.TransformStats]:
    options.setdefault("client_factory", lambda region: pytest.fail("no re-ingestion expected"))
    return firehose.process(event, sleep=lambda seconds: None, clock=lambda: 1764583300.5, **options)


def test_every_record_answered_once_in_order_with_ocsf_lines() -> None:
    trail = [json.dumps(fx.cloudtrail_record("GetObject", index)) for index in range(3)]
    records = [fx.record("r1", fx.encode(fx.payload(trail[:2]))),
               fx.record("r2", fx.encode(fx.payload([trail[2], PLAIN])))]
    response, stats = run(fx.event(records))

    assert [output["recordId"] for output in response["records"]] == ["r1", "r2"]
    assert {output["result"] for output in response["records"]} == {"Ok"}
    first, second = (fx.decoded_lines(output) for output in response["records"])
    assert [json.loads(line) for line in first] == [mapped_json(message) for message in trail[:2]]
    assert json.loads(second[0]) == mapped_json(trail[2])
    assert second[1] == PLAIN
    assert (stats.records, stats.events, stats.mapped_events, stats.unmapped_events) == (2, 4, 3, 1)
    assert set(response) == {"records"}
    assert all(set(output) == {"recordId", "result", "data"} for output in response["records"])


def test_output_is_the_same_for_the_same_input() -> None:
    records = [fx.record("r1", fx.encode(fx.payload([json.dumps(fx.cloudtrail_record()), PLAIN])))]
    assert run(fx.event(records))[0] == run(fx.event(records))[0]


def test_control_message_is_dropped_and_counted() -> None:
    records = [fx.record("c", fx.encode(fx.payload([], message_type="CONTROL_MESSAGE")))]
    response, stats = run(fx.event(records))
    assert response["records"] == [{"recordId": "c", "result": "Dropped", "data": ""}]
    assert (stats.control_records, stats.failed_records, stats.events) == (1, 0, 0)


def test_data_message_without_events_is_dropped_and_counted() -> None:
    response, stats = run(fx.event([fx.record("e", fx.encode(fx.payload([])))]))
    assert response["records"][0]["result"] == "Dropped"
    assert stats.empty_records == 1


@pytest.mark.parametrize("data", [
    pytest.param("not base64 at all!", id="not-base64"),
    pytest.param(base64.b64encode(b"plain bytes, not gzip").decode(), id="not-gzip"),
    pytest.param(base64.b64encode(gzip.compress(b"{not json")).decode(), id="not-json"),
    pytest.param(base64.b64encode(gzip.compress(b"\xff\xfe")).decode(), id="not-utf8"),
    pytest.param(base64.b64encode(gzip.compress(b"x" * 100)[:20]).decode(), id="truncated-gzip"),
    pytest.param(fx.encode(["a", "list"]), id="not-an-object"),
    pytest.param(fx.encode({"logEvents": []}), id="no-message-type"),
    pytest.param(fx.encode({"messageType": "DATA_MESSAGE"}), id="no-log-events"),
    pytest.param(fx.encode({"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "message": 7}]}),
                 id="message-not-a-string"),
    pytest.param(fx.encode({"messageType": "SOMETHING_NEW", "logEvents": []}), id="unknown-type"),
])
def test_undecodable_record_fails_with_its_original_data(data: str) -> None:
    good = fx.encode(fx.payload([PLAIN]))
    response, stats = run(fx.event([fx.record("bad", data), fx.record("good", good)]))
    assert response["records"][0] == {"recordId": "bad", "result": "ProcessingFailed", "data": data}
    assert response["records"][1]["result"] == "Ok"
    assert (stats.undecodable_records, stats.failed_records) == (1, 1)


def test_a_record_that_inflates_past_the_limit_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firehose, "MAX_PAYLOAD_BYTES", 10_000)
    bomb = base64.b64encode(gzip.compress(json.dumps(fx.payload(["x" * 20_000])).encode())).decode()
    fits = fx.encode(fx.payload(["x" * 5_000]))
    response, stats = run(fx.event([fx.record("bomb", bomb), fx.record("fits", fits)]))
    assert response["records"][0] == {"recordId": "bomb", "result": "ProcessingFailed", "data": bomb}
    assert response["records"][1]["result"] == "Ok"
    assert stats.undecodable_records == 1


def test_a_payload_in_several_gzip_members_is_read_whole() -> None:
    text = json.dumps(fx.payload([PLAIN])).encode()
    blob = gzip.compress(text[:50]) + gzip.compress(text[50:])
    result = firehose.transform_records([fx.record("m", base64.b64encode(blob).decode())])
    assert fx.decoded_lines(result.outputs[0]) == [PLAIN]


def test_record_data_that_is_not_a_string_fails() -> None:
    response, stats = run(fx.event([{"recordId": "n", "data": None}]))
    assert response["records"] == [{"recordId": "n", "result": "ProcessingFailed", "data": ""}]
    assert stats.failed_records == 1


def test_unmapped_line_kept_as_it_came_and_counted() -> None:
    messages = [PLAIN, PLAIN + "\n", "first line\nsecond line\r\n", '{"event": "something else"}', ""]
    response, stats = run(fx.event([fx.record("u", fx.encode(fx.payload(messages)))]))
    assert fx.decoded_lines(response["records"][0]) == [
        PLAIN, PLAIN, "first line\\nsecond line", '{"event": "something else"}', ""]
    assert (stats.unmapped_events, stats.mapped_events) == (5, 0)


def test_a_mapping_that_raises_loses_no_event() -> None:
    def broken(message: str, *, log_group: str = "") -> dict[str, Any] | None:
        raise RuntimeError("mapping bug")

    message = json.dumps(fx.cloudtrail_record())
    result = firehose.transform_records([fx.record("x", fx.encode(fx.payload([message])))], mapper=broken)
    assert fx.decoded_lines(result.outputs[0]) == [message]
    assert (result.stats.mapper_errors, result.stats.unmapped_events) == (1, 1)


def test_a_mapping_result_that_cannot_be_serialised_is_forwarded_as_is() -> None:
    def odd(message: str, *, log_group: str = "") -> dict[str, Any] | None:
        return {"not json": {1, 2}}

    result = firehose.transform_records([fx.record("x", fx.encode(fx.payload([PLAIN])))], mapper=odd)
    assert fx.decoded_lines(result.outputs[0]) == [PLAIN]
    assert result.stats.mapper_errors == 1


def test_the_log_group_reaches_the_mapping() -> None:
    seen: list[str] = []

    def spy(message: str, *, log_group: str = "") -> dict[str, Any] | None:
        seen.append(log_group)
        return None

    firehose.transform_records([fx.record("x", fx.encode(fx.payload([PLAIN], log_group="/g/one")))],
                               mapper=spy)
    assert seen == ["/g/one"]


def test_lone_surrogate_is_written_escaped_not_failed() -> None:
    result = firehose.transform_records([fx.record("s", fx.encode(fx.payload(["bad \ud800 char"])))])
    assert result.outputs[0]["result"] == "Ok"
    assert fx.decoded_lines(result.outputs[0]) == ["bad \\ud800 char"]


@pytest.mark.parametrize("event, problem", [
    pytest.param([], "no records list", id="not-an-object"),
    pytest.param({"deliveryStreamArn": fx.STREAM_ARN}, "no records list", id="no-records"),
    pytest.param(fx.event([{"data": fx.encode(fx.payload([PLAIN]))}]), "no recordId", id="no-record-id"),
    pytest.param(fx.event([{"recordId": "", "data": ""}]), "no recordId", id="empty-record-id"),
    pytest.param(fx.event([], arn="arn:aws:kinesis:eu-west-1:111122223333:stream/x"),
                 "not a Firehose delivery stream ARN", id="not-a-stream-arn"),
])
def test_unusable_invocation_fails_with_a_clear_message(event: Any, problem: str) -> None:
    # Firehose retries a failed invocation, then backs the whole batch up: nothing is lost.
    with pytest.raises(firehose.TransformError, match=problem):
        run(event)


def test_metric_line_is_embedded_metric_format(capsys: pytest.CaptureFixture[str],
                                               json_libraries: str) -> None:
    records = [fx.record("a", fx.encode(fx.payload([json.dumps(fx.cloudtrail_record()), PLAIN]))),
               fx.record("b", fx.encode(fx.payload([], message_type="CONTROL_MESSAGE"))),
               fx.record("c", "garbage")]
    run(fx.event(records))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    directive = document["_aws"]
    assert directive["Timestamp"] == 1764583300500
    [metrics] = directive["CloudWatchMetrics"]
    assert metrics["Namespace"] == "ZeroTrustAI/Siem"
    assert metrics["Dimensions"] == [["DeliveryStream"]]
    assert document["DeliveryStream"] == "zero-trust-ai-dev-siem"
    names = [metric["Name"] for metric in metrics["Metrics"]]
    # Every declared metric has its value as a number at the top level, as the format requires.
    assert all(isinstance(document[name], int) for name in names)
    assert {name: document[name] for name in ("Records", "Events", "MappedEvents", "UnmappedEvents",
                                              "ControlRecords", "FailedRecords", "ReingestedRecords")} \
        == {"Records": 3, "Events": 2, "MappedEvents": 1, "UnmappedEvents": 1, "ControlRecords": 1,
            "FailedRecords": 1, "ReingestedRecords": 0}
    assert {metric["Unit"] for metric in metrics["Metrics"]} <= {"Count", "Bytes"}
    # Which fast libraries did the work: both in the "fast" runs (pybase64 with its compiled
    # extension), none in the fallback's (tests/ztai_runtime/siem/conftest.py).
    assert document["FastLibraries"] == (["orjson", "pybase64"] if json_libraries == "fast" else [])
    assert "FastLibraries" not in names


def test_handler_returns_the_response(capsys: pytest.CaptureFixture[str]) -> None:
    response = firehose.handler(fx.event([fx.record("h", fx.encode(fx.payload([PLAIN])))]), None)
    assert response["records"][0]["result"] == "Ok"
    assert json.loads(capsys.readouterr().out)["Records"] == 1


# --- the response budget and re-ingestion ---------------------------------------------------------

def big_records(count: int, events: int = 40) -> list[dict[str, Any]]:
    return [fx.record(f"r{number}", fx.encode(fx.payload(
        [json.dumps(fx.cloudtrail_record("GetObject", number * 1000 + index)) for index in range(events)])))
        for number in range(count)]


def budget_for(records: list[dict[str, Any]], fitting: int) -> int:
    """A response budget that holds the first `fitting` records' outputs and not one more."""
    outputs = firehose.transform_records(records).outputs
    envelopes = len('{"records": []}') + sum(firehose._record_cost(output["recordId"], 0)
                                            for output in outputs)
    return envelopes + sum(len(output["data"]) for output in outputs[:fitting]) + 100


def response_size(response: dict[str, Any]) -> int:
    """As the Lambda runtime serialises it (json.dumps's default separators)."""
    return len(json.dumps(response))


def test_the_response_stays_within_the_budget() -> None:
    records = big_records(6)
    budget = budget_for(records, 3)
    result = firehose.transform_records(records, response_budget=budget)
    assert [output["result"] for output in result.outputs] == ["Ok"] * 3 + ["Dropped"] * 3
    assert [item.record_id for item in result.reingest] == ["r3", "r4", "r5"]
    assert response_size({"records": result.outputs}) <= result.stats.response_bytes <= budget
    # What is re-ingested is the record as received (the gzip'd subscription payload).
    assert result.reingest[0].payloads == [base64.b64decode(records[3]["data"])]


@pytest.fixture
def moto_stream() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "eu-west-1", "AWS_CONFIG_FILE": "/nonexistent",
                            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
            patch.setenv(name, value)
        with mock_aws():
            s3 = boto3.client("s3", region_name="eu-west-1")
            s3.create_bucket(Bucket="siem-backup",
                             CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
            boto3.client("firehose", region_name="eu-west-1").create_delivery_stream(
                DeliveryStreamName="zero-trust-ai-dev-siem", DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::111122223333:role/firehose",
                    "BucketARN": "arn:aws:s3:::siem-backup"})
            yield s3


def delivered_payloads(s3: Any) -> list[dict[str, Any]]:
    """moto writes each PutRecordBatch call's records, concatenated, as one object: the gzip
    members decompress back to back into concatenated JSON documents."""
    documents: list[dict[str, Any]] = []
    for item in s3.list_objects_v2(Bucket="siem-backup").get("Contents", []):
        blob = s3.get_object(Bucket="siem-backup", Key=item["Key"])["Body"].read()
        text = gzip.decompress(blob).decode()
        decoder = json.JSONDecoder()
        position = 0
        while position < len(text):
            document, position = decoder.raw_decode(text, position)
            documents.append(document)
    return documents


def test_oversized_response_reingests_into_the_same_stream(moto_stream: Any) -> None:
    records = big_records(5)
    response, stats = run(fx.event(records), client_factory=firehose.build_client,
                          response_budget=budget_for(records, 2))
    assert [output["result"] for output in response["records"]] == ["Ok"] * 2 + ["Dropped"] * 3
    assert (stats.reingested_records, stats.failed_records) == (3, 0)
    originals = [json.loads(gzip.decompress(base64.b64decode(item["data"]))) for item in records[2:]]
    assert sorted(delivered_payloads(moto_stream), key=json.dumps) == sorted(originals, key=json.dumps)


def test_a_record_larger_than_the_budget_alone_is_split_over_smaller_payloads() -> None:
    records = big_records(1, events=60)
    whole = firehose.transform_records(records)
    budget = len(whole.outputs[0]["data"]) // 3
    result = firehose.transform_records(records, response_budget=budget)
    assert result.outputs[0]["result"] == "Dropped"
    [item] = result.reingest
    assert len(item.payloads) >= 3
    pieces = [json.loads(gzip.decompress(blob)) for blob in item.payloads]
    original = json.loads(gzip.decompress(base64.b64decode(records[0]["data"])))
    # Every event once, in order, under the original envelope; each piece fits a response alone.
    assert [event for piece in pieces for event in piece["logEvents"]] == original["logEvents"]
    assert all({**piece, "logEvents": []} == {**original, "logEvents": []} for piece in pieces)
    for blob in item.payloads:
        again = firehose.transform_records([fx.record("p", base64.b64encode(blob).decode())],
                                           response_budget=budget)
        assert again.outputs[0]["result"] == "Ok"


class RefusingFirehose:
    """A stub Firehose client: refuses the first `refusals` records of each of its first `rounds`
    calls with a per-record ErrorCode (FailedPutCount), or raises when `raises` is set."""

    def __init__(self, refusals: int, rounds: int, raises: bool = False) -> None:
        self.refusals, self.rounds, self.raises = refusals, rounds, raises
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, **request: Any) -> dict[str, Any]:
        assert set(request) == {"DeliveryStreamName", "Records"}
        assert request["DeliveryStreamName"] == "zero-trust-ai-dev-siem"
        records = request["Records"]
        self.calls.append([entry["Data"] for entry in records])
        if self.raises:
            raise ConnectionError("endpoint unreachable")
        refuse = self.refusals if len(self.calls) <= self.rounds else 0
        responses = [{"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}
                     if index < refuse else {"RecordId": f"id{index}"} for index in range(len(records))]
        return {"FailedPutCount": min(refuse, len(records)), "RequestResponses": responses}


def reingest_event() -> tuple[dict[str, Any], int]:
    records = big_records(4)
    return fx.event(records), budget_for(records, 1)


def test_partially_refused_reingestion_is_retried_until_accepted() -> None:
    event, budget = reingest_event()
    stub = RefusingFirehose(refusals=2, rounds=2)
    slept: list[float] = []
    response, stats = firehose.process(event, client_factory=lambda region: stub, sleep=slept.append,
                                       clock=lambda: 0.0, response_budget=budget)
    assert [output["result"] for output in response["records"]] == ["Ok", "Dropped", "Dropped", "Dropped"]
    assert [len(call) for call in stub.calls] == [3, 2, 2]  # only the refused records again
    assert stub.calls[1] == stub.calls[0][:2]
    assert slept == [firehose.REINGEST_BACKOFF_SECONDS, firehose.REINGEST_BACKOFF_SECONDS * 2]
    assert (stats.reingested_records, stats.reingest_failed_records, stats.failed_records) == (3, 0, 0)


def test_reingestion_still_refused_fails_those_records_visibly() -> None:
    event, budget = reingest_event()
    stub = RefusingFirehose(refusals=1, rounds=99)
    response, stats = firehose.process(event, client_factory=lambda region: stub,
                                       sleep=lambda seconds: None, clock=lambda: 0.0, response_budget=budget)
    assert len(stub.calls) == firehose.REINGEST_ATTEMPTS
    assert response["records"][1] == {"recordId": "r1", "result": "ProcessingFailed",
                                      "data": event["records"][1]["data"]}
    assert [output["result"] for output in response["records"][2:]] == ["Dropped", "Dropped"]
    assert (stats.reingested_records, stats.reingest_failed_records, stats.failed_records) == (2, 1, 1)


def test_reingestion_call_that_keeps_failing_fails_every_record_it_carried() -> None:
    event, budget = reingest_event()
    stub = RefusingFirehose(refusals=0, rounds=0, raises=True)
    response, stats = firehose.process(event, client_factory=lambda region: stub,
                                       sleep=lambda seconds: None, clock=lambda: 0.0, response_budget=budget)
    assert len(stub.calls) == firehose.REINGEST_ATTEMPTS
    assert [output["result"] for output in response["records"]] == ["Ok"] + ["ProcessingFailed"] * 3
    assert [output["data"] for output in response["records"][1:]] == [
        item["data"] for item in event["records"][1:]]
    assert (stats.reingested_records, stats.reingest_failed_records) == (0, 3)


def test_a_short_answer_counts_the_unacknowledged_records_as_refused() -> None:
    class Short(RefusingFirehose):
        def put_record_batch(self, **request: Any) -> dict[str, Any]:
            self.calls.append([entry["Data"] for entry in request["Records"]])
            # FailedPutCount says all went in, but only the first is acknowledged.
            return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "only-one"}]}

    event, budget = reingest_event()
    stub = Short(0, 0)
    response, stats = firehose.process(event, client_factory=lambda region: stub,
                                       sleep=lambda seconds: None, clock=lambda: 0.0, response_budget=budget)
    assert [len(call) for call in stub.calls] == [3, 2, 1]
    assert stub.calls[1] == stub.calls[0][1:] and stub.calls[2] == stub.calls[0][2:]
    assert [output["result"] for output in response["records"]] == ["Ok", "Dropped", "Dropped", "Dropped"]
    assert stats.reingest_failed_records == 0


def test_reingestion_batches_respect_the_put_record_batch_limits() -> None:
    blobs = [(index, b"x" * 300_000) for index in range(20)] + [(20 + index, b"y") for index in range(600)]
    batches = list(firehose._put_batches(blobs))
    assert [entry for batch in batches for entry in batch] == blobs
    assert all(len(batch) <= firehose.PUT_BATCH_MAX_RECORDS for batch in batches)
    assert all(sum(len(blob) for _, blob in batch) <= firehose.PUT_BATCH_MAX_BYTES for batch in batches)


def test_response_over_lambdas_limit_after_failures_fails_the_invocation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    event, budget = reingest_event()
    monkeypatch.setattr(firehose, "RESPONSE_LIMIT_BYTES", budget)
    stub = RefusingFirehose(refusals=0, rounds=0, raises=True)
    with pytest.raises(firehose.TransformError, match="over Lambda's"):
        firehose.process(event, client_factory=lambda region: stub, sleep=lambda seconds: None,
                         clock=lambda: 0.0, response_budget=budget)


def test_reingestion_stops_when_the_invocation_is_nearly_over() -> None:
    event, budget = reingest_event()
    stub = RefusingFirehose(refusals=1, rounds=99)
    left = iter([60.0, 10.0, 10.0])  # enough for the first call only
    response, stats = firehose.process(event, client_factory=lambda region: stub,
                                       sleep=lambda seconds: None, clock=lambda: 0.0,
                                       seconds_left=lambda: next(left), response_budget=budget)
    assert len(stub.calls) == 1
    assert [output["result"] for output in response["records"]] == [
        "Ok", "ProcessingFailed", "Dropped", "Dropped"]
    assert stats.reingest_failed_records == 1


def test_the_handler_reads_the_time_left_from_the_lambda_context(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    event, budget = reingest_event()
    stub = RefusingFirehose(refusals=0, rounds=0)
    monkeypatch.setattr(firehose, "RESPONSE_BUDGET_BYTES", budget)
    monkeypatch.setattr(firehose, "build_client", lambda region: stub)

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 5_000

    response = firehose.handler(event, Context())
    assert stub.calls == []  # 5 s left: no call started
    assert [output["result"] for output in response["records"]] == ["Ok"] + ["ProcessingFailed"] * 3
    assert json.loads(capsys.readouterr().out)["ReingestFailedRecords"] == 3


def test_reingestion_without_a_stream_arn_fails_visibly() -> None:
    event, budget = reingest_event()
    del event["deliveryStreamArn"]
    response, stats = run(event, response_budget=budget)
    assert [output["result"] for output in response["records"]] == ["Ok"] + ["ProcessingFailed"] * 3
    assert stats.reingest_failed_records == 3


def test_stratus_records_all_come_out_as_lines() -> None:
    messages = fx.stratus_messages()
    if messages is None:
        pytest.skip("the stratus-red-team data set is not beside this checkout")
    records = [fx.record(f"s{start}", fx.encode(fx.payload(messages[start:start + 50])))
               for start in range(0, len(messages), 50)]
    result = firehose.transform_records(records)
    assert {output["result"] for output in result.outputs} == {"Ok"}
    lines = [line for output in result.outputs for line in fx.decoded_lines(output)]
    assert len(lines) == len(messages) == result.stats.events
    assert result.stats.mapped_events + result.stats.unmapped_events == len(messages)


def test_the_transform_imports_only_what_the_lambda_ships() -> None:
    # The function's asset is the ztai_runtime directory; the Python runtime adds boto3/botocore.
    tree = ast.parse(Path(firehose.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert "ztai_runtime" in imported and "boto3" in imported
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == {"ztai_runtime", "boto3"}


# -- payloads that are not the stream's own subscriptions ---------------------------------------------

@pytest.mark.parametrize("envelope", [
    {"owner": "444455556666"},                       # another account's log group, or a forgery
    {"filters": ["siem-copy"]},                      # a filter that is not the stream's
    {"filters": []},
    {"owner": "444455556666", "filters": ["x"]},
], ids=["other-owner", "other-filter", "no-filter", "both"])
def test_a_payload_not_from_the_streams_subscriptions_is_forwarded_unmapped_and_counted(
        envelope: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    # Anyone allowed firehose:PutRecord could post a payload claiming the CloudTrail group: its
    # CloudTrail-shaped lines must not become the SIEM's API Activity.
    message = json.dumps(fx.cloudtrail_record("GetObject"))
    forged = fx.record("f", fx.encode(fx.payload([message, PLAIN], **envelope)))
    genuine = fx.record("g", fx.encode(fx.payload([message])))
    response, stats = run(fx.event([forged, genuine]))
    forged_out, genuine_out = response["records"]
    assert forged_out["result"] == "Ok" and genuine_out["result"] == "Ok"
    assert base64.b64decode(forged_out["data"]).decode().splitlines() == [message, PLAIN]
    assert json.loads(base64.b64decode(genuine_out["data"])) == mapped_json(message)
    assert (stats.foreign_records, stats.mapped_events, stats.unmapped_events) == (1, 1, 2)
    assert json.loads(capsys.readouterr().out)["ForeignRecords"] == 1


def test_a_foreign_payloads_secrets_are_still_redacted() -> None:
    record = fx.cloudtrail_record("GetObject")
    record["responseElements"] = {"credentials": {"sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE"}}
    forged = fx.record("f", fx.encode(fx.payload([json.dumps(record)], owner="444455556666")))
    response, stats = run(fx.event([forged]))
    [line] = base64.b64decode(response["records"][0]["data"]).decode().splitlines()
    assert json.loads(line)["responseElements"]["credentials"]["sessionToken"] == "REDACTED"
    assert stats.foreign_records == 1


def test_without_a_stream_arn_nothing_is_judged_foreign() -> None:
    # transform_records alone (no stream to compare with) maps what it is given.
    message = json.dumps(fx.cloudtrail_record("GetObject"))
    result = firehose.transform_records([fx.record("a", fx.encode(fx.payload([message], owner="4")))])
    assert (result.stats.foreign_records, result.stats.mapped_events) == (0, 1)
