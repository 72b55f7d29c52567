"""The SIEM stream's transform: an Amazon Data Firehose data-transformation Lambda.

CloudWatch Logs subscription filters put their batches into the delivery stream; Firehose buffers
them and invokes `handler` synchronously with a batch of records, and delivers what it returns.
The contract (docs/siem-transform.md has the whole picture):

- Input ("Transform source data in Amazon Data Firehose",
  https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html):
  `{"invocationId", "deliveryStreamArn", "region", "records": [{"recordId",
  "approximateArrivalTimestamp", "data"}]}`. Each record's `data` is the base64 of a gzip'd
  CloudWatch Logs subscription payload ("Using CloudWatch Logs subscription filters",
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/SubscriptionFilters.html):
  `{"owner", "logGroup", "logStream", "subscriptionFilters", "messageType", "logEvents":
  [{"id", "timestamp", "message"}]}`, where messageType is DATA_MESSAGE, or CONTROL_MESSAGE (sent
  to check that the destination is reachable; no log events).
- Output ("Required parameters for data transformation",
  https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html):
  exactly one `{"recordId", "result", "data"}` per input recordId (a missing or unknown id fails the
  whole batch), result `Ok` / `Dropped` (both count as success) / `ProcessingFailed` (Firehose
  writes the record to the backup bucket's processing-failed prefix), data base64.

What each input record becomes here:

- a DATA_MESSAGE: `Ok`, its data the newline-delimited lines of its log events, one line per
  event: the OCSF event `ztai_runtime.siem.ocsf.to_ocsf` maps it to (compact JSON), or, when the
  mapping does not know the line or fails on it, the message with its secret-named values
  redacted (`ztai_runtime.siem.ocsf.redact_line`: a JSON line is re-serialised, any other line is
  as it came), counted as unmapped; its own line breaks escaped as the two characters `\\n` so one
  event stays one line. A line of a kind mapped here that sits in another source's log group is
  forwarded so too and counted as misplaced (the mapping dispatches by log group);
- a CONTROL_MESSAGE, or a DATA_MESSAGE with no events: `Dropped`, counted;
- anything that cannot be decoded (not base64, not gzip, not a subscription payload): a
  `ProcessingFailed` with the original data, so it lands in the backup bucket, counted;
- a record whose output would take the response past the budget below: `Dropped` here and put
  back into the same stream with PutRecordBatch (its original data, or, when its output alone is
  larger than the budget, its log events split over several smaller payloads), counted as
  re-ingested. Records PutRecordBatch still refuses after `REINGEST_ATTEMPTS` attempts become
  `ProcessingFailed` with their original data instead: nothing is dropped silently.

The Lambda response is limited to 6 MB ("The Lambda synchronous invocation mode has a payload size
limit of 6 MB for both the request and the response", data-transformation page above), and OCSF
output is several times larger than the gzip'd input, so a running total of the response's size
is kept while records are transformed. Every invocation writes one CloudWatch embedded metric
format line (namespace `METRIC_NAMESPACE`, dimension DeliveryStream) with its counters.

Idempotent: the output is a function of the input alone (no clock, no random ids). Firehose
retrying a failed invocation can re-ingest a record twice; each OCSF event carries the source's id
(metadata.uid) for the SIEM to deduplicate on.

The standard library, boto3 for the re-ingestion (present in the Lambda runtime), and orjson and
pybase64 for JSON and base64 when they can be imported (`codec`; the function ships both, and
without them the answers are the same, only slower). `transform_records` is the pure part (no AWS
calls); the benchmark and the tests call it directly.
"""

from __future__ import annotations

import binascii
import gzip
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ztai_runtime.siem import codec
from ztai_runtime.siem.ocsf import misplaced, redact_line, to_ocsf

# boto3 clients are generated at runtime and carry no static types; this names the boundary.
FirehoseClient = Any
Mapper = Callable[..., dict[str, Any] | None]

OK = "Ok"
DROPPED = "Dropped"
FAILED = "ProcessingFailed"
DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"

