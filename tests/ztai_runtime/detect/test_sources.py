"""Reading the detector's inputs: every file format and record kind, event-time order across files,
the time window, and a clear InputError for each bad input."""

from __future__ import annotations

import gc
import gzip
import json
import math
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.datasets import stratus_red_team_files
from ztai_runtime.detect import sources
from ztai_runtime.detect.sources import Event, InputError, read_events, record_kind
from ztai_runtime.siem import codec
from ztai_runtime.siem.ocsf import to_ocsf

T0 = 1_796_638_800_000  # 2026-12-07T10:20:00Z


def iso(ms: int) -> str:
    seconds, milli = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{milli:03d}Z"


def cloudtrail(event_id: str, ms: int, name: str = "GetObject") -> dict[str, Any]:
    return {"eventVersion": "1.09", "eventTime": iso(ms), "eventSource": "s3.amazonaws.com",
            "eventName": name, "eventID": event_id, "awsRegion": "eu-west-1"}


def gateway(request_id: str, ms: int) -> dict[str, Any]:
    return {"requestId": request_id, "requestTime": str(ms), "routeKey": "POST /predict",
            "status": "200", "sourceIp": "203.0.113.9"}


def inference(request_id: str, ms: int) -> dict[str, Any]:
    return {"event": "inference", "time": iso(ms), "requestId": request_id, "route": "/predict",
            "decision": "served", "clientId": "partner-a"}


def jit(ms: int) -> dict[str, Any]:
    return {"event": "jit.approved", "time": iso(ms), "request_id": "req-42",
            "by": "arn:aws:sts::111122223333:assumed-role/approver/alice"}


def ocsf_event(uid: str, ms: int) -> dict[str, Any]:
    event = to_ocsf(json.dumps(cloudtrail(uid, ms)))
    assert event is not None
    return event


def write(path: Path, text: str | bytes, *, gzipped: bool = False) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def uids(events: list[Event]) -> list[str]:
    return [event.uid for event in events]


# -- formats ----------------------------------------------------------------------------------------

FORMATS: dict[str, Callable[[list[dict[str, Any]]], str]] = {
    "cloudtrail": lambda records: json.dumps({"Records": records}),
    "array": json.dumps,
    "jsonl": jsonl,
    "pretty": lambda records: json.dumps({"Records": records}, indent=2),
}


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_reads_every_record_sorted(tmp_path: Path, fmt: str, gzipped: bool) -> None:
    records = [cloudtrail("c", T0 + 2000), cloudtrail("a", T0), cloudtrail("b", T0 + 1000)]
    path = write(tmp_path / "events.json", FORMATS[fmt](records), gzipped=gzipped)
    events = list(read_events([path]))
    assert uids(events) == ["a", "b", "c"]
    assert [event.time_ms for event in events] == [T0, T0 + 1000, T0 + 2000]
    assert all(event.kind == "cloudtrail" for event in events)
    assert events[0].record == records[1]


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    path = write(tmp_path / "no-suffix.json", json.dumps([cloudtrail("a", T0)]), gzipped=True)
    assert uids(list(read_events([path]))) == ["a"]
    # And a .gz name over plain JSON is read as it is.
    plain = write(tmp_path / "plain.json.gz", json.dumps([cloudtrail("b", T0)]))
    assert uids(list(read_events([plain]))) == ["b"]


def test_jsonl_allows_blank_lines_and_names_lines(tmp_path: Path) -> None:
    text = "\n" + json.dumps(gateway("g1", T0)) + "\n\n   \n" + json.dumps(jit(T0 + 5)) + "\n"
    path = write(tmp_path / "lines.jsonl", text)
    events = list(read_events([path]))
    assert [(event.kind, event.origin) for event in events] == [
        ("gateway", f"{path}:2"), ("jit", f"{path}:5")]


def test_single_object_file_and_bom(tmp_path: Path) -> None:
    pretty = write(tmp_path / "one.json", json.dumps(cloudtrail("a", T0), indent=2))
    bom = write(tmp_path / "bom.jsonl", "\ufeff" + jsonl([cloudtrail("b", T0 + 1)]))
    assert uids(list(read_events([pretty, bom]))) == ["a", "b"]


@pytest.mark.parametrize("text", ["", "  \n\n", "\ufeff\n", b""],
                         ids=["empty", "blanks", "bom", "empty-gzip"])
def test_empty_files_have_no_events(tmp_path: Path, text: str | bytes) -> None:
    path = write(tmp_path / "empty.json", text, gzipped=isinstance(text, bytes))
    assert list(read_events([path])) == []


