"""Every input `ztai detect` reads, as one stream of events in event-time order across files.

`read_events(paths, since_ms=..., until_ms=..., window_ms=...)` takes files and folders (read
recursively) and yields one `Event` per record, oldest first ("Order", below).

Files. Each file is one of these, optionally gzip'd (recognised by its magic bytes, whatever its
name):
- CloudTrail as S3 delivers it, `{"Records": [...]}`;
- a JSON array of records;
- JSONL: one record per line, blank lines allowed; a file holding one JSON object that is a record
  (one line, or the object written over several lines) reads as a one-record file;
- an empty file (or one of blanks only, or a gzip of nothing): no events, not an error.
Inside a folder, what a copy of the trail's bucket holds besides logs is not read: CloudTrail's
digest files (any folder named `CloudTrail-Digest`), the `<digest>.metadata.json` sidecars and the
`public-keys.json` that `ztai trail verify` reads beside them, and hidden files and folders (names
starting with a dot). So the folder `ztai trail verify` checks is the folder `ztai detect` reads.
A file named on the command line is always read.
A UTF-8 byte order mark at the start is allowed. Anything else (another text, another encoding,
a JSON scalar, an object that is neither `Records` nor a record) is an `InputError` naming the file:
nothing found in a folder is skipped silently.

Records, by their shape (the shapes the SIEM transform maps, `ztai_runtime.siem.ocsf`):
- `cloudtrail`: a CloudTrail record (`eventVersion`, `eventSource` or `eventName`); time
  `eventTime` (ISO 8601); id `eventID`;
- `ocsf`: an OCSF event as the SIEM transform writes it (`class_uid`, `metadata.version`); time
  `time` (epoch milliseconds); id `metadata.uid`;
- `gateway`: an API Gateway access log line (`routeKey`, `requestId`); time `requestTime` (epoch
  milliseconds, a number or a string of digits, as the access log format writes it); id
  `requestId`;
- `inference`: an inference event (`"event": "inference"`); time `time` (ISO 8601); id `requestId`;
- `jit`: a JIT elevation decision line (`"event": "jit.<...>"`); time `time` (ISO 8601). Its
  `request_id` names the elevation request, which several lines share (requested, approved,
  expired), so it is no id of the line: a JIT line always gets the synthetic id.
A record without an id of its own gets the synthetic id `<file>:<line>` (JSONL) or
`<file>:[<index>]` (an array, or `Records`), `<file>` being the path as found under the PATH given;
the same arguments give the same ids on every run. A time without a zone is UTC. Times must lie in
1970-01-01T00:00:00Z..9999-12-31T23:59:59.999Z.

Errors. Bad input never raises anything but `InputError` (a ValueError), whose message names the
file, the line or record index, what is wrong and what is allowed: a path that does not exist,
unreadable files, bad gzip, bad UTF-8, bad JSON, a record that is not an object, a `Records` that
is not a list, a record of no known kind, a missing or unparseable time, a time out of range. One
bad record fails the whole run. The exact read (below) reads and checks every file before it
yields the first event; the windowed read may raise after events were yielded, so a caller acts on
nothing (reports no finding, saves no state) until the reading has ended (the CLI exits 2 and
reports nothing either way).

Order. CloudTrail files overlap in time and are not sorted inside, so the events are sorted by
time, then id; on equal keys the file read first comes first, then the order in the file. Files
are read in this order: first those whose names give no delivery time (the PATHs in the order
given, each folder's files in name order), then CloudTrail's files
(`<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json[.gz]`) by the delivery time in their
names, those of one time in the order found. The output is the same on every run, and the same
from both reads.

The exact read (`window_ms` None). Nothing can be yielded before every file is read (the last file
may hold the earliest event: CloudTrail's file delivered at a time "can contain records written at
any point before that time"), so every event is held: one stable sort of the events in the order
read. To bound memory, at most `buffer_events` events (default BUFFER_EVENTS) are held: when the
files read so far hold more, they are sorted into one run written to a temporary file (in
`marshal`'s form, in chunks of SPILL_CHUNK events; deleted when the reading ends) and read back
chunk by chunk in the final merge (`heapq.merge`, which keeps the tie rule). Memory is therefore
about `buffer_events` events, plus the largest single file (read whole), plus one chunk per spilled
run; disk holds every event beyond the buffer. Spilling costs a writing and a reading of each event
it writes (measured: reading halves in speed).

The windowed read (`window_ms` given; what `ztai detect` runs first, `build.run_files`). The files
with no delivery time are read first, as the exact read reads them. CloudTrail's files follow in
delivery order, and their events wait in five-minute buckets of event time; before the file
delivered at D is read, every bucket wholly before D - window_ms is sorted and yielded (merged with
the first files' events of its time). That is exact as long as no event is more than `window_ms`
older than its file's delivery, since every file still unread was delivered at D or later. An event
older than that, which would have to come before events already yielded, raises
`WindowExceededError`, as do more than `buffer_events` events waiting; the caller then reads again
with the exact read, from the start. Memory is about `window_ms` of events (at most
`buffer_events`) plus one file, plus what the exact read holds of the files with no delivery time
(at most `buffer_events` too): about twice the exact read's at worst. Nothing is spilled to disk
and no event waits for the whole input. The window does not hold, and the exact read is needed,
when a file brings an event more than `window_ms` older than its delivery (no bound is promised:
a file "can contain records written at any point before" its delivery), or when `window_ms` of
the account's events are more than `buffer_events` (with the defaults, more than about 80,000
events an hour: an account that busy is always read twice, the windowed read giving up at its
first busy hour). The five-minute buckets match CloudTrail's delivery, "about every 5 minutes";
any bucket size gives the same order.

`since_ms` and `until_ms` filter as the files are read (since inclusive, until exclusive), so only
what is kept counts.

JSON is read with `ztai_runtime.siem.codec.loads` (orjson when it is installed).
"""

