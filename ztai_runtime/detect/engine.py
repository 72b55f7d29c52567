"""The detection engine: events in, findings out, one finding per burst.

`Engine(detectors, allow=...)` feeds each event, in event-time order, to every detector (the Sigma
rules, the behavioural models, the model-extraction model), each of which returns `Signal`s and
learns from the event. Signals with the same (rule, principal, group) whose events lie within
`burst_gap_ms` of each other make one burst, and one burst makes one `Finding`, which lists the ids
of every event that raised a signal in it (not one sample). A burst ends when no signal of it has
arrived for `burst_gap_ms` of event time.

The same engine runs in `ztai detect` (files; `finish()` at the end) and in the stream function
(`ztai_runtime.detect.stream`; `close_idle(now)` on each invocation, state carried by `to_state()`
and `Engine.restore`). `process` returns the findings an event *opened*, so a stream can alert on
the first event of a burst without waiting for its end; the finding then grows until it closes.

OCSF records the SIEM transform wrote keep the original record in `raw_data`: the engine unwraps
them, so one rule set reads CloudTrail from the trail's files and from the SIEM alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ztai_runtime.detect.allowlist import AllowList
from ztai_runtime.detect.signals import Signal, principal_of, severity_rank
from ztai_runtime.detect.sources import Event, iso, record_kind

# A burst ends after an hour of event time without a signal of it: a person's session of bulk reads
# is one finding, the same thing the next morning is another.
BURST_GAP_MS = 3_600_000
# The most event ids one finding lists in the stream function's state and its OCSF finding. The CLI
# keeps every id (the issue: "all of them, not one sample"); a stream finding that reaches this cap
# says how many ids it dropped (`eventCount` is always the full count).
STREAM_MAX_IDS = 10_000
STATE_VERSION = 1
# The most characters of a finding's reason, principal and group its JSON form carries: they come
# from record strings (a bucket or key name, a session name), which a writer of records chooses, and
# a finding is an alert (an EventBridge entry is at most 256 KB: "Calculating Amazon EventBridge
# PutEvents event entry size", EventBridge User Guide), not a copy of the record.
TEXT_LIMIT = 500


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text`, or its first `limit` characters with an ellipsis and its full length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


class Detector(Protocol):
    """A rule set or a model: looks at one event and learns from it."""

    name: str

    def observe(self, event: Event, principal: str) -> list[Signal]:
        """The signals this event raises (after learning from it, or before: the detector's
        choice, documented by it)."""
        ...

    def to_state(self) -> dict[str, Any]:
        """What the detector has learned, as JSON-safe data its own `from_state` reads back."""
        ...


@dataclass(slots=True)
class Finding:
    """One burst of signals of one rule (or model) for one principal."""

    rule: str
    principal: str
    group: str
    severity: str
    reason: str
    technique: str | None
    first_ms: int
    last_ms: int
    event_ids: list[str] = field(default_factory=list)
    event_count: int = 0
    dropped_ids: int = 0
    reasons: int = 1

    @property
    def uid(self) -> str:
        """Stable over runs and invocations: the rule, principal, group and first event."""
        text = "\x1f".join((self.rule, self.principal, self.group, str(self.first_ms),
                            self.event_ids[0] if self.event_ids else ""))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        """The finding as `ztai detect --json` prints it (reason, principal and group clipped to
        TEXT_LIMIT characters)."""
        out: dict[str, Any] = {
            "id": self.uid, "rule": self.rule, "principal": clip(self.principal),
            "severity": self.severity, "reason": clip(self.reason),
            "firstSeen": iso(self.first_ms), "lastSeen": iso(self.last_ms),
            "eventIds": list(self.event_ids), "eventCount": self.event_count,
            "attack": self.technique}
        if self.group:
            out["group"] = clip(self.group)
        if self.dropped_ids:
            out["eventIdsDropped"] = self.dropped_ids
        return out

    def to_state(self) -> dict[str, Any]:
        return {"rule": self.rule, "principal": self.principal, "group": self.group,
                "severity": self.severity, "reason": self.reason, "technique": self.technique,
                "first": self.first_ms, "last": self.last_ms, "ids": self.event_ids,
                "count": self.event_count, "dropped": self.dropped_ids, "reasons": self.reasons}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Finding:
        return cls(rule=data["rule"], principal=data["principal"], group=data["group"],
                   severity=data["severity"], reason=data["reason"], technique=data["technique"],
                   first_ms=int(data["first"]), last_ms=int(data["last"]),
                   event_ids=list(data["ids"]), event_count=int(data["count"]),
                   dropped_ids=int(data["dropped"]), reasons=int(data["reasons"]))


def unwrap(event: Event) -> Event:
    """An OCSF event the SIEM transform wrote carries its source record in `raw_data`: return that
    record as its own kind (same time and id), so the rules and models read one shape. An OCSF event
    without a readable source record stays as it is."""
    if event.kind != "ocsf":
        return event
    raw = event.record.get("raw_data")
    if not isinstance(raw, str):
        return event
    try:
        record = json.loads(raw)
    except ValueError:
        return event
    if not isinstance(record, dict):
        return event
    kind = record_kind(record)
    if kind is None or kind == "ocsf":
        return event
    uid = record.get("eventID") if kind == "cloudtrail" else record.get("requestId")
    return replace(event, kind=kind, record=record,
                   uid=uid if isinstance(uid, str) and uid else event.uid)


class Engine:
    """Runs detectors over events in time order and groups their signals into findings."""

    def __init__(self, detectors: Sequence[Detector], *, allow: AllowList | None = None,
                 burst_gap_ms: int = BURST_GAP_MS, max_ids: int | None = None) -> None:
        self.detectors = list(detectors)
        self.allow = allow or AllowList(())
        self.burst_gap_ms = burst_gap_ms
        self.max_ids = max_ids
        self.open: dict[tuple[str, str, str], Finding] = {}
        self.events = 0
        self.last_ms = 0
        self.closed: list[Finding] = []

    def process(self, event: Event) -> list[Finding]:
        """Feed one event (in time order); returns the findings it opened (first of a burst)."""
        if event.kind == "ocsf":  # only OCSF events are unwrapped: no call for the others
            event = unwrap(event)
        self.events += 1
        if event.time_ms > self.last_ms:
            self.last_ms = event.time_ms
        principal = principal_of(event)
        opened: list[Finding] = []
        for detector in self.detectors:
            signals = detector.observe(event, principal)
            if not signals:  # most events raise nothing: no loop set up for them
                continue
            for signal in signals:
                if self.allow.suppresses(signal, event.time_ms):
                    continue
                finding = self._add(signal, event)
                if finding is not None:
                    opened.append(finding)
        return opened

    def _add(self, signal: Signal, event: Event) -> Finding | None:
        key = (signal.rule, signal.principal, signal.group)
        finding = self.open.get(key)
        closed: Finding | None = None
        if finding is not None and event.time_ms - finding.last_ms > self.burst_gap_ms:
            closed, finding = finding, None
            self.closed.append(closed)
        if finding is None:
            finding = Finding(rule=signal.rule, principal=signal.principal, group=signal.group,
                              severity=signal.severity, reason=signal.reason,
                              technique=signal.technique, first_ms=event.time_ms,
                              last_ms=event.time_ms)
            self.open[key] = finding
            self._append_id(finding, event.uid)
            return finding
        finding.last_ms = max(finding.last_ms, event.time_ms)
        if severity_rank(signal.severity) > severity_rank(finding.severity):
            finding.severity = signal.severity
            finding.reason = signal.reason
        finding.technique = finding.technique or signal.technique
        if not finding.event_ids or finding.event_ids[-1] != event.uid:
            self._append_id(finding, event.uid)
        return None

    def _append_id(self, finding: Finding, uid: str) -> None:
        finding.event_count += 1
        if self.max_ids is not None and len(finding.event_ids) >= self.max_ids:
            finding.dropped_ids += 1
        else:
            finding.event_ids.append(uid)

    def take_closed(self) -> list[Finding]:
        """Findings whose burst ended because a later signal of the same key came too late."""
        closed, self.closed = self.closed, []
        return closed

    def close_idle(self, now_ms: int) -> list[Finding]:
        """End every burst with no signal for `burst_gap_ms` before `now_ms`, and every burst whose
        last event lies more than `burst_gap_ms` after `now_ms` (a record dated in the future, forged
        or from a wrong clock, would otherwise keep its burst open for ever and swallow every later
        signal of its key; a clock a little ahead keeps its burst); return them with any closed by
        `process` since the last call."""
        done = self.take_closed()
        for key, finding in list(self.open.items()):
            if abs(now_ms - finding.last_ms) > self.burst_gap_ms:
                done.append(self.open.pop(key))
        return done

    def finish(self) -> list[Finding]:
        """End every burst (the end of the input); return every finding not yet returned, ordered by
        first event time."""
        done = self.take_closed() + list(self.open.values())
        self.open.clear()
        return sorted(done, key=lambda f: (f.first_ms, f.rule, f.principal, f.group))

    def to_state(self) -> dict[str, Any]:
        """The open bursts and every detector's learned state, JSON-safe."""
        return {"version": STATE_VERSION, "events": self.events, "lastMs": self.last_ms,
                "open": [f.to_state() for f in self.open.values()],
                "closed": [f.to_state() for f in self.closed],
                "detectors": {d.name: d.to_state() for d in self.detectors}}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back the open bursts and counters of `to_state()` (the detectors are restored by
        whoever built them, from `state["detectors"][name]`)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"detection state version {state.get('version')!r} is not "
                             f"{STATE_VERSION}: start from no state or convert it")
        self.events = int(state.get("events", 0))
        self.last_ms = int(state.get("lastMs", 0))
        for data in state.get("open", []):
            finding = Finding.from_state(data)
            self.open[(finding.rule, finding.principal, finding.group)] = finding
        self.closed.extend(Finding.from_state(d) for d in state.get("closed", []))


def run(events: Iterable[Event], engine: Engine) -> list[Finding]:
    """Every finding of `events`, bursts closed at the end."""
    for event in events:
        engine.process(event)
    return engine.finish()