# -- record kinds and ids ---------------------------------------------------------------------------

def test_every_kind_its_time_and_id(tmp_path: Path) -> None:
    records = [cloudtrail("ct-1", T0), ocsf_event("ct-2", T0 + 1), gateway("gw-1", T0 + 2),
               inference("inf-1", T0 + 3), jit(T0 + 4)]
    path = write(tmp_path / "mixed.jsonl", jsonl(records))
    events = list(read_events([path]))
    assert [(event.kind, event.uid, event.time_ms) for event in events] == [
        ("cloudtrail", "ct-1", T0), ("ocsf", "ct-2", T0 + 1), ("gateway", "gw-1", T0 + 2),
        ("inference", "inf-1", T0 + 3), ("jit", f"{path}:5", T0 + 4)]
    assert [event.record for event in events] == records


def test_gateway_time_as_a_number(tmp_path: Path) -> None:
    record = gateway("gw", T0) | {"requestTime": T0}
    assert [event.time_ms for event in read_events([write(tmp_path / "g.jsonl", jsonl([record]))])] == [T0]


def test_record_without_id_gets_synthetic_id(tmp_path: Path) -> None:
    record = cloudtrail("", T0)
    del record["eventID"]
    path = write(tmp_path / "ct.json", json.dumps({"Records": [cloudtrail("x", T0 + 9), record]}))
    events = list(read_events([path]))
    assert [(event.uid, event.origin) for event in events] == [
        (f"{path}:[1]", f"{path}:[1]"), ("x", f"{path}:[0]")]


def test_time_without_zone_is_utc(tmp_path: Path) -> None:
    record = cloudtrail("a", T0) | {"eventTime": "2026-12-07T10:20:00"}
    path = write(tmp_path / "a.json", json.dumps([record]))
    assert [event.time_ms for event in read_events([path])] == [T0]


def test_kind_agrees_with_the_siem_transform() -> None:
    # What the SIEM transform maps, the detector reads as the same kind.
    assert record_kind(cloudtrail("a", T0)) == "cloudtrail"
    assert record_kind(gateway("a", T0)) == "gateway"
    assert record_kind(inference("a", T0)) == "inference"
    assert record_kind(jit(T0)) == "jit"
    assert record_kind(ocsf_event("a", T0)) == "ocsf"
    assert record_kind({"query_name": "example.com", "srcaddr": "10.0.0.1"}) is None
    assert record_kind({"event": "rotation.done"}) is None


# -- order ------------------------------------------------------------------------------------------

def test_order_across_overlapping_files_with_ties(tmp_path: Path) -> None:
    # Two CloudTrail files overlapping in time, unsorted inside, with equal times.
    write(tmp_path / "b.json", json.dumps({"Records": [
        cloudtrail("b3", T0 + 3000), cloudtrail("b1", T0 + 1000), cloudtrail("same", T0 + 2000)]}))
    write(tmp_path / "a.json", json.dumps({"Records": [
        cloudtrail("a2", T0 + 2000), cloudtrail("same", T0 + 2000), cloudtrail("a0", T0)]}))
    events = list(read_events([tmp_path]))
    assert uids(events) == ["a0", "b1", "a2", "same", "same", "b3"]
    # Equal (time, id): the file first in name order comes first.
    assert [event.origin for event in events if event.uid == "same"] == [
        f"{tmp_path / 'a.json'}:[1]", f"{tmp_path / 'b.json'}:[2]"]
    # The same on every run.
    assert list(read_events([tmp_path])) == events


def test_equal_keys_keep_their_order_in_a_file(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.json", json.dumps([cloudtrail("d", T0) | {"n": n} for n in range(5)]))
    assert [event.record["n"] for event in read_events([path])] == [0, 1, 2, 3, 4]


def test_folders_are_read_recursively_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "logs" / "2026" / "12" / "b.json.gz", json.dumps([cloudtrail("x", T0)]), gzipped=True)
    write(tmp_path / "logs" / "2026" / "11" / "a.jsonl", jsonl([inference("x", T0)]))
    write(tmp_path / "logs" / "z.jsonl", jsonl([gateway("x", T0)]))
    events = list(read_events([tmp_path / "logs"]))
    # One time and one id: name order of the files decides.
    assert [event.kind for event in events] == ["inference", "cloudtrail", "gateway"]