# "6 MB" read as 6,000,000 bytes (the smaller of the two readings), and the transform fills only
# RESPONSE_BUDGET_BYTES of it with Ok records: the rest is a reserve for the records whose
# re-ingestion fails, which go back with their original (compressed, so small) data.
RESPONSE_LIMIT_BYTES = 6_000_000
RESPONSE_BUDGET_BYTES = 5_500_000
# What one output record adds to the response besides its base64 data: the keys, the longest
# result word and the punctuation as the Python runtime serialises the response (json.dumps's
# default separators, with spaces); recordIds are counted by their length.
_RECORD_OVERHEAD_BYTES = len('{"recordId": "", "result": "ProcessingFailed", "data": ""}, ')
_ENVELOPE_BYTES = len('{"records": []}')

# PutRecordBatch: at most 500 records and 4 MiB per call, each record at most 1,000 KiB before
# base64 ("PutRecordBatch", Amazon Data Firehose API reference; botocore's model: Data max 1024000).
PUT_BATCH_MAX_RECORDS = 500
PUT_BATCH_MAX_BYTES = 4 * 1024 * 1024
PUT_RECORD_MAX_BYTES = 1_024_000
# Attempts at re-ingesting the records a PutRecordBatch call refused (FailedPutCount > 0), on top
# of the client's own retries of throttling and transient errors; then they fail visibly.
REINGEST_ATTEMPTS = 3
REINGEST_BACKOFF_SECONDS = 0.2
# No PutRecordBatch call is started with less of the invocation left than this: the client's
# attempts (3, each with its connect and read timeouts, ztai_runtime.retries) fit in it.
REINGEST_STOP_SECONDS = 30.0
REINGEST_CLIENT_ATTEMPTS = 3

# A record is at most 1,000 KiB compressed and a CloudWatch Logs payload (JSON text) decompresses
# to a few times that; this leaves ample room and still bounds what one record can take.
MAX_PAYLOAD_BYTES = 32 * 1024 * 1024

METRIC_NAMESPACE = "ZeroTrustAI/Siem"
# The gzip level CloudWatch Logs uses for subscription payloads; re-ingested pieces use it too.
_GZIP_LEVEL = 6


class TransformError(Exception):
    """The invocation itself is unusable (no record list, a record without an id): Firehose retries
    the invocation and then writes the whole batch to the backup bucket."""


@dataclass
class TransformStats:
    """The counters of one invocation (one EMF line). Events are log events; records are Firehose
    records."""

    records: int = 0
    events: int = 0
    mapped_events: int = 0
    unmapped_events: int = 0
    mapper_errors: int = 0
    misplaced_events: int = 0
    foreign_records: int = 0
    control_records: int = 0
    empty_records: int = 0
    undecodable_records: int = 0
    reingested_records: int = 0
    reingest_failed_records: int = 0
    failed_records: int = 0
    response_bytes: int = 0

    def as_metrics(self) -> dict[str, int]:
        """The counters under their metric names (CamelCase, as CloudWatch metrics are named)."""
        return {_METRIC_NAMES[item.name]: getattr(self, item.name) for item in fields(self)}


_METRIC_NAMES = {
    "records": "Records", "events": "Events", "mapped_events": "MappedEvents",
    "unmapped_events": "UnmappedEvents", "mapper_errors": "MapperErrors",
    "misplaced_events": "MisplacedEvents", "foreign_records": "ForeignRecords",
    "control_records": "ControlRecords", "empty_records": "EmptyRecords",
    "undecodable_records": "UndecodableRecords", "reingested_records": "ReingestedRecords",
    "reingest_failed_records": "ReingestFailedRecords", "failed_records": "FailedRecords",
    "response_bytes": "ResponseBytes",
}


@dataclass
class Reingest:
    """One record to put back into the stream: its id and the payloads (gzip'd subscription
    payloads, each a Firehose record of its own) that carry its log events."""

    record_id: str
    original: str  # the record's data as received (base64), returned if re-ingestion fails
    payloads: list[bytes]


