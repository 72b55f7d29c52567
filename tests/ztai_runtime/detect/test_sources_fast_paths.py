"""The reader's fast paths give the answers of the general code they shortcut: CloudTrail times
read by the hour, one-member gzip in one zlib call, the folder listing, one sort instead of a
merge, the collector paused while reading."""

from __future__ import annotations

import gc
import gzip
import heapq
import json
import os
import random
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from ztai_runtime.detect.sources import InputError, read_events
from ztai_runtime.siem.ocsf import epoch_ms


def record(uid: str, when: str, **extra: Any) -> dict[str, Any]:
    return {"eventVersion": "1.08", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
            "eventTime": when, "eventID": uid, **extra}


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"Records": records}))


VALID = ["2026-11-16T10:05:07Z", "2026-11-16T10:59:59Z", "2026-11-16T10:00:00Z", "2024-02-29T23:59:59Z",
         "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-16 10:05:07Z",
         "2026-11-16T10:05:07.250Z", "2026-11-16T10:05:07+02:00", "2026-11-16T10:05"]
INVALID = ["2026-11-16T24:00:00Z", "2026-11-16T10:60:00Z", "2026-11-16T10:05:60Z", "2026-02-29T10:00:00Z",
           "2026-11-16T10:0٥:07Z", "2026-11-16T10:05:0²Z", "2026-11-16T10-05-07Z", "2026-11-16T10:5:07Z ",
           "2026-13-16T10:05:07Z", "2026-11-16T1x:05:07Z"]


@pytest.mark.parametrize("when", VALID)
def test_a_time_reads_as_the_general_parser_reads_it(tmp_path: Path, when: str) -> None:
    # Twice in one run: the second time from the hours already seen.
    write(tmp_path / "a.json", [record("a", when), record("b", when)])
    events = list(read_events([tmp_path]))
    assert [event.time_ms for event in events] == [epoch_ms(when)] * 2


@pytest.mark.parametrize("when", INVALID)
def test_a_bad_time_is_refused_even_after_its_hour_was_seen(tmp_path: Path, when: str) -> None:
    assert epoch_ms(when) is None
    write(tmp_path / "a.json", [record("a", "2026-11-16T10:00:00Z"), record("b", when)])
    with pytest.raises(InputError, match=r"a\.json:\[1\]: eventTime .* is not an ISO 8601 time"):
        list(read_events([tmp_path]))


def test_gzip_read_as_gzip_decompress_reads_it(tmp_path: Path) -> None:
    body = json.dumps({"Records": [record("a", "2026-11-16T10:00:00Z")]}).encode()
    half = len(body) // 2
    (tmp_path / "members.gz").write_bytes(gzip.compress(body[:half]) + gzip.compress(body[half:]))
    (tmp_path / "padded.gz").write_bytes(gzip.compress(body.replace(b'"a"', b'"b"')) + b"\0\0\0\0")
    assert [event.uid for event in read_events([tmp_path])] == ["a", "b"]
    (tmp_path / "members.gz").write_bytes(gzip.compress(body)[:-6])
    with pytest.raises(InputError, match=r"members\.gz: starts as gzip but is not valid gzip"):
        list(read_events([tmp_path]))
    (tmp_path / "members.gz").write_bytes(gzip.compress(body) + b"trailing")
    with pytest.raises(InputError, match=r"members\.gz: starts as gzip but is not valid gzip"):
        list(read_events([tmp_path]))


def test_folders_are_listed_in_name_order_and_linked_folders_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    names = ["b/2.json", "a/z/1.json", "a/1.json", "a.json", "c.json"]
    for index, name in enumerate(names):
        # All at one time: the order is then the order the files are read.
        write(root / name, [record(f"{index}", "2026-11-16T10:00:00Z") | {"eventID": "same"}])
        (root / name).write_text((root / name).read_text().replace('"same"', f'"{name}"'))
    os.symlink(root / "a", root / "link-to-a")
    events = list(read_events([str(root) + os.sep]))
    assert [event.uid for event in events] == sorted(names)  # the ids are the names: ties by id
    origins = [event.origin for event in events]
    assert all(origin.startswith(str(root) + os.sep) and "link-to-a" not in origin for origin in origins)


def test_one_sort_gives_the_order_of_sorting_each_file_and_merging(tmp_path: Path) -> None:
    rng = random.Random(7)
    files: list[list[dict[str, Any]]] = []
    for index in range(12):
        batch = [record(rng.choice("abc"), f"2026-11-16T10:0{rng.randint(0, 3)}:00Z", n=f"{index}.{k}")
                 for k in range(rng.randint(0, 9))]
        files.append(batch)
        write(tmp_path / f"{index:02d}.json", batch)

    def key(item: dict[str, Any]) -> tuple[int | None, str]:
        return epoch_ms(item["eventTime"]), item["eventID"]

    expected = [item["n"] for item in heapq.merge(*(sorted(batch, key=key) for batch in files), key=key)]
    for buffer in (1, 5, 1000):
        assert [event.record["n"] for event in read_events([tmp_path], buffer_events=buffer)] == expected


def test_the_collector_is_on_again_when_events_are_yielded_and_off_stays_off(tmp_path: Path) -> None:
    write(tmp_path / "a.json", [record("a", "2026-11-16T10:00:00Z"), record("b", "2026-11-16T10:00:01Z")])
    assert gc.isenabled()
    events = read_events([tmp_path])
    next(events)
    assert gc.isenabled()
    assert isinstance(events, Generator)
    events.close()
    gc.disable()
    try:
        assert len(list(read_events([tmp_path]))) == 2
        assert not gc.isenabled()
    finally:
        gc.enable()
    (tmp_path / "b.json").write_text("not json")
    with pytest.raises(InputError):
        list(read_events([tmp_path]))
    assert gc.isenabled()  # on again after a refused input too


def test_a_folder_that_cannot_be_listed_is_an_input_error(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Running as root, permissions cannot refuse a listing: the walk reports the error as the OS would.

    def walk(top: str, onerror: Any = None) -> Any:
        onerror(PermissionError(13, "Permission denied", os.path.join(top, "locked")))
        yield from ()

    monkeypatch.setattr(os, "walk", walk)  # the module the reader calls it from
    with pytest.raises(InputError, match=r"locked: cannot be listed \(Permission denied\)"):
        list(read_events([tmp_path]))