def test_mixed_kinds_across_files_and_paths(tmp_path: Path) -> None:
    first = write(tmp_path / "trail" / "ct.json", json.dumps({"Records": [cloudtrail("ct", T0 + 30)]}))
    write(tmp_path / "apps" / "gw.jsonl", jsonl([gateway("gw", T0 + 10), inference("inf", T0 + 40)]))
    write(tmp_path / "apps" / "siem.jsonl.gz", jsonl([ocsf_event("oc", T0 + 20)]), gzipped=True)
    events = list(read_events([first, tmp_path / "apps"]))
    assert uids(events) == ["gw", "oc", "ct", "inf"]


def test_since_inclusive_until_exclusive(tmp_path: Path) -> None:
    path = write(tmp_path / "e.json", json.dumps([cloudtrail(str(n), T0 + n) for n in range(5)]))
    assert uids(list(read_events([path], since_ms=T0 + 1, until_ms=T0 + 3))) == ["1", "2"]
    assert uids(list(read_events([path], since_ms=T0 + 4))) == ["4"]
    assert uids(list(read_events([path], until_ms=T0 + 1))) == ["0"]


def test_spilled_runs_read_back_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "SPILL_CHUNK", 2)
    for index in range(6):
        write(tmp_path / f"f{index}.json", json.dumps(
            [cloudtrail(f"{index}-{n}", T0 + (n * 7 + index * 3) % 11) for n in range(4)]))
    expected = list(read_events([tmp_path]))
    spilled = list(read_events([tmp_path], buffer_events=3))
    assert spilled == expected
    assert [event.time_ms for event in spilled] == sorted(event.time_ms for event in spilled)
    assert len(spilled) == 24


def test_spilled_records_come_back_exactly_as_read(tmp_path: Path) -> None:
    # What JSON can hold that a lossy round trip would change: NaN and Infinity (the standard
    # library reads them), an integer wider than 64 bits, a lone surrogate, nesting, key order.
    text = ('[' + ", ".join(
        '{"eventVersion": "1.10", "eventSource": "s3.amazonaws.com", "eventName": "GetObject", '
        f'"eventTime": "2026-01-01T00:00:0{n}Z", "eventID": "e{n}", "z": 1, "a": [NaN, Infinity, '
        '123456789012345678901234567890, 1.5, true, null], "s": "\\ud800 \u00e9", "o": {"b": {"c": []}}}'
        for n in range(5)) + ']')
    path = write(tmp_path / "odd.json", text)
    expected = list(read_events([path]))
    spilled = list(read_events([path], buffer_events=1))
    # (NaN is unequal to itself: the records are compared as the standard library writes them.)
    assert [json.dumps(e.record) for e in spilled] == [json.dumps(e.record) for e in expected]
    for event in spilled:
        assert list(event.record) == list(expected[0].record)  # key order kept
        values = event.record["a"]
        assert math.isnan(values[0]) and values[1] == math.inf and values[2] == 123456789012345678901234567890
        assert event.record["s"] == "\ud800 \u00e9"
    assert [(e.time_ms, e.kind, e.uid, e.origin) for e in spilled] == \
        [(e.time_ms, e.kind, e.uid, e.origin) for e in expected]


def test_buffer_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="buffer_events must be at least 1"):
        list(read_events([tmp_path], buffer_events=0))


# -- bad input --------------------------------------------------------------------------------------

def bad(tmp_path: Path, data: str | bytes, *, name: str = "bad.json") -> str:
    path = write(tmp_path / name, data)
    with pytest.raises(InputError) as raised:
        list(read_events([path]))
    message = str(raised.value)
    assert message.startswith(str(path)), message
    assert "allowed" in message, message
    return message


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no-such\.json: no such file or folder"):
        list(read_events([tmp_path / "no-such.json"]))


def test_bad_gzip(tmp_path: Path) -> None:
    truncated = gzip.compress(json.dumps([cloudtrail("a", T0)]).encode())[:-12]
    assert "is not valid gzip" in bad(tmp_path, truncated)
    assert "is not valid gzip" in bad(tmp_path, b"\x1f\x8bnot gzip at all", name="b.gz")


def test_bad_utf8(tmp_path: Path) -> None:
    message = bad(tmp_path, b'{"eventVersion": "1.09"}\n{"eventName": "\xff"}\n', name="l.jsonl")
    assert ":2: not UTF-8" in message


def test_utf16_is_not_utf8(tmp_path: Path) -> None:
    assert "not UTF-8" in bad(tmp_path, json.dumps([cloudtrail("a", T0)]).encode("utf-16"))


def test_bad_json_document(tmp_path: Path) -> None:
    message = bad(tmp_path, '{"Records": [\n  {"eventVersion": "1.09",}\n]}')
    assert "not JSON at line 2" in message


def test_bad_json_array(tmp_path: Path) -> None:
    assert "not JSON at line 1" in bad(tmp_path, "[1, 2")