@dataclass(frozen=True)
class PayloadSource:
    """Whose subscription payloads a stream expects: CloudWatch Logs writes the log group's
    account as `owner` and the subscription filter's name in `subscriptionFilters`, and every
    filter of a stream carries the stream's name (components/siem_stream.py, `subscribe`)."""

    account: str
    filter_name: str

    def admits(self, payload: Mapping[str, Any]) -> bool:
        filters = payload.get("subscriptionFilters")
        return (payload.get("owner") == self.account and isinstance(filters, list)
                and self.filter_name in filters)


def _maps_nothing(message: str, *, log_group: str = "") -> None:
    return None


@dataclass
class TransformResult:
    outputs: list[dict[str, str]]
    stats: TransformStats
    reingest: list[Reingest] = field(default_factory=list)


def _record_cost(record_id: str, encoded_length: int) -> int:
    return _RECORD_OVERHEAD_BYTES + len(record_id) + encoded_length


def _base64_length(raw_length: int) -> int:
    return 4 * ((raw_length + 2) // 3)


def _gunzip(blob: bytes) -> bytes | None:
    """The decompressed payload, or None when the gzip is cut short or would decompress past
    MAX_PAYLOAD_BYTES (a record that inflates without bound must not exhaust the function's
    memory and fail the whole batch). Several gzip members are joined, as gzip.decompress does."""
    parts: list[bytes] = []
    total = 0
    while blob:
        inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
        part = inflater.decompress(blob, MAX_PAYLOAD_BYTES - total + 1)
        total += len(part)
        if total > MAX_PAYLOAD_BYTES or inflater.unconsumed_tail or not inflater.eof:
            return None
        parts.append(part)
        blob = inflater.unused_data
    return b"".join(parts) if parts else None


def _decode(data: str) -> dict[str, Any] | None:
    """The subscription payload of one record, or None when it is not one."""
    try:
        text = _gunzip(codec.b64decode(data))
        payload = codec.loads(text) if text is not None else None
    except (binascii.Error, ValueError, zlib.error):
        # ValueError covers bad JSON and undecodable UTF-8; zlib.error a damaged gzip stream.
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("messageType"), str):
        return None
    if payload["messageType"] == DATA_MESSAGE:
        events = payload.get("logEvents")
        if not isinstance(events, list) or not all(
                isinstance(event, dict) and isinstance(event.get("message"), str) for event in events):
            return None
    return payload


# The decoder, public for the detection stream function, which reads the same payloads
# (ztai_runtime/detect/stream.py) delivered to Lambda instead of Firehose.
decode_payload = _decode


def _forwarded(message: str) -> str:
    """An unmapped line as delivered: as it came, without the trailing line break Lambda and most
    writers add, and with inner line breaks escaped so that one event is one line."""
    line = message.rstrip("\r\n")
    if "\n" in line or "\r" in line:
        line = line.replace("\r", "\\r").replace("\n", "\\n")
    return line