from __future__ import annotations

import gc
import gzip
import heapq
import json
import marshal
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import IO, Any, Literal

from ztai_runtime.siem import codec
from ztai_runtime.siem.ocsf import epoch_ms as iso_epoch_ms
from ztai_runtime.siem.ocsf import record_kind as siem_record_kind

Kind = Literal["cloudtrail", "ocsf", "gateway", "inference", "jit"]

KINDS: tuple[Kind, ...] = ("cloudtrail", "ocsf", "gateway", "inference", "jit")

# Events held in memory before the files read so far are merged and written to a temporary file.
# A parsed CloudTrail record is about 4 KB of Python objects (measured: 435 MB of peak RSS for
# 102,000 Stratus Red Team records held): 100,000 events is some 430 MB.
BUFFER_EVENTS = 100_000
# Events per chunk of a spilled run: what the final merge holds of each run at a time.
SPILL_CHUNK = 1_000

# The range a time may take: from the epoch to the last millisecond of year 9999 (what an ISO time
# can say, and well inside 64 bits).
MIN_MS = 0
END_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z: exclusive

_ALLOWED_FILES = ("a CloudTrail file ({\"Records\": [...]}), a JSON array of records or JSONL "
                  "(one record per line), UTF-8, optionally gzip'd")
_ALLOWED_RECORDS = ("a CloudTrail record (eventVersion, eventSource or eventName, eventTime), an OCSF "
                    "event (class_uid, time, metadata.version), an API Gateway access log line "
                    "(routeKey, requestId, requestTime), an inference event (\"event\": \"inference\") "
                    "or a JIT decision line (\"event\": \"jit.<action>\")")
# The SIEM transform's kinds the detector reads (not its Route 53 Resolver records).
_SIEM_KINDS: dict[str, Kind] = {"cloudtrail": "cloudtrail", "gateway": "gateway",
                                "inference": "inference", "jit": "jit"}
_GZIP_MAGIC = b"\x1f\x8b"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InputError(ValueError):
    """Input `ztai detect` cannot read: the message names the file, the line or record, what is
    wrong and what is allowed (the CLI prints it and exits 2)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One record of the input, as the detection engine consumes it."""

    time_ms: int
    """Event time, epoch milliseconds (UTC)."""
    kind: Kind
    uid: str
    """The record's own id (CloudTrail eventID, OCSF metadata.uid, requestId), or the synthetic
    `<file>:<line>` / `<file>:[<index>]` when it has none (JIT lines always)."""
    record: dict[str, Any]
    """The record as read."""
    origin: str
    """Where it was read: `<file>:<line>` or `<file>:[<index>]`."""


_EVENT_SLOTS: tuple[Any, ...] = tuple(Event.__dict__[name].__set__
                                     for name in ("time_ms", "kind", "uid", "record", "origin"))