def test_bad_jsonl_line(tmp_path: Path) -> None:
    text = jsonl([cloudtrail("a", T0)]) + '{"eventVersion": \n' + jsonl([cloudtrail("b", T0)])
    message = bad(tmp_path, text, name="l.jsonl")
    assert ":2: not JSON at column" in message
    assert "one JSON object per line" in message


def test_not_a_recognised_format(tmp_path: Path) -> None:
    message = bad(tmp_path, "# README\nsome notes\n", name="README.md")
    assert "not a file of a recognised format" in message


def test_json_scalar_file(tmp_path: Path) -> None:
    assert "not a file of a recognised format" in bad(tmp_path, '"just a string"')


@pytest.mark.parametrize(("text", "what"), [
    ("[1]", "the record is a number, not a JSON object"),
    ('[["eventVersion"]]', "the record is a list, not a JSON object"),
    ('{"Records": [null]}', "the record is null, not a JSON object"),
])
def test_record_not_an_object(tmp_path: Path, text: str, what: str) -> None:
    assert f":[0]: {what}" in bad(tmp_path, text)


def test_jsonl_line_not_an_object(tmp_path: Path) -> None:
    text = jsonl([cloudtrail("a", T0)]) + "[1, 2]\n"
    assert ":2: the record is a list, not a JSON object" in bad(tmp_path, text, name="l.jsonl")


def test_records_not_a_list(tmp_path: Path) -> None:
    assert "its Records is an object, not a list of records" in bad(tmp_path, '{"Records": {"a": 1}}')


def test_record_of_no_known_kind(tmp_path: Path) -> None:
    message = bad(tmp_path, json.dumps([cloudtrail("a", T0), {"user": "x", "when": 1}]))
    assert ":[1]: a record of no known kind (its keys: user, when)" in message


def test_an_object_that_is_no_record(tmp_path: Path) -> None:
    assert ":1: a record of no known kind" in bad(tmp_path, '{"hello": "world"}')


@pytest.mark.parametrize(("record", "expected"), [
    (cloudtrail("a", T0) | {"eventTime": None}, "eventTime (missing) is not an ISO 8601 time"),
    (cloudtrail("a", T0) | {"eventTime": "yesterday"}, "eventTime 'yesterday' is not an ISO 8601 time"),
    (cloudtrail("a", T0) | {"eventTime": 1700000000}, "eventTime 1700000000 is not an ISO 8601 time"),
    (cloudtrail("a", T0) | {"eventTime": "1969-12-31T23:59:59Z"},
     "eventTime '1969-12-31T23:59:59Z' is out of range"),
    (inference("a", T0) | {"time": "2026-13-01T00:00:00Z"}, "time '2026-13-01T00:00:00Z' is not an ISO 8601"),
    (jit(T0) | {"time": None}, "time (missing) is not an ISO 8601 time"),
    (gateway("a", T0) | {"requestTime": "-5"}, "requestTime '-5' is not epoch milliseconds"),
    (gateway("a", T0) | {"requestTime": True}, "requestTime True is not epoch milliseconds"),
    (gateway("a", T0) | {"requestTime": 10**18}, "requestTime 1000000000000000000 is out of range"),
    (ocsf_event("a", T0) | {"time": "1796638800000"},
     "time '1796638800000' is not epoch milliseconds; allowed: an integer"),
    (ocsf_event("a", T0) | {"time": -1}, "time -1 is out of range"),
    (ocsf_event("a", T0) | {"time": 1.5e12}, "time 1500000000000.0 is not epoch milliseconds"),
])
def test_bad_times(tmp_path: Path, record: dict[str, Any], expected: str) -> None:
    assert f":1: {expected}" in bad(tmp_path, jsonl([record]), name="t.jsonl")


def test_one_bad_record_fails_before_any_event(tmp_path: Path) -> None:
    write(tmp_path / "a.json", json.dumps([cloudtrail("ok", T0)]))
    write(tmp_path / "z.json", json.dumps([{"nothing": "known"}]))
    events = read_events([tmp_path])
    with pytest.raises(InputError, match=r"z\.json:\[0\]"):
        next(events)


def test_bad_input_raises_only_input_error(tmp_path: Path) -> None:
    # Whatever the bytes, reading ends in events or an InputError (which is a ValueError).
    assert issubclass(InputError, ValueError)
    for index, data in enumerate([b"\x00\x01", b"{", b"[{}", b'{"Records": 5}', b"\xef\xbb\xbf[",
                                  b"[" * 5000 + b"]" * 5000, b'{"a": 1}\n{"a": NaN}', b"\x1f\x8b"]):
        path = write(tmp_path / f"x{index}", data)
        with pytest.raises(InputError) as raised:
            list(read_events([path]))
        assert str(raised.value).startswith(str(path))