def _utf8(text: str) -> bytes:
    """UTF-8 bytes; a lone surrogate (JSON can carry one as an escape) is written escaped rather
    than failing the record."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def ocsf_lines(messages: Iterable[str], log_group: str, stats: TransformStats,
               mapper: Mapper = to_ocsf) -> list[bytes]:
    """One output line per message, as UTF-8: its OCSF event as compact JSON, or, when the mapping
    does not know it (or fails on it), the message forwarded with its secret-named values redacted
    (`redact_line`); counted in `stats`. A line of a mapped kind in another source's log group
    (a CloudTrail-shaped line among inference events) is forwarded so too, and counted as misplaced.
    Bytes, not text: the response is bytes (base64) in the end, and the JSON writer's bytes go
    there as they are."""
    dumps = codec.dumps_bytes
    lines: list[bytes] = []
    append = lines.append
    for message in messages:
        try:
            mapped = mapper(message, log_group=log_group)
            line = dumps(mapped) if mapped is not None else None
        except Exception:  # noqa: BLE001 - the mapping must never lose an event: forward it redacted
            stats.mapper_errors += 1
            line = None
        if line is None:
            stats.unmapped_events += 1
            if log_group and misplaced(message, log_group):
                stats.misplaced_events += 1
            append(_utf8(_forwarded(redact_line(message))))
        else:
            stats.mapped_events += 1
            append(line)
    stats.events += len(lines)
    return lines


def _split_payloads(payload: Mapping[str, Any], lines: Sequence[bytes], budget: int) -> list[bytes]:
    """A payload too large to return even alone, as several subscription payloads (same envelope,
    consecutive runs of its log events) each of whose output fits half the budget and each small
    enough for one PutRecordBatch record."""
    envelope = {key: value for key, value in payload.items() if key != "logEvents"}
    limit = budget // 2
    pieces: list[bytes] = []
    chunk: list[Any] = []
    size = 0
    for event, line in zip(payload["logEvents"], lines, strict=True):
        # Each event's output grows by 4/3 in base64; a chunk of one event is always allowed.
        cost = _base64_length(len(line) + 1)
        if chunk and size + cost > limit:
            pieces.extend(_compressed(envelope, chunk))
            chunk, size = [], 0
        chunk.append(event)
        size += cost
    if chunk:
        pieces.extend(_compressed(envelope, chunk))
    return pieces


def _compressed(envelope: Mapping[str, Any], events: list[Any]) -> list[bytes]:
    """The gzip'd payload of these events, halved again while it exceeds one Firehose record."""
    blob = gzip.compress(json.dumps({**envelope, "logEvents": events}).encode(), _GZIP_LEVEL)
    if len(blob) <= PUT_RECORD_MAX_BYTES or len(events) == 1:
        return [blob]
    middle = len(events) // 2
    return _compressed(envelope, events[:middle]) + _compressed(envelope, events[middle:])


def transform_records(records: Iterable[Mapping[str, Any]], *, mapper: Mapper = to_ocsf,
                      response_budget: int = RESPONSE_BUDGET_BYTES,
                      source: PayloadSource | None = None) -> TransformResult:
    """The outputs for a batch of Firehose records, in order, one per record; no AWS call.

    With `source`, a data payload that does not name the stream's account as `owner` and the
    stream's filter among its `subscriptionFilters` is not mapped: its lines are forwarded as
    unmapped lines are (redacted), and the record is counted in `foreign_records` (ForeignRecords,
    which pages critical). A tripwire for a careless forger, not a control: both values are
    public, and a payload that copies them is mapped. Who may firehose:PutRecord on the stream is
    the control (docs/known-gaps.md).

    Records that do not fit `response_budget` come back `Dropped` and are listed in
    `reingest`; the caller puts them back into the stream (and turns the ones it cannot into
    ProcessingFailed, see `apply_reingest_failures`). Raises TransformError only for a record
    without a usable recordId, which no output could answer.
    """
    batch = list(records)
    ids: list[str] = []
    for record in batch:
        record_id = record.get("recordId") if isinstance(record, Mapping) else None
        if not isinstance(record_id, str) or not record_id:
            raise TransformError("a Firehose record has no recordId: the batch cannot be answered")
        ids.append(record_id)
    stats = TransformStats()
    outputs: list[dict[str, str]] = []
    reingest: list[Reingest] = []
    # Every record gets an output whatever happens: reserve their envelopes first, so the budget
    # check below is exact and each record afterwards adds only its data.
    reserved = _ENVELOPE_BYTES + sum(_record_cost(record_id, 0) for record_id in ids)
    used = reserved
    for record_id, record in zip(ids, batch, strict=True):
        stats.records += 1
        data = record.get("data")
        data = data if isinstance(data, str) else ""
        payload = _decode(data)
        if payload is None or payload["messageType"] not in (DATA_MESSAGE, CONTROL_MESSAGE):
            # Not a subscription payload, or a message type this code does not know: keep it,
            # visibly (the backup bucket's processing-failed prefix).
            stats.undecodable_records += 1
            stats.failed_records += 1
            outputs.append({"recordId": record_id, "result": FAILED, "data": data})
            used += len(data)
            continue
        if payload["messageType"] == CONTROL_MESSAGE:
            stats.control_records += 1
            outputs.append({"recordId": record_id, "result": DROPPED, "data": ""})
            continue
        log_group = payload.get("logGroup")
        record_mapper = mapper
        if source is not None and not source.admits(payload):
            stats.foreign_records += 1
            record_mapper = _maps_nothing
        lines = ocsf_lines((event["message"] for event in payload["logEvents"]),
                           log_group if isinstance(log_group, str) else "", stats, record_mapper)
        if not lines:
            stats.empty_records += 1
            outputs.append({"recordId": record_id, "result": DROPPED, "data": ""})
            continue
        body = b"\n".join(lines) + b"\n"
        size = _base64_length(len(body))
        if used + size > response_budget:
            alone = reserved + size > response_budget
            payloads = (_split_payloads(payload, lines, response_budget - reserved) if alone
                        else [codec.b64decode(data)])
            reingest.append(Reingest(record_id, data, payloads))
            stats.reingested_records += 1
            outputs.append({"recordId": record_id, "result": DROPPED, "data": ""})
            continue
        outputs.append({"recordId": record_id, "result": OK, "data": codec.b64encode(body)})
        used += size
    stats.response_bytes = used
    return TransformResult(outputs, stats, reingest)


