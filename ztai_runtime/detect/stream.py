"""The detection stream function: the detection engine over the log groups the SIEM stream carries.

CloudWatch Logs invokes `handler` asynchronously through a second subscription filter on each log
group the SIEM stream subscribes (a log group may have two; components/detection.py). The event is
`{"awslogs": {"data": <base64 of a gzip'd subscription payload>}}` ("Using CloudWatch Logs
subscription filters", CloudWatch Logs User Guide): `{"owner", "logGroup", "logStream",
"subscriptionFilters", "messageType", "logEvents": [{"id", "timestamp", "message"}]}`, decoded by
the SIEM transform's own decoder (`ztai_runtime.siem.firehose.decode_payload`: the same size bound
on the gzip, the same checks). What one invocation does (docs/detection-stream.md):

1. A CONTROL_MESSAGE (CloudWatch Logs checking the destination) is logged and ignored.
2. The learned state is read: one gzip'd JSON object in the state bucket (`STATE_BUCKET`,
   `STATE_KEY`), with its ETag.
3. Each log event's message is parsed as JSON and read by
   `ztai_runtime.detect.sources.event_from_record` (CloudTrail, the SIEM's OCSF, the gateway's
   access log, inference and JIT events). A message that is not a readable record (a flow-log line,
   Lambda's START/END lines, a JSON line of another kind) is counted and skipped; the first
   `LOGGED_SKIPS` of an invocation are logged one JSON line each (log group, event id, why), the
   rest counted in the summary line. It never fails the batch. A readable record is refused the
   same way (counted also as `refused`, logged `detect.refused`) when its log group may not carry
   its kind (SOURCE_KINDS) or its time lies outside [now - MAX_PAST_MS, now + FUTURE_SKEW_MS]:
   lines forged into one subscribed group are not believed as another source's.
4. An event whose CloudWatch Logs id is among the recent ids the state keeps (`RECENT_IDS`, as
   64-bit digests) was processed already: it is skipped and counted, so a replayed payload (the
   asynchronous retry of a failed invocation) is not learned or counted twice.
5. The events go through the engine (`ztai_runtime.detect.build.build_engine`) in event-time order;
   bursts idle for the engine's burst gap are closed (`Engine.close_idle`, wall-clock now).
6. Each finding the batch opened goes to the EventBridge bus (`EVENT_BUS_NAME`; Source
   `zero-trust-ai.detect`, DetailType `Detection Finding`, Detail the finding's JSON form,
   `Finding.to_json`), and to the SIEM as an OCSF 1.7.0 Detection Finding (class 2004, activity Create); each
   finding closed goes to the SIEM as the same finding's Update, with every event id it kept. The
   OCSF findings are JSON lines on standard output: the function's own log group, which the SIEM
   stream subscribes (and this function does not: that would be a loop). Not PutRecordBatch on
   the SIEM's Firehose stream: its transform reads only CloudWatch Logs payloads of its own
   subscriptions, and refuses anything else as forged.
7. The state is written back with a conditional write: If-Match on the ETag read, or If-None-Match
   `*` when there was none ("Add preconditions to S3 operations with conditional requests", Amazon
   S3 User Guide). Another invocation's write in between fails this one (`StateConflictError`), which
   Lambda's asynchronous retry then redoes from the state that won: nothing learned is lost
   silently. Outputs are sent before the state is written, so a retried batch may send a finding
   again, with the same `id` (at least once; the playbooks and the SIEM deduplicate on it); a batch
   whose outputs failed is never marked processed. Reserved concurrency 1 makes a conflict rare.

Configuration (environment variables, checked before any AWS call; `ConfigError` names the variable,
the value and what is allowed): STATE_BUCKET, EVENT_BUS_NAME (required), STATE_KEY (default
`state/detection.json.gz`), ALLOW_LIST (JSON: the allow-list file's content, default none),
CONTEXT (JSON object of placeholder name -> non-empty list of strings, default none), SOURCE_KINDS
(JSON list of [log group pattern, [kinds]], built by the component; default: no group may carry
CloudTrail, gateway or inference records).

boto3 and the standard library (plus the optional fast codec); no pulumi.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ztai_runtime.detect.allowlist import AllowList, AllowListError
from ztai_runtime.detect.build import build_engine
from ztai_runtime.detect.engine import STREAM_MAX_IDS, Engine, Finding, clip, unwrap
from ztai_runtime.detect.rules import PLACEHOLDERS
from ztai_runtime.detect.signals import SEVERITIES
from ztai_runtime.detect.sources import KINDS, Event, InputError, event_from_record
from ztai_runtime.siem import codec
from ztai_runtime.siem.firehose import CONTROL_MESSAGE, DATA_MESSAGE, decode_payload
from ztai_runtime.siem.ocsf import DETECTION_FINDING, OCSF_VERSION

# boto3 clients are generated at runtime and carry no static types; this names the boundary.
S3Client = Any
EventsClient = Any
EngineBuilder = Callable[..., Engine]

SOURCE = "zero-trust-ai.detect"
DETAIL_TYPE = "Detection Finding"
STATE_FORMAT = "zero-trust-ai/detect-stream-state"
STATE_VERSION = 1
DEFAULT_STATE_KEY = "state/detection.json.gz"
# How many recent CloudWatch Logs event ids the state keeps to recognise a replay: the asynchronous
# retries of one failed invocation come within minutes (Lambda retries twice, up to the maximum
# event age the component sets), and a busy stack writes thousands of events a minute. As 64-bit
# digests (16 hex digits each), the window costs about 1.7 MB of JSON, a fraction once gzip'd.
RECENT_IDS = 100_000
LOGGED_SKIPS = 20
# PutEvents takes at most 10 entries per call ("PutEvents", Amazon EventBridge API reference).
PUT_EVENTS_BATCH = 10
PUT_EVENTS_ATTEMPTS = 4
PUT_EVENTS_BACKOFF_SECONDS = 0.5
# Event ids per OCSF finding line: a CloudWatch Logs event is at most 1 MB ("CloudWatch Logs
# quotas"), and Lambda splits longer lines; a finding with more ids is sent as several Update lines
# of the same finding_info.uid, each with a slice of related_events and the full count. A slice also
# stops at OCSF_LINE_ID_BYTES of ids, so a line stays well under 256 KB whatever the ids' length.
OCSF_IDS_PER_LINE = 2_000
OCSF_LINE_ID_BYTES = 128 * 1024
# An event id as the outputs carry it: CloudTrail's are 36 characters; a longer one came from a
# record's writer and is clipped (the finding keeps it whole in the state).
ID_LIMIT = 128
# Event ids in the EventBridge entry (at most 256 KB: "Calculating Amazon EventBridge PutEvents event
# entry size", EventBridge User Guide): the first ones, for the playbook to start from; every id
# reaches the SIEM in the OCSF finding, and `eventIdsDropped` says how many the entry left out.
EVENT_BRIDGE_MAX_IDS = 100
MAX_STATE_BYTES = 256 * 1024 * 1024
# Which log group may carry which kind of record. Anyone who may write to a subscribed log group
# (root on an enclave parent writes the inference events group) could otherwise write lines shaped
# like CloudTrail or the gateway's access log and have them believed. SOURCE_KINDS (built by
# components/detection.py) maps log group name patterns (fnmatch; the first that matches wins) to
# the kinds their records may be; a group no pattern matches may carry only UNMATCHED_KINDS. OCSF
# records are judged by the kind of the record they wrap (the engine unwraps them).
UNMATCHED_KINDS: frozenset[str] = frozenset({"ocsf", "jit"})
MAX_SOURCE_PATTERNS = 50
# Event times the function believes. Ahead of its clock: at most FUTURE_SKEW_MS (clocks differ a
# little; a record dated further ahead would keep its burst open and swallow later signals). Behind
# it: at most the function's maximum event age (components/detection.py MAX_EVENT_AGE_SECONDS: an
# invocation may be retried that long) plus CloudTrail's delivery lag (the CloudTrail FAQ: log files
# are delivered within about 5 minutes of an API call on average, not guaranteed; the copy to
# CloudWatch Logs adds a little; an hour is a generous bound). Older records would be learned as if
# they were now, a way to poison the models' normal.
FUTURE_SKEW_MS = 15 * 60_000
MAX_EVENT_AGE_MS = 6 * 3_600_000
DELIVERY_LAG_MS = 3_600_000
MAX_PAST_MS = MAX_EVENT_AGE_MS + DELIVERY_LAG_MS

FINDINGS_CATEGORY = 2
ACTIVITY_CREATE, ACTIVITY_UPDATE = 1, 2
_ACTIVITY_NAMES = {ACTIVITY_CREATE: "Create", ACTIVITY_UPDATE: "Update"}
STATUS_NEW = 1
# Sigma's levels to OCSF severity_id (1 Informational .. 5 Critical).
_SEVERITY_IDS = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
# OCSF analytic.type_id: 1 Rule (a Sigma rule), 2 Behavioral (a model of normal).
_ANALYTIC_RULE, _ANALYTIC_BEHAVIORAL = 1, 2
PRODUCT = {"name": "zero-trust-ai", "vendor_name": "zero-trust-ai", "feature": {"name": "detect"}}

if set(_SEVERITY_IDS) != set(SEVERITIES):  # the two tables must name the same levels
    raise RuntimeError(f"stream severities {sorted(_SEVERITY_IDS)} differ from {sorted(SEVERITIES)}")


class ConfigError(ValueError):
    """The function's environment is wrong: names the variable, its value and what is allowed."""