# -- the Stratus Red Team dataset -------------------------------------------------------------------

def test_stratus_red_team_dataset_read_whole() -> None:
    files = stratus_red_team_files()
    events = list(read_events(files))
    assert len(events) == 310
    ids = [event.record["eventID"] for event in events]
    assert sorted(ids) == sorted(set(ids))
    assert uids(events) == ids
    assert {event.kind for event in events} == {"cloudtrail"}
    assert [event.time_ms for event in events] == sorted(event.time_ms for event in events)
    everything = [record for path in files for record in codec.loads(path.read_bytes())]
    assert sorted(ids) == sorted(record["eventID"] for record in everything)


# -- property: sorted and complete for any split into files -----------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3), st.sampled_from([*FORMATS, "gz"])),
                min_size=1, max_size=40),
       st.integers(1, 50))
def test_sorted_and_complete_for_any_split(tmp_path_factory: pytest.TempPathFactory,
                                           spec: list[tuple[int, int, str]], buffer: int) -> None:
    folder = tmp_path_factory.mktemp("split")
    files: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for number, (offset, file_index, fmt) in enumerate(spec):
        record = cloudtrail(f"id-{number % 7}", T0 + offset) | {"n": number}
        files.setdefault((file_index, fmt), []).append(record)
    for (file_index, fmt), records in files.items():
        if fmt == "gz":
            write(folder / f"{file_index}-gz.json.gz", jsonl(records), gzipped=True)
        else:
            write(folder / f"{file_index}-{fmt}.json", FORMATS[fmt](records))
    events = list(read_events([folder], buffer_events=buffer))
    keys = [(event.time_ms, event.uid) for event in events]
    assert keys == sorted(keys)
    assert sorted(event.record["n"] for event in events) == list(range(len(spec)))


# -- the garbage collector --------------------------------------------------------------------------

def test_collector_state_restored(tmp_path: Path) -> None:
    for index in range(3):
        write(tmp_path / f"{index}.json", json.dumps([cloudtrail(str(index), T0 + index)]))
    assert gc.get_freeze_count() == 0
    events = read_events([tmp_path])
    next(events)
    assert gc.get_freeze_count() > 0  # the records read are out of the collector's reach
    assert isinstance(events, Generator)
    events.close()  # abandoned part way: the collector gets them back
    assert gc.get_freeze_count() == 0
    assert len(list(read_events([tmp_path]))) == 3
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_objects_is_left_alone(tmp_path: Path) -> None:
    write(tmp_path / "a.json", json.dumps([cloudtrail("a", T0)]))
    gc.freeze()
    try:
        # The count may only fall (a frozen object freed elsewhere leaves the permanent
        # generation); the reader neither freezes its records (it would rise) nor unfreezes (0).
        frozen = gc.get_freeze_count()
        events = read_events([tmp_path])
        next(events)
        assert 0 < gc.get_freeze_count() <= frozen
        assert list(events) == []
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_a_trail_copy_is_read_without_its_digests_sidecars_keys_or_hidden_files(tmp_path: Path) -> None:
    """The folder `ztai trail verify` checks holds digests, their sidecars and the public keys:
    `ztai detect` reads the same folder, logs only; a file named on the command line is read."""
    logs = tmp_path / "AWSLogs" / "111122223333"
    record = {"eventVersion": "1.10", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
              "eventTime": "2026-01-01T00:00:00Z", "eventID": "log-1"}
    (logs / "CloudTrail" / "eu-west-1").mkdir(parents=True)
    (logs / "CloudTrail" / "eu-west-1" / "a.json.gz").write_bytes(
        gzip.compress(json.dumps({"Records": [record]}).encode()))
    digest = logs / "CloudTrail-Digest" / "eu-west-1"
    digest.mkdir(parents=True)
    (digest / "d.json.gz").write_bytes(gzip.compress(b'{"awsAccountId": "111122223333", "logFiles": []}'))
    (digest / "d.json.gz.metadata.json").write_text('{"signature": "00"}')
    (tmp_path / "public-keys.json").write_text('{"PublicKeyList": []}')
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / ".sync").mkdir()
    (tmp_path / ".sync" / "state").write_text("x")
    assert [event.uid for event in read_events([tmp_path])] == ["log-1"]
    with pytest.raises(InputError, match=r"public-keys\.json"):
        list(read_events([tmp_path / "public-keys.json"]))