def _put_batches(entries: Sequence[tuple[int, bytes]]) -> Iterable[list[tuple[int, bytes]]]:
    """Entries (owner index, blob) in PutRecordBatch-sized groups (count and bytes)."""
    batch: list[tuple[int, bytes]] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) == PUT_BATCH_MAX_RECORDS or size + len(entry[1]) > PUT_BATCH_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += len(entry[1])
    if batch:
        yield batch


def reingest_records(client: FirehoseClient, stream_name: str, items: Sequence[Reingest], *,
                     attempts: int = REINGEST_ATTEMPTS,
                     sleep: Callable[[float], None] = time.sleep,
                     seconds_left: Callable[[], float] | None = None) -> set[str]:
    """Put every payload of `items` into the stream; return the recordIds of which at least one
    payload was still refused after `attempts` rounds (FailedPutCount entries, or a call that
    failed as a whole after the client's own retries), or not sent because fewer than
    REINGEST_STOP_SECONDS of the invocation were left (`seconds_left`): answering in time with
    those records failed beats a timeout, which would make Firehose redo the whole batch."""
    pending = [(index, blob) for index, item in enumerate(items) for blob in item.payloads]
    for attempt in range(attempts):
        if not pending:
            break
        if attempt:
            sleep(REINGEST_BACKOFF_SECONDS * 2 ** (attempt - 1))
        refused: list[tuple[int, bytes]] = []
        for batch in _put_batches(pending):
            if seconds_left is not None and seconds_left() < REINGEST_STOP_SECONDS:
                refused.extend(batch)
                continue
            try:
                answer = client.put_record_batch(DeliveryStreamName=stream_name,
                                                 Records=[{"Data": blob} for _, blob in batch])
                responses = answer.get("RequestResponses") or []
            except Exception:  # noqa: BLE001 - botocore's errors after its retries: retry here, bounded
                refused.extend(batch)
                continue
            if answer.get("FailedPutCount", 0) == 0 and len(responses) == len(batch):
                continue
            # The responses are in the request's order; an entry with an ErrorCode was refused
            # (and a short answer refuses the rest: they were not acknowledged).
            for position, entry in enumerate(batch):
                response = responses[position] if position < len(responses) else {"ErrorCode": "missing"}
                if response.get("ErrorCode"):
                    refused.append(entry)
        pending = refused
    return {items[index].record_id for index, _ in pending}


def apply_reingest_failures(result: TransformResult, failed_ids: set[str]) -> None:
    """Records that could not be re-ingested go back as ProcessingFailed with their original data
    (the backup bucket keeps them); counted."""
    if not failed_ids:
        return
    originals = {item.record_id: item.original for item in result.reingest}
    for output in result.outputs:
        record_id = output["recordId"]
        if record_id in failed_ids:
            output["result"] = FAILED
            output["data"] = originals[record_id]
            result.stats.response_bytes += len(output["data"])
    result.stats.reingest_failed_records += len(failed_ids)
    result.stats.reingested_records -= len(failed_ids)
    result.stats.failed_records += len(failed_ids)