class StateError(ValueError):
    """The state object cannot be read back: names the bucket and key and the way out."""


class StateConflictError(RuntimeError):
    """Another invocation wrote the state after this one read it; the retry redoes the batch."""


class PublishError(RuntimeError):
    """EventBridge kept refusing some findings; the retry redoes the batch."""


@dataclass(frozen=True)
class StreamConfig:
    state_bucket: str
    bus_name: str
    state_key: str = DEFAULT_STATE_KEY
    allow: AllowList = field(default_factory=lambda: AllowList(()))
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # (log group pattern, kinds it may carry), in order; the first match wins.
    source_kinds: tuple[tuple[str, frozenset[str]], ...] = ()

    def kinds_for(self, log_group: str) -> frozenset[str]:
        """The record kinds `log_group` may carry."""
        for pattern, kinds in self.source_kinds:
            if fnmatch.fnmatchcase(log_group, pattern):
                return kinds
        return UNMATCHED_KINDS


def parse_source_kinds(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """SOURCE_KINDS: a JSON list of [log group pattern, [kind, ...]]; ConfigError naming it."""
    allowed = f"a JSON list of [log group pattern, [kinds]] with kinds among {', '.join(KINDS)}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"SOURCE_KINDS is not JSON ({error.msg} at character {error.pos}): "
                          f"{allowed}") from None
    if not isinstance(data, list) or len(data) > MAX_SOURCE_PATTERNS:
        raise ConfigError(f"SOURCE_KINDS is not a list of at most {MAX_SOURCE_PATTERNS} entries: {allowed}")
    out: list[tuple[str, frozenset[str]]] = []
    for number, entry in enumerate(data, 1):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and entry[0].startswith("/") and isinstance(entry[1], list)
                and all(isinstance(k, str) and k in KINDS for k in entry[1])):
            raise ConfigError(f"SOURCE_KINDS: entry {number} {json.dumps(entry)[:120]} is not "
                              f"[\"/log/group/pattern\", [kinds]]: {allowed}")
        out.append((entry[0], frozenset(entry[1])))
    return tuple(out)