def _new_event(time_ms: int, kind: Kind, uid: str, record: dict[str, Any], origin: str,
               _new: Any = object.__new__, _slots: tuple[Any, ...] = _EVENT_SLOTS) -> Event:
    """`Event(...)` without the frozen dataclass's `__init__` (five `object.__setattr__` calls):
    the same object, set through its slots, at a quarter of the cost (measured: 0.36 against
    1.6 µs, per event)."""
    event: Event = _new(Event)
    set_time, set_kind, set_uid, set_record, set_origin = _slots
    set_time(event, time_ms)
    set_kind(event, kind)
    set_uid(event, uid)
    set_record(event, record)
    set_origin(event, origin)
    return event


def read_events(paths: Iterable[str | os.PathLike[str]], *, since_ms: int | None = None,
                until_ms: int | None = None, buffer_events: int = BUFFER_EVENTS,
                window_ms: int | None = None) -> Iterator[Event]:
    """Every event of the files (and folders, recursively) in `paths`, oldest first (ties: by id,
    then by the order the files are read, then by order in the file), those with
    since_ms <= time_ms < until_ms when given.

    `window_ms` None (the exact read): every file is read before the first event is yielded, so
    bad input raises InputError on the first `next`, before any event; `buffer_events` events are
    held in memory, the rest spilled to a temporary file (the module docstring).

    `window_ms` given (the windowed read, the module docstring): CloudTrail
    files are read in the order of their delivery times and their events yielded as soon as every
    file delivered up to `window_ms` after them has been read. The same events in the same order
    as the exact read, or WindowExceededError (possibly after events were yielded) where the input does
    not allow it; InputError may then also come after events were yielded."""
    if buffer_events < 1:
        raise ValueError(f"buffer_events must be at least 1, not {buffer_events}")
    if window_ms is not None and window_ms < 0:
        raise ValueError(f"window_ms must not be negative, not {window_ms}")
    undated, dated = _delivery_order(_files(paths))
    if window_ms is None:
        yield from _exact([*undated, *(path for _, path in dated)], since_ms, until_ms, buffer_events)
    else:
        yield from _windowed(undated, dated, since_ms, until_ms, buffer_events, window_ms)


def _exact(files: list[str], since_ms: int | None, until_ms: int | None,
           buffer_events: int) -> Iterator[Event]:
    """Every event of `files`, in order, each file read before the first is yielded."""
    # Every file's events in one list, in the order read, sorted once (stable): the same order as
    # sorting each file and merging the files with heapq.merge (earlier file first on equal keys),
    # at a fraction of the cost (measured: the merge's per-event key calls and heap steps cost as
    # much as the parsing of a small CloudTrail file, and the files, read in delivery order, are
    # mostly in time order already, which the sort takes advantage of).
    held: list[Event] = []
    hours: dict[str, int] = {}
    with _Spill() as spill, _frozen_heap() as freeze:
        with collector_paused():
            for path in files:
                _file_events(path, since_ms, until_ms, held, hours)
                if len(held) > buffer_events:
                    held.sort(key=_key)
                    spill.write(held)
                    held = []
            held.sort(key=_key)
            # Frozen before the collector is back: its first pass would otherwise walk every
            # object read (all still in its youngest generation).
            freeze()
        runs = spill.runs()
        if not runs:
            yield from held
            return
        # Runs come from consecutive files in reading order, and heapq.merge takes the earlier
        # iterable first on equal keys: ties resolve in file order whether spilled or not.
        yield from heapq.merge(*runs, held, key=_key)


class WindowExceededError(Exception):
    """The windowed read (`read_events(..., window_ms=...)`) met input it cannot yield in order
    within its window: an event older than events already yielded, or more than `buffer_events`
    events waiting. Nothing is wrong with the input: read it again with the exact read (no
    `window_ms`), from the start (`run_files` in ztai_runtime.detect.build does)."""


# A CloudTrail log file's name: AccountID_CloudTrail_RegionName_YYYYMMDDTHHmmZ_UniqueString.json.gz,
# the time being when the file was delivered ("A log file delivered at a specific time can contain
# records written at any point before that time": https://docs.aws.amazon.com/awscloudtrail/latest/
# userguide/cloudtrail-log-file-examples.html#cloudtrail-log-filename-format).
_CLOUDTRAIL_NAME = re.compile(
    r"[0-9]{12}_CloudTrail_[A-Za-z0-9-]+_([0-9]{8}T[0-9]{4}Z)_[A-Za-z0-9]+\.json(?:\.gz)?")
# The windowed read's buckets: CloudTrail delivers a region's events about every five minutes.
_STEP_MS = 5 * 60_000


