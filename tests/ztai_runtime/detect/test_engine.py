"""The engine: one finding per burst (every event id listed), bursts split by silence, severity
raised by the worst signal, OCSF records unwrapped, state carried over, the allow-list applied."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ztai_runtime.detect.allowlist import AllowList
from ztai_runtime.detect.engine import BURST_GAP_MS, Engine, run, unwrap
from ztai_runtime.detect.signals import Signal
from ztai_runtime.detect.sources import Event, event_from_record, iso

ROLE = "arn:aws:iam::111122223333:role/curator"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class ByName:
    """Flags events whose eventName maps to a severity; the group is the bucket, if any."""

    name = "by-name"

    def __init__(self, severities: dict[str, str]) -> None:
        self.severities = severities

    def observe(self, event: Event, principal: str) -> list[Signal]:
        severity = self.severities.get(str(event.record.get("eventName")))
        if severity is None:
            return []
        group = str(event.record.get("requestParameters", {}).get("bucketName", ""))
        return [Signal("r", severity, principal, f"{event.record['eventName']} ({severity})",
                       technique="T1530", group=group)]

    def to_state(self) -> dict[str, Any]:
        return {}


def ct(name: str, at_ms: int, uid: str, *, bucket: str | None = None,
       session: str = "alice@example.com") -> Event:
    record: dict[str, Any] = {
        "eventVersion": "1.10", "eventSource": "s3.amazonaws.com", "eventName": name,
        "eventTime": iso(at_ms), "eventID": uid,
        "userIdentity": {"type": "AssumedRole",
                         "arn": f"arn:aws:sts::111122223333:assumed-role/curator/{session}"}}
    if bucket:
        record["requestParameters"] = {"bucketName": bucket}
    return event_from_record(record, "test")


def test_a_burst_is_one_finding_listing_every_event() -> None:
    events = [ct("GetObject", T0 + i * 60_000, f"e{i}") for i in range(5)]
    [finding] = run(events, Engine([ByName({"GetObject": "medium"})]))
    assert finding.event_ids == ["e0", "e1", "e2", "e3", "e4"]
    assert finding.event_count == 5
    assert finding.principal == f"{ROLE}/alice@example.com"
    assert (finding.first_ms, finding.last_ms) == (T0, T0 + 4 * 60_000)


def test_silence_longer_than_the_gap_starts_a_new_finding() -> None:
    events = [ct("GetObject", T0, "a"), ct("GetObject", T0 + BURST_GAP_MS, "b"),
              ct("GetObject", T0 + 2 * BURST_GAP_MS + 1, "c")]
    findings = run(events, Engine([ByName({"GetObject": "medium"})]))
    assert [f.event_ids for f in findings] == [["a", "b"], ["c"]]


def test_groups_and_principals_separate_findings() -> None:
    events = [ct("GetObject", T0, "a", bucket="data"), ct("GetObject", T0 + 1, "b", bucket="models"),
              ct("GetObject", T0 + 2, "c", bucket="data", session="bob@example.com")]
    findings = run(events, Engine([ByName({"GetObject": "medium"})]))
    assert sorted((f.group, f.principal.rsplit("/", 1)[1], tuple(f.event_ids)) for f in findings) == [
        ("data", "alice@example.com", ("a",)), ("data", "bob@example.com", ("c",)),
        ("models", "alice@example.com", ("b",))]


def test_the_worst_signal_sets_severity_and_reason() -> None:
    events = [ct("GetObject", T0, "a"), ct("PutBucketPolicy", T0 + 1, "b"), ct("GetObject", T0 + 2, "c")]
    [finding] = run(events, Engine([ByName({"GetObject": "low", "PutBucketPolicy": "high"})]))
    assert finding.severity == "high"
    assert finding.reason == "PutBucketPolicy (high)"
    assert finding.event_ids == ["a", "b", "c"]


def test_process_returns_the_findings_an_event_opens() -> None:
    engine = Engine([ByName({"GetObject": "low"})])
    assert [f.event_ids for f in engine.process(ct("GetObject", T0, "a"))] == [["a"]]
    assert engine.process(ct("GetObject", T0 + 1, "b")) == []
    assert engine.process(ct("ListBuckets", T0 + 2, "c")) == []
    reopened = engine.process(ct("GetObject", T0 + 2 * BURST_GAP_MS, "d"))
    assert [f.event_ids for f in reopened] == [["d"]]
    assert [f.event_ids for f in engine.close_idle(T0 + 2 * BURST_GAP_MS)] == [["a", "b"]]
    assert [f.event_ids for f in engine.close_idle(T0 + 4 * BURST_GAP_MS)] == [["d"]]
    assert engine.finish() == []


def test_close_idle_closes_a_burst_dated_after_now_so_later_signals_open_a_new_one() -> None:
    engine = Engine([ByName({"GetObject": "high"})])
    future = T0 + 365 * 24 * BURST_GAP_MS  # a record dated a year ahead (forged or a wrong clock)
    engine.process(ct("GetObject", future, "forged"))
    assert [f.event_ids for f in engine.close_idle(T0)] == [["forged"]]
    assert [f.event_ids for f in engine.process(ct("GetObject", T0 + 1, "real"))] == [["real"]]
    assert engine.close_idle(T0 + 2) == []  # a burst in the past within the gap stays open
    engine = Engine([ByName({"GetObject": "high"})])
    engine.process(ct("GetObject", T0 + BURST_GAP_MS, "ahead"))  # a clock an hour ahead at most
    assert engine.close_idle(T0) == []
    assert [f.event_ids for f in engine.close_idle(T0 - 1)] == [["ahead"]]


def test_max_ids_caps_the_list_and_counts_the_rest() -> None:
    events = [ct("GetObject", T0 + i, f"e{i}") for i in range(5)]
    [finding] = run(events, Engine([ByName({"GetObject": "low"})], max_ids=3))
    assert finding.event_ids == ["e0", "e1", "e2"]
    assert (finding.event_count, finding.dropped_ids) == (5, 2)
    assert finding.to_json()["eventIdsDropped"] == 2


def test_state_round_trips_through_json_and_the_burst_continues() -> None:
    engine = Engine([ByName({"GetObject": "low"})])
    engine.process(ct("GetObject", T0, "a"))
    state = json.loads(json.dumps(engine.to_state()))
    resumed = Engine([ByName({"GetObject": "low"})])
    resumed.restore(state)
    resumed.process(ct("GetObject", T0 + 1000, "b"))
    [finding] = resumed.finish()
    assert finding.event_ids == ["a", "b"]
    assert resumed.events == 2


def test_a_state_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="detection state version 99"):
        Engine([]).restore({"version": 99})


def test_ocsf_records_are_read_as_their_source_record() -> None:
    source = ct("GetObject", T0, "ct-1").record
    ocsf = {"class_uid": 6003, "time": T0, "metadata": {"version": "1.7.0", "uid": "ocsf-1"},
            "raw_data": json.dumps(source)}
    event = unwrap(event_from_record(ocsf, "siem"))
    assert (event.kind, event.uid, event.record["eventName"]) == ("cloudtrail", "ct-1", "GetObject")
    [finding] = run([event_from_record(ocsf, "siem")], Engine([ByName({"GetObject": "low"})]))
    assert finding.event_ids == ["ct-1"]


@pytest.mark.parametrize("raw", [None, "not json", "[1, 2]", '{"class_uid": 1}'])
def test_ocsf_records_without_a_readable_source_stay_ocsf(raw: str | None) -> None:
    ocsf: dict[str, Any] = {"class_uid": 6003, "time": T0,
                            "metadata": {"version": "1.7.0", "uid": "ocsf-1"}}
    if raw is not None:
        ocsf["raw_data"] = raw
    assert unwrap(event_from_record(ocsf, "siem")).kind == "ocsf"


def test_the_allow_list_suppresses_before_findings_form() -> None:
    allow = AllowList.parse({"allow": [{"principal": f"{ROLE}/alice@*", "rules": ["r"],
                                        "reason": "alice reads the data bucket all day by design"}]})
    events = [ct("GetObject", T0, "a"), ct("GetObject", T0 + 1, "b", session="bob@example.com")]
    [finding] = run(events, Engine([ByName({"GetObject": "low"})], allow=allow))
    assert finding.principal.endswith("bob@example.com")
    assert allow.counts == [1]


def test_finding_ids_are_stable_and_distinct() -> None:
    def ids() -> list[str]:
        events = [ct("GetObject", T0, "a"), ct("GetObject", T0 + 3 * BURST_GAP_MS, "b")]
        return [f.uid for f in run(events, Engine([ByName({"GetObject": "low"})]))]
    first = ids()
    assert first == ids()
    assert len(set(first)) == 2


def test_to_json_clips_long_text_and_says_how_long_it_was() -> None:
    from ztai_runtime.detect.engine import TEXT_LIMIT, Finding
    long = "b" * 250_000
    finding = Finding(rule="r", principal="p" * 600, group=long, severity="high",
                      reason=f"GetObject on {long}", technique=None, first_ms=T0, last_ms=T0,
                      event_ids=["e"], event_count=1)
    out = finding.to_json()
    assert out["group"] == "b" * TEXT_LIMIT + "… (250,000 characters)"
    assert out["principal"].startswith("p" * TEXT_LIMIT + "…") and "(600 characters)" in out["principal"]
    assert len(out["reason"]) < TEXT_LIMIT + 40 and out["reason"].endswith("(250,013 characters)")
    short = Finding(rule="r", principal="p", group="g", severity="high", reason="why", technique=None,
                    first_ms=T0, last_ms=T0)
    assert (short.to_json()["principal"], short.to_json()["group"], short.to_json()["reason"]) == \
        ("p", "g", "why")


def test_the_shipped_rules_are_compiled_once_per_context() -> None:
    """A warm stream function reuses the compiled rules (they learn nothing); another context
    compiles its own, and a bad context is still refused."""
    from ztai_runtime.detect.build import build_engine

    first, again = build_engine(), build_engine()
    assert first.detectors[0] is again.detectors[0]
    other = build_engine(context={"weights_key": ["arn:aws:kms:eu-west-1:111122223333:key/k"]})
    assert other.detectors[0] is not first.detectors[0]
    with pytest.raises(ValueError, match="unknown placeholder"):
        build_engine(context={"weight_key": ["x"]})
