"""The windowed read (`read_events(..., window_ms=...)`) and `run_files`: CloudTrail files read in
the order of their delivery times, each event judged once its window is read; the same events in
the same order as the exact read, or WindowExceededError and a second, exact reading."""

from __future__ import annotations

import gc
import gzip
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ztai_runtime.detect.build import build_engine, run_files
from ztai_runtime.detect.engine import Engine
from ztai_runtime.detect.sources import Event, InputError, WindowExceededError, read_events

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
ACCOUNT = "111122223333"
HOUR_MS = 3_600_000


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def record(event_id: str, moment: datetime, *, name: str = "GetObject", user: str = "alice",
           region: str = "eu-west-1") -> dict[str, Any]:
    return {"eventVersion": "1.09", "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "s3.amazonaws.com", "eventName": name, "eventID": event_id,
            "awsRegion": region, "sourceIPAddress": "10.0.1.5", "userAgent": "Boto3/1.40",
            "userIdentity": {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{user}",
                             "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/curator/{user}",
                             "accountId": ACCOUNT}}


def delivered(folder: Path, region: str, at: datetime, records: list[dict[str, Any]],
              unique: str = "ABCDEF0123456789") -> Path:
    """A CloudTrail file as S3 holds it, delivered at `at`."""
    stamp = at.strftime("%Y%m%dT%H%MZ")
    path = (folder / "AWSLogs" / ACCOUNT / "CloudTrail" / region / stamp[:4] / stamp[4:6] / stamp[6:8]
            / f"{ACCOUNT}_CloudTrail_{region}_{stamp}_{unique}.json.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode(), mtime=0))
    return path


def trail(folder: Path, *, hours: int = 6, seed: int = 7, late: timedelta | None = None) -> int:
    """Several regions' files over `hours`: each file delivered 5-15 minutes after its five minutes
    of events, records shuffled inside, some events repeated in a second file (the same id and
    time: ties), and with `late`, one event delivered that much after it happened. Returns the
    number of records written."""
    rng = random.Random(seed)
    written = 0
    for region in ("eu-west-1", "us-east-1", "eu-central-1"):
        for period in range(hours * 12):
            begin = START + timedelta(minutes=5 * period)
            batch = [record(f"{region}-{period}-{n}", begin + timedelta(seconds=rng.randrange(300)),
                            user=rng.choice(("alice", "bob")), region=region)
                     for n in range(rng.randrange(0, 6))]
            if batch and rng.random() < 0.2:
                batch.append(dict(batch[0]))  # delivered twice: a tie on (time, id)
            rng.shuffle(batch)
            at = begin + timedelta(minutes=5 + rng.randrange(11))
            if batch:
                delivered(folder, region, at, batch, unique=f"{period:016d}")
                written += len(batch)
    if late is not None:
        moment = START + timedelta(hours=2, seconds=17)
        delivered(folder, "eu-west-1", moment + late, [record("late-one", moment, user="bob")],
                  unique="LATE000000000000")
        written += 1
    return written


def keys(events: Iterator[Event]) -> list[tuple[int, str, str]]:
    return [(event.time_ms, event.uid, event.origin) for event in events]


# -- the same order as the exact read ---------------------------------------------------------------

def test_windowed_read_yields_what_the_exact_read_yields(tmp_path: Path) -> None:
    written = trail(tmp_path)
    exact = keys(read_events([tmp_path]))
    windowed = keys(read_events([tmp_path], window_ms=HOUR_MS))
    assert len(exact) == written
    assert windowed == exact
    assert [key[:2] for key in exact] == sorted(key[:2] for key in exact)
    # Ties (the same id and time in two files) exist and resolve alike.
    assert len({key[:2] for key in exact}) < len(exact)


def test_files_are_read_in_delivery_order_not_region_order(tmp_path: Path) -> None:
    # By name the eu-west-1 folder comes first; its file was delivered after the us-east-1 one.
    delivered(tmp_path, "eu-west-1", START + timedelta(minutes=40),
              [record("same", START, region="eu-west-1")])
    delivered(tmp_path, "us-east-1", START + timedelta(minutes=10),
              [record("same", START, region="us-east-1")])
    for window in (None, 45 * 60_000, HOUR_MS):
        events = list(read_events([tmp_path], window_ms=window))
        # Equal (time, id): the file delivered first comes first, in either read.
        assert [event.record["awsRegion"] for event in events] == ["us-east-1", "eu-west-1"]


def test_undated_files_merge_in_order_and_come_first_on_ties(tmp_path: Path) -> None:
    trail(tmp_path / "trail", hours=2)
    exported = tmp_path / "export.jsonl"
    moments = [START + timedelta(minutes=minute, seconds=3) for minute in range(0, 130, 7)]
    lines = [record(f"x{n}", moment) for n, moment in enumerate(moments)]
    lines.append(record("eu-west-1-3-0", START))  # an id the trail also has (not the same time)
    exported.write_text("\n".join(json.dumps(line) for line in reversed(lines)) + "\n")
    tie = record("tie", START + timedelta(minutes=31, seconds=7))
    (tmp_path / "tie.json").write_text(json.dumps([tie]))
    delivered(tmp_path / "trail", "eu-west-1", START + timedelta(minutes=40), [tie],
              unique="TIE0000000000000")
    paths = [tmp_path / "trail", exported, tmp_path / "tie.json"]
    exact = keys(read_events(paths))
    assert keys(read_events(paths, window_ms=20 * 60_000)) == exact
    assert keys(read_events(paths, window_ms=HOUR_MS)) == exact
    ties = [origin for _, uid, origin in exact if uid == "tie"]
    assert ties[0] == f"{tmp_path / 'tie.json'}:[0]"  # the file with no delivery time first


def test_since_and_until_apply_to_the_windowed_read(tmp_path: Path) -> None:
    trail(tmp_path)
    since, until = ms(START + timedelta(hours=1)), ms(START + timedelta(hours=3))
    exact = keys(read_events([tmp_path], since_ms=since, until_ms=until))
    assert exact and all(since <= key[0] < until for key in exact)
    assert keys(read_events([tmp_path], since_ms=since, until_ms=until, window_ms=HOUR_MS)) == exact


def test_a_name_with_no_such_time_is_read_as_undated(tmp_path: Path) -> None:
    path = tmp_path / f"{ACCOUNT}_CloudTrail_eu-west-1_20261307T1000Z_ABCDEF0123456789.json"
    path.write_text(json.dumps({"Records": [record("odd", START)]}))
    delivered(tmp_path, "eu-west-1", START + timedelta(minutes=5), [record("odd", START)])
    events = list(read_events([tmp_path], window_ms=5 * 60_000))
    assert next(event.origin for event in events).startswith(str(path))
    assert keys(iter(events)) == keys(read_events([tmp_path]))


# -- where the window does not hold ---------------------------------------------------------------------

def test_an_event_later_than_the_window_stops_the_windowed_read(tmp_path: Path) -> None:
    trail(tmp_path, late=timedelta(hours=3))
    read = read_events([tmp_path], window_ms=HOUR_MS)
    yielded: list[Event] = []
    with pytest.raises(WindowExceededError, match="LATE0000") as raised:
        yielded.extend(read)
    assert "2026-12-07T12:00:17.000Z" in str(raised.value) and "60 min" in str(raised.value)
    assert yielded  # events were judged before it was found: the caller must read again
    # Within a wider window it is in order.
    exact = keys(read_events([tmp_path]))
    assert keys(read_events([tmp_path], window_ms=4 * HOUR_MS)) == exact
    assert "late-one" in [uid for _, uid, _ in exact]


def test_more_events_waiting_than_the_buffer_stops_the_windowed_read(tmp_path: Path) -> None:
    trail(tmp_path, hours=2)
    with pytest.raises(WindowExceededError, match="more than 10 events wait"):
        list(read_events([tmp_path], window_ms=HOUR_MS, buffer_events=10))
    # The exact read spills instead.
    assert keys(read_events([tmp_path], buffer_events=10)) == keys(read_events([tmp_path]))


def test_a_bad_file_delivered_last_is_an_input_error_after_events(tmp_path: Path) -> None:
    trail(tmp_path, hours=2)
    path = delivered(tmp_path, "eu-west-1", START + timedelta(hours=5), [])
    path.write_bytes(gzip.compress(b'{"Records": [{"eventVersion": "1.09"}]}'))
    yielded: list[Event] = []
    with pytest.raises(InputError, match=r"\[0\]: a record of no known kind"):
        yielded.extend(read_events([tmp_path], window_ms=HOUR_MS))
    assert yielded


def test_window_must_not_be_negative(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="window_ms must not be negative"):
        list(read_events([tmp_path], window_ms=-1))


# -- run_files: the second reading ------------------------------------------------------------------

def findings_of(engine: Engine) -> list[dict[str, Any]]:
    return [finding.to_json() for finding in engine.finish()]


def test_run_files_reads_again_exactly_when_the_window_fails(tmp_path: Path) -> None:
    trail(tmp_path, hours=10, late=timedelta(hours=3))
    built: list[Engine] = []

    def make() -> Engine:
        built.append(build_engine())
        return built[-1]

    engine, reread = run_files([tmp_path], make)
    assert reread is not None and "LATE0000" in reread
    assert len(built) == 2 and engine is built[1]
    exact = build_engine()
    for event in read_events([tmp_path]):
        exact.process(event)
    assert engine.events == exact.events
    assert findings_of(engine) == findings_of(exact)


def test_run_files_in_one_reading_when_the_window_holds(tmp_path: Path) -> None:
    trail(tmp_path, hours=10)
    built: list[Engine] = []

    def make() -> Engine:
        built.append(build_engine())
        return built[-1]

    engine, reread = run_files([tmp_path], make)
    assert reread is None and len(built) == 1
    exact = build_engine()
    for event in read_events([tmp_path]):
        exact.process(event)
    assert findings_of(engine) == findings_of(exact)


def test_a_run_makes_no_reference_cycles(tmp_path: Path) -> None:
    # run_files pauses the cyclic collector for the whole run (sources.collector_paused): safe only
    # while reading and judging create no reference cycles, which this shows on a run with findings.
    trail(tmp_path, hours=10)
    stop = record("stop-1", START + timedelta(hours=3)) | {
        "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
        "requestParameters": {"name": "zero-trust-ai-prod"}}
    delivered(tmp_path, "eu-west-1", START + timedelta(hours=3, minutes=8), [stop], unique="STOP000000000000")
    gc.collect()
    gc.disable()
    try:
        engine, _ = run_files([tmp_path], build_engine)
        findings = engine.finish()
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert any(finding.rule.startswith("cloudtrail") for finding in findings), [f.rule for f in findings]
    assert unreachable == 0


def test_an_event_exactly_at_the_mark_is_in_time_and_one_before_it_is_not(tmp_path: Path) -> None:
    # Before the file delivered at 11:06 is read, everything before 10:05 (11:06 less the hour,
    # down to a five-minute edge) has been yielded: an event at 10:05:00 still fits, 10:04:59 not.
    def at(minutes: int, seconds: int = 0) -> datetime:
        return START + timedelta(minutes=minutes, seconds=seconds)

    delivered(tmp_path, "eu-west-1", at(60), [record("a", at(30))], unique="A000000000000000")
    delivered(tmp_path, "eu-west-1", at(65), [record("b", at(6))], unique="B000000000000000")
    delivered(tmp_path, "eu-west-1", at(66), [record("c", at(5))], unique="C000000000000000")
    exact = keys(read_events([tmp_path]))
    assert keys(read_events([tmp_path], window_ms=HOUR_MS)) == exact
    assert [uid for _, uid, _ in exact] == ["c", "b", "a"]
    delivered(tmp_path, "eu-west-1", at(67), [record("d", at(4, 59))], unique="D000000000000000")
    with pytest.raises(WindowExceededError, match=r"2026-12-07T10:04:59\.000Z"):
        list(read_events([tmp_path], window_ms=HOUR_MS))


def test_buckets_far_in_the_future_wait_in_order_to_the_end(tmp_path: Path) -> None:
    # A file named as delivered in 1970 (read first) with events in year 3000, each in a bucket of
    # its own: they wait for the whole run and come last, in order, whatever else was read.
    future = datetime(3000, 1, 1, tzinfo=UTC)
    far = [record(f"f{n}", future + timedelta(minutes=5 * (n * 7 % 50))) for n in range(50)]
    delivered(tmp_path, "eu-west-1", datetime(1970, 1, 1, tzinfo=UTC), far, unique="EPOCH00000000000")
    trail(tmp_path, hours=3)
    exact = keys(read_events([tmp_path]))
    assert keys(read_events([tmp_path], window_ms=HOUR_MS)) == exact
    in_time_order = sorted(range(50), key=lambda n: n * 7 % 50)
    assert [uid for _, uid, _ in exact[-50:]] == [f"f{n}" for n in in_time_order]