def _delivery_order(files: Iterable[str]) -> tuple[list[str], list[tuple[int, str]]]:
    """The reading order of both reads: first the files whose names give no delivery time, in the
    order found; then CloudTrail's files by delivery time (those of the same time in the order
    found), with their delivery times (epoch milliseconds)."""
    undated: list[str] = []
    dated: list[tuple[int, str]] = []
    for path in files:
        match = _CLOUDTRAIL_NAME.fullmatch(os.path.basename(path))
        delivered = _delivery_ms(match.group(1)) if match else None
        if delivered is None:
            undated.append(path)
        else:
            dated.append((delivered, path))
    dated.sort(key=itemgetter(0))
    return undated, dated


def _delivery_ms(stamp: str) -> int | None:
    # The digits taken as they stand (the name's pattern admits digits only): strptime costs
    # about 10 µs a file, more than a small CloudTrail file's events take to read.
    try:
        moment = datetime(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]),
                          int(stamp[11:13]), tzinfo=UTC)
    except ValueError:  # a name of the right shape with no such time (month 13): read as undated
        return None
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _windowed(undated: list[str], dated: list[tuple[int, str]], since_ms: int | None,
              until_ms: int | None, buffer_events: int, window_ms: int) -> Iterator[Event]:
    """The windowed read. The undated files are read first, as the exact read reads them (held,
    spilled past the buffer). The dated files follow in delivery order; each one's events wait in
    five-minute buckets of event time. Before a file delivered at D is read, every bucket wholly
    before D - window_ms is sorted and yielded (merged with the undated events of its time): every
    file still to be read was delivered at D or later, and its events are taken to be at most
    `window_ms` older than their file. An event that is older (it would come before events
    already yielded), or more than `buffer_events` events waiting, raise WindowExceededError."""
    early = _Peek(_exact(undated, since_ms, until_ms, buffer_events) if undated else iter(()))
    buckets: dict[int, list[Event]] = {}
    # The waiting buckets' indices, oldest first: each flush takes only the buckets it yields (a
    # scan of every bucket at every flush would grow with the square of the buckets waiting, which
    # a planted file with events far in the future would make many).
    order: list[int] = []
    waiting = 0
    flushed = MIN_MS  # every event before this time has been yielded
    hours: dict[str, int] = {}
    for delivered, path in dated:
        mark = (delivered - window_ms) // _STEP_MS * _STEP_MS
        if mark > flushed:
            waiting -= yield from _flush(buckets, order, early, mark)
            flushed = mark
        out: list[Event] = []
        _file_events(path, since_ms, until_ms, out, hours)
        if not out:
            continue
        # A file's events mostly fall in one bucket: placed together, in C, when they do.
        times = list(map(_time, out))
        first, last = min(times), max(times)
        if first < flushed:
            late = out[times.index(first)]
            raise WindowExceededError(
                f"{late.origin}: an event of {iso(first)} in a file delivered at {iso(delivered)}, "
                f"more than the window ({window_ms // 60_000} min) before its delivery: later events "
                "were already read out")
        index = first // _STEP_MS
        if index == last // _STEP_MS:
            _bucket(buckets, order, index).extend(out)
        else:
            for event, time_ms in zip(out, times, strict=True):
                _bucket(buckets, order, time_ms // _STEP_MS).append(event)
        waiting += len(out)
        if waiting > buffer_events:
            raise WindowExceededError(f"{path}: more than {buffer_events:,} events wait for their window "
                                      f"({window_ms // 60_000} min)")
    yield from _flush(buckets, order, early, END_MS + _STEP_MS)


def _flush(buckets: dict[int, list[Event]], order: list[int], early: _Peek,
           mark: int) -> Generator[Event, None, int]:
    """Yield every waiting bucket wholly before `mark`, oldest first, each sorted and merged with
    the undated files' events of its time, then those of the undated before `mark`; return how many
    of the waiting events were yielded."""
    taken = 0
    while order and order[0] * _STEP_MS < mark:
        index = heapq.heappop(order)
        events = buckets.pop(index)
        taken += len(events)
        events.sort(key=_key)
        yield from early.merged(events, index * _STEP_MS, (index + 1) * _STEP_MS)
    yield from early.before(mark)
    return taken


def _bucket(buckets: dict[int, list[Event]], order: list[int], index: int) -> list[Event]:
    bucket = buckets.get(index)
    if bucket is None:
        bucket = buckets[index] = []
        heapq.heappush(order, index)
    return bucket


class _Peek:
    """The undated files' events (in order), taken as far as the windowed read has come."""

    __slots__ = ("_events", "_head")

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = events
        self._head: Event | None = next(events, None)

    def before(self, limit: int) -> Iterator[Event]:
        """The events before `limit` not yet taken."""
        head = self._head
        while head is not None and head.time_ms < limit:
            yield head
            head = self._head = next(self._events, None)

    def merged(self, events: list[Event], start: int, end: int) -> Iterator[Event]:
        """`events` (sorted, all in start..end) merged with the events before `end`: the earlier
        first on equal keys (the undated files are read first)."""
        if self._head is None or self._head.time_ms >= end:
            return iter(events)
        return self._merge(events, start, end)

    def _merge(self, events: list[Event], start: int, end: int) -> Iterator[Event]:
        yield from self.before(start)
        yield from heapq.merge(self.before(end), events, key=_key)


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with a Z (milliseconds kept), as findings and messages
    write times."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off inside the block, on again after it (a collector the caller
    switched off stays off). Reading makes no reference cycles (JSON has none), nor does the
    engine (tests/ztai_runtime/detect/test_sources_windowed.py checks a whole run leaves nothing
    for the collector), so its passes over the records being parsed and over the engine's learned
    state find nothing and only cost time (measured: about 1 µs per event while reading, more on
    a busy account's run, where every full pass walks the whole learned state). Reference counting
    still frees every object as soon as it is dropped. The exact read pauses it while the files
    are read (on again before the first event is yielded, so the caller's garbage is collected as
    usual); `build.run_files` pauses it for the whole run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _frozen_heap() -> Iterator[Callable[[], None]]:
    """The records read are trees (JSON has no cycles) held until they are yielded: the cyclic
    garbage collector's passes over them find nothing and cost as much as the parsing (measured on
    100,000 CloudTrail events: half the read time, then a full pass in the merge). Once the files
    are read (the collector paused meanwhile, `collector_paused`), their objects are moved out of
    its reach (`gc.freeze`); reference counting still frees
    every event once the caller drops it, and the frozen objects go back to the collector when the
    reading ends. Only the collector's timing changes, never what is freed. A process that froze
    objects itself (a server before forking) is left alone: nothing is frozen or unfrozen here."""
    if gc.get_freeze_count():
        yield lambda: None
        return
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


# (time_ms, uid), built in C.
_key: Callable[[Event], tuple[int, str]] = attrgetter("time_ms", "uid")
_time: Callable[[Event], int] = attrgetter("time_ms")


# -- files ------------------------------------------------------------------------------------------

def _files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """The files under each path (as the text of their paths), in name order within a folder; a
    path that is not there is an error (a typo must not read as "no findings")."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            yield from _folder_files(path)
        elif path.exists():
            yield str(path)
        else:
            raise InputError(f"{path}: no such file or folder (give CloudTrail, OCSF, gateway, "
                             "inference or JIT log files, or folders of them)")


def _folder_files(folder: Path) -> list[str]:
    """Every file under `folder`, sorted on the parts of its path below `folder` (a stable order
    whatever the file system lists first). As `Path.rglob("*")` less its folders: symbolic links
    to folders are listed but not followed, so they are skipped as folders; links to files (and
    broken links) are files. os.walk's listing tells folders apart without a stat per file
    (measured: rglob's stats and relative paths cost more than reading a small CloudTrail file)."""
    root = str(folder)
    found: list[tuple[tuple[str, ...], str]] = []
    for directory, folders, names in os.walk(root, onerror=_raise):
        # Not logs (the module docstring): pruned in place, so os.walk does not descend.
        folders[:] = [name for name in folders if name not in _NOT_LOG_FOLDERS and name[:1] != "."]
        below = os.path.relpath(directory, root)
        parts = () if below == os.curdir else tuple(below.split(os.sep))
        found.extend(((*parts, name), os.path.join(directory, name)) for name in names
                     if name[:1] != "." and name not in _NOT_LOG_FILES
                     and not name.endswith(_SIDECAR_SUFFIX))
    found.sort(key=itemgetter(0))
    return [name for _, name in found]


# What a copy of the trail's bucket holds that is not a log (ztai_runtime/trail/local.py).
_NOT_LOG_FOLDERS = frozenset(("CloudTrail-Digest",))
_NOT_LOG_FILES = frozenset(("public-keys.json",))
_SIDECAR_SUFFIX = ".metadata.json"


def _raise(error: OSError) -> None:
    raise InputError(f"{error.filename}: cannot be listed ({error.strerror or error})")


def _file_events(name: str, since_ms: int | None, until_ms: int | None, out: list[Event],
                 hours: dict[str, int]) -> None:
    """Append the file's events (those in the time window) to `out`, in file order."""
    text = _text(name)
    # A byte order mark is harmless and some editors write one; JSON parsers refuse it.
    if text[:1] == "\ufeff":
        text = text[1:]
    head = text[:1]
    if head != "{" and head != "[":
        stripped = text.lstrip()
        if not stripped:
            return
        head = stripped[0]
    if head == "[":
        _add_indexed(name, _array(name, _whole(name, text), "the file"), since_ms, until_ms, out, hours)
    elif head == "{":
        records = _object_file(name, text)
        if isinstance(records, list):
            _add_indexed(name, records, since_ms, until_ms, out, hours)
            return
        for record, origin in records:
            event = _event(record, origin)
            if _within(event.time_ms, since_ms, until_ms):
                out.append(event)
    else:
        raise InputError(f"{name}: not a file of a recognised format (it starts with "
                         f"{text.lstrip()[:20]!r}); allowed: {_ALLOWED_FILES}")


def _add_indexed(name: str, records: list[Any], since_ms: int | None, until_ms: int | None,
                 out: list[Event], hours: dict[str, int]) -> None:
    """Append the events of a list of records (a `Records` list or a JSON array) to `out`. The
    common case, a CloudTrail record with its time and id as CloudTrail writes them, is decided
    here in a few lookups (the answer `_event` would give); anything else goes through `_event`'s
    checks. This loop runs once per event: each call or allocation saved here is measurable."""
    low = MIN_MS if since_ms is None else max(since_ms, MIN_MS)
    high = END_MS if until_ms is None else min(until_ms, END_MS)
    append = out.append
    new = _new_event
    for index, record in enumerate(records):
        origin = f"{name}:[{index}]"
        if type(record) is dict and "eventVersion" in record and "class_uid" not in record:
            when = record.get("eventTime")
            uid = record.get("eventID")
            if type(when) is str and type(uid) is str and uid \
                    and ("eventSource" in record or "eventName" in record):
                time_ms = _cloudtrail_ms(when, hours)
                if time_ms is not None and MIN_MS <= time_ms < END_MS:
                    if low <= time_ms < high:
                        append(new(time_ms, "cloudtrail", uid, record, origin))
                    continue
        event = _checked_event(record, origin)
        if _within(event.time_ms, since_ms, until_ms):
            append(event)


def _within(time_ms: int, since_ms: int | None, until_ms: int | None) -> bool:
    return (since_ms is None or time_ms >= since_ms) and (until_ms is None or time_ms < until_ms)


# Two-digit minutes and seconds, exactly as an ISO time writes them.
_SIXTY = {f"{value:02d}": value for value in range(60)}
_HOURS_KEPT = 100_000


def _cloudtrail_ms(when: str, hours: dict[str, int]) -> int | None:
    """`epoch_ms(when)` (None where it is None), fast for CloudTrail's own form
    `YYYY-MM-DDTHH:MM:SSZ`: the date and hour are parsed once per hour seen (`hours` keeps them),
    minutes and seconds looked up. Any other form is parsed in full."""
    if len(when) == 20 and when[19] == "Z" and when[13] == ":" and when[16] == ":":
        minute = _SIXTY.get(when[14:16])
        second = _SIXTY.get(when[17:19])
        if minute is not None and second is not None:
            prefix = when[:13]
            hour = hours.get(prefix)
            if hour is None:
                # The same parser on the same date and hour: valid exactly when `when` is.
                hour = iso_epoch_ms(prefix + ":00:00Z")
                if hour is None:
                    return None
                if len(hours) >= _HOURS_KEPT:
                    hours.clear()
                hours[prefix] = hour
            return hour + minute * 60_000 + second * 1_000
    if len(when) > 40:
        return None
    return iso_epoch_ms(when)


def _text(name: str) -> str:
    try:
        with open(name, "rb") as file:
            data = file.read()
    except OSError as error:
        raise InputError(f"{name}: cannot be read ({error.strerror or error})") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = _gunzip(data)
        except (OSError, EOFError, zlib.error) as error:
            raise InputError(f"{name}: starts as gzip but is not valid gzip ({error}); allowed: "
                             f"{_ALLOWED_FILES}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(f"{name}:{line}: not UTF-8 (byte {error.start}: {error.reason}); allowed: "
                         f"{_ALLOWED_FILES}") from None


def _gunzip(data: bytes) -> bytes:
    """`gzip.decompress(data)`: one gzip member (what S3 delivers) in one zlib call, which checks
    the header, the CRC and the length; anything else (several members, padding after the member,
    a damaged file) is left to `gzip.decompress`, so the result, and every error, is its own."""
    try:
        inflater = zlib.decompressobj(wbits=31)
        out = inflater.decompress(data)
        if inflater.eof and not inflater.unused_data:
            return out
    except zlib.error:
        pass
    return gzip.decompress(data)


def _whole(name: str, text: str) -> Any:
    try:
        return codec.loads(text)
    except (ValueError, RecursionError) as error:
        raise InputError(f"{name}: {_json_problem(error)}; allowed: {_ALLOWED_FILES}") from None


def _json_problem(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON at line {error.lineno} column {error.colno} ({error.msg})"
    if isinstance(error, RecursionError):
        return "JSON nested too deeply"
    return f"not JSON ({error})"


def _array(name: str, value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(f"{name}: {what} is {_type(value)}, not a list of records; allowed: "
                         f"{_ALLOWED_FILES}")
    return value


def _object_file(name: str, text: str) -> list[Any] | Iterator[tuple[Any, str]]:
    """A file starting with `{`: one JSON document (CloudTrail's `Records`, or one record), or JSONL.
    The whole text is tried first; when it is no single document but its first line is an object,
    it is JSONL (and a bad line is reported as such); otherwise the document's own error is.
    Returns the `Records` list itself, or (record, origin) pairs (JSONL, one record)."""
    try:
        whole = codec.loads(text)
    except (ValueError, RecursionError) as error:
        first = text.lstrip().split("\n", 1)[0]
        try:
            head = codec.loads(first)
        except (ValueError, RecursionError):
            raise InputError(f"{name}: {_json_problem(error)}; allowed: {_ALLOWED_FILES}") from None
        if not isinstance(head, dict):
            raise InputError(f"{name}: {_json_problem(error)}; allowed: {_ALLOWED_FILES}") from None
        return _lines(name, text)
    if not isinstance(whole, dict):  # pragma: no cover - a text starting with "{" parses to a dict
        raise InputError(f"{name}: {_type(whole)} is not a record; allowed: {_ALLOWED_FILES}")
    if "Records" in whole:
        return _array(name, whole["Records"], "its Records")
    return iter(((whole, f"{name}:1"),))


def _lines(name: str, text: str) -> Iterator[tuple[Any, str]]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = codec.loads(line)
        except (ValueError, RecursionError) as error:
            problem = _json_problem(error).replace(" at line 1 column", " at column")
            raise InputError(f"{name}:{number}: {problem}; allowed in JSONL: one JSON object per "
                             "line, blank lines") from None
        yield record, f"{name}:{number}"


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), "null")


# -- records ----------------------------------------------------------------------------------------

def record_kind(record: dict[str, Any]) -> Kind | None:
    """The kind of a record by its shape, or None when it is none read here. OCSF first (its
    events keep the source's fields under `unmapped`, never at the top), then the SIEM transform's
    own detection (its Route 53 Resolver records are no input of the detector: None)."""
    metadata = record.get("metadata")
    if "class_uid" in record and isinstance(metadata, dict) and "version" in metadata:
        return "ocsf"
    kind = siem_record_kind(record)
    return _SIEM_KINDS.get(kind) if kind is not None else None


def event_from_record(record: Any, origin: str) -> Event:
    """One record as an Event, checked as a file's records are (InputError naming `origin`, what is
    wrong and what is allowed): for callers that receive records one by one (the stream function)."""
    return _event(record, origin)


def _event(record: Any, origin: str) -> Event:
    # The common case first, in a few lookups (the same answer record_kind gives): a CloudTrail
    # record with its time and id as CloudTrail writes them.
    if type(record) is dict and "eventVersion" in record and "class_uid" not in record:
        when = record.get("eventTime")
        uid = record.get("eventID")
        if ("eventSource" in record or "eventName" in record) and type(when) is str \
                and type(uid) is str and uid and len(when) <= 40:
            time_ms = iso_epoch_ms(when)
            if time_ms is not None and MIN_MS <= time_ms < END_MS:
                return _new_event(time_ms, "cloudtrail", uid, record, origin)
    return _checked_event(record, origin)


def _checked_event(record: Any, origin: str) -> Event:
    if not isinstance(record, dict):
        raise InputError(f"{origin}: the record is {_type(record)}, not a JSON object; allowed: "
                         f"{_ALLOWED_RECORDS}")
    kind = record_kind(record)
    if kind is None:
        keys = ", ".join(sorted(record)[:8]) or "none"
        raise InputError(f"{origin}: a record of no known kind (its keys: {keys}); allowed: "
                         f"{_ALLOWED_RECORDS}")
    uid: Any
    if kind == "cloudtrail":
        time_ms = _iso_time(record, "eventTime", origin)
        uid = record.get("eventID")
    elif kind == "ocsf":
        time_ms = _epoch_time(record, "time", origin, digits=False)
        uid = record["metadata"].get("uid")
    elif kind == "gateway":
        time_ms = _epoch_time(record, "requestTime", origin, digits=True)
        uid = record.get("requestId")
    elif kind == "inference":
        time_ms = _iso_time(record, "time", origin)
        uid = record.get("requestId")
    else:
        time_ms = _iso_time(record, "time", origin)
        uid = None
    if not isinstance(uid, str) or not uid:
        uid = origin
    return Event(time_ms, kind, uid, record, origin)


def _iso_time(record: dict[str, Any], field: str, origin: str) -> int:
    value = record.get(field)
    time_ms = iso_epoch_ms(value)  # None for a non-string, a length outside 10-40, no ISO time
    if time_ms is None:
        raise InputError(f"{origin}: {field} {_shown(value)} is not an ISO 8601 time; allowed: "
                         "a time such as 2026-12-07T10:20:00Z")
    return _in_range(time_ms, field, value, origin)


def _epoch_time(record: dict[str, Any], field: str, origin: str, *, digits: bool) -> int:
    value = record.get(field)
    time_ms: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        time_ms = value
    elif digits and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        time_ms = int(value)
    if time_ms is None:
        allowed = "an integer or a string of digits" if digits else "an integer"
        raise InputError(f"{origin}: {field} {_shown(value)} is not epoch milliseconds; allowed: "
                         f"{allowed}")
    return _in_range(time_ms, field, value, origin)


def _in_range(time_ms: int, field: str, value: Any, origin: str) -> int:
    if not MIN_MS <= time_ms < END_MS:
        raise InputError(f"{origin}: {field} {_shown(value)} is out of range; allowed: "
                         "1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z")
    return time_ms


def _shown(value: Any) -> str:
    if value is None:
        return "(missing)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- spilling ---------------------------------------------------------------------------------------

def _write_chunk(file: IO[bytes], chunk: list[tuple[int, str, str, dict[str, Any], str]]) -> None:
    """One chunk of a spilled run: its length (8 bytes) and its `marshal` form. marshal writes the
    JSON types (dict, list, str, int of any size, float including NaN, bool, None) exactly as they
    are, key order kept, and at about half pickle's cost (measured: 3.8 against 6.8 µs per
    CloudTrail event written, 4.2 against 5.2 read): the records hold nothing else."""
    data = marshal.dumps(chunk)
    file.write(len(data).to_bytes(8, "little"))
    file.write(data)


class _Spill:
    """Sorted runs written to temporary files (deleted on close), read back chunk by chunk."""

    def __init__(self) -> None:
        self._files: list[IO[bytes]] = []

    def __enter__(self) -> _Spill:
        return self

    def __exit__(self, *_: object) -> None:
        for file in self._files:
            file.close()

    def write(self, events: Iterable[Event]) -> None:
        # Kept open past this call (read back by `runs`): closed, and so deleted, by __exit__.
        file = tempfile.TemporaryFile(prefix="ztai-detect-")  # noqa: SIM115
        self._files.append(file)
        chunk: list[tuple[int, str, str, dict[str, Any], str]] = []
        for event in events:
            chunk.append((event.time_ms, event.kind, event.uid, event.record, event.origin))
            if len(chunk) >= SPILL_CHUNK:
                _write_chunk(file, chunk)
                chunk = []
        if chunk:
            _write_chunk(file, chunk)
        file.seek(0)

    def runs(self) -> list[Iterator[Event]]:
        return [self._read(file) for file in self._files]

    @staticmethod
    def _read(file: IO[bytes]) -> Iterator[Event]:
        while True:
            head = file.read(8)
            if not head:
                return
            # Our own file, written above in this process: nothing foreign is read.
            chunk = marshal.loads(file.read(int.from_bytes(head, "little")))
            for time_ms, kind, uid, record, origin in chunk:
                yield Event(time_ms, kind, uid, record, origin)