def stream_name_from_arn(arn: str) -> str:
    """`arn:<partition>:firehose:<region>:<account>:deliverystream/<name>` -> name."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "firehose" or not parts[5].startswith("deliverystream/"):
        raise TransformError(f"deliveryStreamArn {arn!r} is not a Firehose delivery stream ARN")
    return parts[5].removeprefix("deliverystream/")


def metric_line(stats: TransformStats, stream_name: str, timestamp_ms: int) -> str:
    """One CloudWatch embedded metric format line ("Specification: Embedded metric format",
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
    Lambda sends its output lines to CloudWatch Logs, which extracts the metrics from them."""
    metrics = stats.as_metrics()
    document: dict[str, Any] = {
        "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
            "Namespace": METRIC_NAMESPACE, "Dimensions": [["DeliveryStream"]],
            "Metrics": [{"Name": name, "Unit": "Bytes" if name == "ResponseBytes" else "Count"}
                        for name in metrics],
        }]},
        "DeliveryStream": stream_name,
        # Not a metric, a property of the log line: which fast libraries did the work (the function
        # ships orjson and pybase64; an empty list means the packaging failed and the transform
        # runs on the standard library, slower but the same, docs/siem-transform.md).
        "FastLibraries": list(codec.fast_libraries()),
    }
    document.update(metrics)
    return json.dumps(document, separators=(",", ":"))


def build_client(region: str) -> FirehoseClient:
    import boto3  # imported here: the pure transform (and the benchmark) never needs it

    from ztai_runtime.retries import retry_config
    return boto3.client("firehose", region_name=region or None,
                        config=retry_config(REINGEST_CLIENT_ATTEMPTS))


def process(event: Any, *, client_factory: Callable[[str], FirehoseClient] | None = None,
            sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.time,
            seconds_left: Callable[[], float] | None = None,
            response_budget: int | None = None) -> tuple[dict[str, Any], TransformStats]:
    """The handler's work with its dependencies injectable: the response and the counters."""
    if not isinstance(event, Mapping) or not isinstance(event.get("records"), list):
        raise TransformError("the event is not a Firehose transformation batch (no records list)")
    arn = event.get("deliveryStreamArn")
    arn = arn if isinstance(arn, str) else ""
    stream_name = stream_name_from_arn(arn) if arn else ""
    # The stream's own account and name, from its ARN: what its subscriptions' payloads carry.
    source = PayloadSource(arn.split(":")[4], stream_name) if stream_name else None
    result = transform_records(event["records"], response_budget=response_budget
                               if response_budget is not None else RESPONSE_BUDGET_BYTES, source=source)
    if result.reingest:
        if not stream_name:
            failed = {item.record_id for item in result.reingest}
        else:
            region = event.get("region")
            region = region if isinstance(region, str) and region else arn.split(":")[3]
            client = (client_factory or build_client)(region)
            failed = reingest_records(client, stream_name, result.reingest, sleep=sleep,
                                      seconds_left=seconds_left)
        apply_reingest_failures(result, failed)
    sys.stdout.write(metric_line(result.stats, stream_name, int(clock() * 1000)) + "\n")
    sys.stdout.flush()
    if result.stats.response_bytes > RESPONSE_LIMIT_BYTES:
        # Only when many re-ingestions failed at once: failing the invocation makes Firehose retry
        # it and then back the whole batch up, which loses nothing (the metric line is out).
        raise TransformError(f"the response would be {result.stats.response_bytes} bytes, over "
                             f"Lambda's {RESPONSE_LIMIT_BYTES}")
    return {"records": result.outputs}, result.stats


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (Firehose data transformation)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    response, _ = process(event, seconds_left=(lambda: remaining() / 1000) if callable(remaining) else None)
    return response