def config_from_environment(env: Mapping[str, str]) -> StreamConfig:
    """The configuration, every problem a ConfigError naming the variable."""
    def required(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            raise ConfigError(f"{name} is not set: the function needs it (docs/detection-stream.md)")
        return value

    bucket = required("STATE_BUCKET")
    bus = required("EVENT_BUS_NAME")
    key = env.get("STATE_KEY", "").strip() or DEFAULT_STATE_KEY
    if key.startswith("/") or len(key.encode()) > 1024:
        raise ConfigError(f"STATE_KEY {key!r}: an S3 object key of at most 1024 bytes, not starting with /")
    allow = AllowList(())
    allow_text = env.get("ALLOW_LIST", "").strip()
    if allow_text:
        try:
            allow = AllowList.parse(json.loads(allow_text), source="ALLOW_LIST")
        except json.JSONDecodeError as error:
            raise ConfigError(f"ALLOW_LIST is not JSON ({error.msg} at character {error.pos}): "
                              "the allow-list file's content as JSON") from None
        except AllowListError as error:
            raise ConfigError(str(error)) from None
    context: dict[str, tuple[str, ...]] = {}
    context_text = env.get("CONTEXT", "").strip()
    if context_text:
        try:
            data = json.loads(context_text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"CONTEXT is not JSON ({error.msg} at character {error.pos}): an object "
                              "of name -> list of strings") from None
        if not isinstance(data, dict):
            raise ConfigError(f"CONTEXT is a JSON {type(data).__name__}: an object of name -> list "
                              "of strings")
        for name, values in data.items():
            # Checked here, so a typo is a configuration error naming the variable, never taken for
            # a damaged state when the engine is built.
            if name not in PLACEHOLDERS:
                raise ConfigError(f"CONTEXT: {name[:80]!r} is no placeholder of the rules: one of "
                                  f"{', '.join(sorted(PLACEHOLDERS))}")
            if not isinstance(values, list) or not values or \
                    not all(isinstance(v, str) and v for v in values):
                raise ConfigError(f"CONTEXT: {name!r} must be a non-empty list of non-empty strings, "
                                  f"not {json.dumps(values)[:80]}")
            context[name] = tuple(values)
    source_text = env.get("SOURCE_KINDS", "").strip()
    source_kinds = parse_source_kinds(source_text) if source_text else ()
    return StreamConfig(state_bucket=bucket, bus_name=bus, state_key=key, allow=allow, context=context,
                        source_kinds=source_kinds)


# -- the state -----------------------------------------------------------------------------------

class StateStore:
    """One gzip'd JSON object in S3, written only if nobody wrote it since it was read."""

    def __init__(self, s3: S3Client, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key

    def load(self) -> tuple[dict[str, Any] | None, str | None]:
        """The state and its ETag, or (None, None) when there is none yet."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except self.s3.exceptions.NoSuchKey:
            return None, None
        body = response["Body"].read()
        where = f"s3://{self.bucket}/{self.key}"
        try:
            inflater = zlib.decompressobj(wbits=31)
            text = inflater.decompress(body, MAX_STATE_BYTES + 1)
            if len(text) > MAX_STATE_BYTES or not inflater.eof:
                raise ValueError("cut short or too large")
            state = json.loads(text)
        except (ValueError, zlib.error) as error:
            raise StateError(f"the detection state {where} is not gzip'd JSON ({error}): restore an "
                             "earlier version of the object (the bucket is versioned) or delete it to "
                             "start learning again") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or \
                state.get("version") != STATE_VERSION or not isinstance(state.get("engine"), dict) \
                or not isinstance(state.get("recentIds"), list):
            raise StateError(f"the detection state {where} is not format {STATE_FORMAT} version "
                             f"{STATE_VERSION} (engine and recentIds): restore an earlier version of "
                             "the object (the bucket is versioned) or delete it")
        return state, response["ETag"]

    def save(self, state: Mapping[str, Any], etag: str | None) -> str:
        body = gzip.compress(json.dumps(state, separators=(",", ":")).encode(), compresslevel=6, mtime=0)
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            response = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                          ContentType="application/json", ContentEncoding="gzip",
                                          **condition)
        except self.s3.exceptions.ClientError as error:
            # 412 PreconditionFailed: written since it was read; 409 ConditionalRequestConflict: a
            # concurrent conditional write to the same key (Amazon S3 User Guide, conditional writes).
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed",
                                                               "ConditionalRequestConflict"):
                raise StateConflictError(f"s3://{self.bucket}/{self.key} was written by another invocation "
                                    "after this one read it; the retry redoes the batch") from None
            raise
        return str(response["ETag"])


class RecentIds:
    """A bounded, insertion-ordered set of event-id digests (oldest dropped first)."""

    def __init__(self, digests: Iterable[str] = (), limit: int = RECENT_IDS) -> None:
        self.limit = limit
        self._ids: dict[str, None] = dict.fromkeys(digests)

    @staticmethod
    def digest(log_group: str, event_id: str) -> str:
        return hashlib.blake2b(f"{log_group}\x1f{event_id}".encode(), digest_size=8).hexdigest()

    def add(self, digest: str) -> bool:
        """False when `digest` is here already."""
        if digest in self._ids:
            return False
        self._ids[digest] = None
        while len(self._ids) > self.limit:
            del self._ids[next(iter(self._ids))]
        return True

    def to_list(self) -> list[str]:
        return list(self._ids)


# -- outputs -------------------------------------------------------------------------------------

def event_bridge_entry(finding: Finding, bus_name: str) -> dict[str, Any]:
    """The finding as one PutEvents entry: its JSON form with at most EVENT_BRIDGE_MAX_IDS ids, each
    clipped to ID_LIMIT characters (the text fields are clipped by `Finding.to_json`), so the entry
    stays far below EventBridge's 256 KB."""
    detail = finding.to_json()
    ids = detail["eventIds"]
    if len(ids) > EVENT_BRIDGE_MAX_IDS:
        detail["eventIdsDropped"] = detail.get("eventIdsDropped", 0) + len(ids) - EVENT_BRIDGE_MAX_IDS
    detail["eventIds"] = [clip(uid, ID_LIMIT) for uid in ids[:EVENT_BRIDGE_MAX_IDS]]
    return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "EventBusName": bus_name,
            "Detail": json.dumps(detail, separators=(",", ":"))}


def _id_slices(ids: Sequence[str]) -> list[list[str]]:
    """`ids` (clipped) in slices of at most OCSF_IDS_PER_LINE ids and OCSF_LINE_ID_BYTES of JSON."""
    slices: list[list[str]] = [[]]
    size = 0
    for uid in ids:
        uid = clip(uid, ID_LIMIT)
        cost = len(json.dumps(uid)) + 10  # {"uid":...},
        if slices[-1] and (len(slices[-1]) >= OCSF_IDS_PER_LINE or size + cost > OCSF_LINE_ID_BYTES):
            slices.append([])
            size = 0
        slices[-1].append(uid)
        size += cost
    return slices


def publish(client: EventsClient, entries: Sequence[dict[str, Any]], *,
            sleep: Callable[[float], None] = time.sleep) -> int:
    """PutEvents in batches of ten, retrying the entries refused (FailedEntryCount); PublishError
    when some are still refused after PUT_EVENTS_ATTEMPTS."""
    sent = 0
    for start in range(0, len(entries), PUT_EVENTS_BATCH):
        pending = list(entries[start:start + PUT_EVENTS_BATCH])
        for attempt in range(PUT_EVENTS_ATTEMPTS):
            response = client.put_events(Entries=pending)
            if not response.get("FailedEntryCount"):
                sent += len(pending)
                pending = []
                break
            # Results come in the order of the entries; a refused one has an ErrorCode.
            results = response.get("Entries", [])
            refused = [entry for entry, result in zip(pending, results, strict=False)
                       if result.get("ErrorCode")]
            errors = sorted({str(r.get("ErrorCode")) for r in results if r.get("ErrorCode")})
            sent += len(pending) - len(refused)
            pending = refused
            if attempt + 1 < PUT_EVENTS_ATTEMPTS:
                sleep(PUT_EVENTS_BACKOFF_SECONDS * 2 ** attempt)
        if pending:
            raise PublishError(f"EventBridge refused {len(pending)} finding(s) {PUT_EVENTS_ATTEMPTS} "
                               f"times ({', '.join(errors)}); the retry redoes the batch")
    return sent


def ocsf_findings(finding: Finding, activity: int, *, now_ms: int, region: str,
                  account: str) -> list[dict[str, Any]]:
    """The finding as OCSF 1.7.0 Detection Findings (class 2004): one, or one per slice of
    OCSF_IDS_PER_LINE event ids when it has more."""
    slices = _id_slices(finding.event_ids or [""])
    reason, principal = clip(finding.reason), clip(finding.principal)
    analytic = {"name": finding.rule, "uid": finding.rule,
                "type_id": _ANALYTIC_BEHAVIORAL if finding.rule.startswith("model:") else _ANALYTIC_RULE}
    info: dict[str, Any] = {
        "uid": finding.uid, "title": finding.rule, "desc": reason, "analytic": analytic,
        "first_seen_time": finding.first_ms, "last_seen_time": finding.last_ms,
        "related_events_count": finding.event_count, "product": PRODUCT}
    if finding.technique:
        technique, _, sub = finding.technique.partition(".")
        attack: dict[str, Any] = {"technique": {"uid": technique}}
        if sub:
            attack["sub_technique"] = {"uid": finding.technique}
        info["attacks"] = [attack]
    cloud: dict[str, Any] = {"provider": "AWS"}
    if region:
        cloud["region"] = region
    if account:
        cloud["account"] = {"uid": account}
    out = []
    for part, chunk in enumerate(slices):
        metadata = {"version": OCSF_VERSION, "product": PRODUCT, "profiles": ["cloud"],
                    "uid": f"{finding.uid}-{_ACTIVITY_NAMES[activity].lower()}-{part}"}
        event = {
            "class_uid": DETECTION_FINDING, "class_name": "Detection Finding",
            "category_uid": FINDINGS_CATEGORY, "category_name": "Findings",
            "activity_id": activity, "activity_name": _ACTIVITY_NAMES[activity],
            "type_uid": DETECTION_FINDING * 100 + activity,
            "severity_id": _SEVERITY_IDS[finding.severity], "severity": finding.severity.capitalize(),
            "status_id": STATUS_NEW, "status": "New", "time": now_ms,
            "start_time": finding.first_ms, "end_time": finding.last_ms, "count": finding.event_count,
            "message": reason,
            # Detection Finding has no actor of its own: whose behaviour it is, as its evidence.
            "evidences": [{"actor": {"user": {"name": principal}}}],
            "finding_info": {**info, "related_events": [{"uid": uid} for uid in chunk if uid]},
            "metadata": metadata, "cloud": cloud}
        out.append(event)
    return out


# -- one invocation ------------------------------------------------------------------------------

@dataclass
class StreamStats:
    events: int = 0
    records: int = 0
    replayed: int = 0
    unreadable: int = 0
    refused: int = 0
    opened: int = 0
    closed: int = 0
    published: int = 0
    control: int = 0


def _log(fields: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(fields, separators=(",", ":"), default=str) + "\n")


def restore_engine(config: StreamConfig, state: Mapping[str, Any] | None,
                   build: EngineBuilder | None = None) -> Engine:
    """The engine with what `state` (the state object, or None) learned; StateError naming the
    object and the way out when it cannot be restored."""
    # Looked up at the call: build_engine wires the detectors (tests pass their own).
    try:
        return (build or build_engine)(rules_ir=None, context=config.context, allow=config.allow,
                                       state=state["engine"] if state else None, max_ids=STREAM_MAX_IDS)
    except (ValueError, KeyError, TypeError) as error:
        # The state is checked where it is read (build_engine, each detector's from_state); a part
        # they do not check (the engine's counters and bursts) fails here as one of these.
        if state is None:
            raise
        raise StateError(f"the detection state s3://{config.state_bucket}/{config.state_key} cannot "
                         f"be restored ({type(error).__name__}: {error}): restore an earlier version "
                         "of the object (the bucket is versioned) or delete it") from None


def process(event: Any, *, config: StreamConfig, s3: S3Client, events_client: EventsClient,
            now_ms: int, region: str = "", account: str = "",
            build: EngineBuilder | None = None, emit: Callable[[Mapping[str, Any]], None] = _log,
            sleep: Callable[[float], None] = time.sleep) -> StreamStats:
    """The handler's work with its dependencies injectable."""
    stats = StreamStats()
    envelope = event.get("awslogs") if isinstance(event, Mapping) else None
    data = envelope.get("data") if isinstance(envelope, Mapping) else None
    payload = decode_payload(data) if isinstance(data, str) else None
    if payload is None:
        # Not a CloudWatch Logs subscription event at all: the invocation is unusable, retrying it
        # will not help; it fails and lands in the failure queue with the event.
        raise InputError("the event is not a CloudWatch Logs subscription event "
                         "({\"awslogs\": {\"data\": <base64 gzip JSON>}})")
    log_group = str(payload.get("logGroup", ""))
    if payload["messageType"] == CONTROL_MESSAGE:
        stats.control = 1
        emit({"event": "detect.control-message", "logGroup": log_group})
        return stats
    if payload["messageType"] != DATA_MESSAGE:
        raise InputError(f"messageType {payload['messageType']!r}: DATA_MESSAGE or CONTROL_MESSAGE")
    store = StateStore(s3, config.state_bucket, config.state_key)
    state, etag = store.load()
    recent = RecentIds(state.get("recentIds", []) if state else ())
    engine = restore_engine(config, state, build)
    ready: list[Event] = []
    may_carry = config.kinds_for(log_group)
    earliest, latest = now_ms - MAX_PAST_MS, now_ms + FUTURE_SKEW_MS
    for log_event in payload["logEvents"]:
        stats.events += 1
        event_id = str(log_event.get("id", ""))
        if not recent.add(RecentIds.digest(log_group, event_id)):
            stats.replayed += 1
            continue
        why = ""
        refused = False
        try:
            record = codec.loads(log_event["message"])
            item = unwrap(event_from_record(record, f"{log_group} event {event_id}"))
            if item.kind not in may_carry:
                refused = True
                why = (f"a {item.kind} record in {log_group}, which may carry only "
                       f"{', '.join(sorted(may_carry))} (SOURCE_KINDS): refused as forged")
            elif not earliest <= item.time_ms <= latest:
                refused = True
                why = (f"event time {item.time_ms} is outside what this invocation believes "
                       f"({earliest}..{latest}: at most {MAX_PAST_MS // 3_600_000} h old, "
                       f"{FUTURE_SKEW_MS // 60_000} min ahead): refused")
            else:
                ready.append(item)
        except InputError as error:
            why = str(error)
        except (ValueError, RecursionError) as error:  # not JSON (a flow-log line, Lambda's own lines)
            why = f"not a JSON record ({type(error).__name__})"
        if why:
            stats.unreadable += 1
            stats.refused += refused
            if stats.unreadable <= LOGGED_SKIPS:
                emit({"event": "detect.refused" if refused else "detect.skipped", "logGroup": log_group,
                      "eventId": event_id, "why": why[:300]})
    stats.records = len(ready)
    ready.sort(key=lambda e: e.time_ms)
    opened: list[Finding] = []
    for item in ready:
        opened.extend(engine.process(item))
    closed = engine.close_idle(now_ms)
    stats.opened, stats.closed = len(opened), len(closed)
    stats.published = publish(events_client, [event_bridge_entry(f, config.bus_name) for f in opened],
                              sleep=sleep)
    for finding, activity in [*((f, ACTIVITY_CREATE) for f in opened),
                              *((f, ACTIVITY_UPDATE) for f in closed)]:
        for line in ocsf_findings(finding, activity, now_ms=now_ms, region=region, account=account):
            emit(line)
    store.save({"format": STATE_FORMAT, "version": STATE_VERSION, "engine": engine.to_state(),
                "recentIds": recent.to_list()}, etag)
    emit({"event": "detect.batch", "logGroup": log_group, **stats.__dict__})
    return stats


_CONFIG: StreamConfig | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (CloudWatch Logs subscription, asynchronous)."""
    global _CONFIG
    import boto3  # here: the pure parts (and the tests of them) never need it

    from ztai_runtime.retries import retry_config
    if _CONFIG is None:
        try:
            _CONFIG = config_from_environment(os.environ)
        except ConfigError as error:
            _log({"event": "detect.config-error", "error": str(error)})
            raise
    arn = str(getattr(context, "invoked_function_arn", "") or "")
    parts = arn.split(":")
    region = os.environ.get("AWS_REGION", parts[3] if len(parts) > 4 else "")
    account = parts[4] if len(parts) > 4 else ""
    stats = process(event, config=_CONFIG,
                    s3=boto3.client("s3", region_name=region or None, config=retry_config(3)),
                    events_client=boto3.client("events", region_name=region or None,
                                               config=retry_config(3)),
                    now_ms=_now_ms(), region=region, account=account)
    return dict(stats.__dict__)
