"""Benchmark: `ztai detect`'s throughput end to end on CloudTrail files as S3 delivers them, against
plain JSON parsing of the same files in the same run.

Run with `./run bench detect` (or `python -m benchmarks.detection_throughput`). The corpus is the
detection evaluation's (`benchmarks.detection_eval`: `--days` of benign activity, 2,000 records on
a weekday by default, with the 35 Stratus Red Team techniques mixed in), written once to a
temporary folder as gzip'd `{"Records": [...]}` files, one per region and five minutes; or any
folder of CloudTrail files (`--corpus`); `--busy 20000` also times a busier account's corpus (ten
times the records in about as many files: some 60 events per file against 6). The files are read
from disk in every run (the page cache holds them after the first). In one process pinned to one
core, each variant `--repeat` times, the variants interleaved so that load on the shared machine
hits them alike, median:

- plain parse (the baseline): for each file, read, `gzip.decompress`, `json.loads`, iterate its
  records; and the same with orjson, for reference;
- the reader alone: `read_events` over the folder as `ztai detect` reads it, the windowed read
  (listing, gunzip, parse, an Event per record, the order in event time across files; the cyclic
  garbage collector paused, as `run_files` pauses it), every event iterated; and the exact read
  (every event held before the first is yielded, spilled to disk past 100,000), which `ztai
  detect` falls back to when an event comes later than the window;
- end to end: `run_files` (the windowed read, `Engine.process` for every event) and
  `Engine.finish`, the engine `ztai_runtime.detect.build.build_engine()` with its defaults (what
  `ztai detect` runs);
- end to end with the standard library only (no orjson: `ztai_runtime.siem.codec.use_fast(False)`).

"Per core" is per second of CPU time of this one process: on the shared machine, wall time also
counts the other processes' turns. The target is judged on end to end: at least 50,000 events/s
per core. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.detection_data import load_stratus
from benchmarks.detection_eval import DEFAULT_START, build_corpus, find_dataset
from ztai_runtime.detect.build import WINDOW_MS, build_engine, run_files
from ztai_runtime.detect.engine import Engine
from ztai_runtime.detect.sources import WindowExceededError, collector_paused, read_events
from ztai_runtime.siem import codec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_EVENTS_PER_SECOND = 50_000


def pin_one_core() -> str:
    """Run on one core so that 'per core' is what is measured."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def corpus_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def measure(action: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, events the action counted)."""
    gc.collect()
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    events = action()
    return (time.perf_counter_ns() - wall) / 1e9, (time.process_time_ns() - cpu) / 1e9, events


def variants(folder: Path, engine_factory: Callable[[], Engine]) -> dict[str, Callable[[], int]]:
    files = corpus_files(folder)
    try:
        import orjson
    except ImportError:
        orjson = None  # type: ignore[assignment]

    def plain() -> int:
        count = 0
        for path in files:
            for _ in json.loads(gzip.decompress(path.read_bytes()))["Records"]:
                count += 1
        return count

    def plain_orjson() -> int:
        count = 0
        for path in files:
            for _ in orjson.loads(gzip.decompress(path.read_bytes()))["Records"]:
                count += 1
        return count

    def reader() -> int:
        count = 0
        try:
            with collector_paused():  # as run_files reads
                for _ in read_events([folder], window_ms=WINDOW_MS):
                    count += 1
        except WindowExceededError as late:
            raise SystemExit(f"detection_throughput: the windowed read does not hold here ({late}); "
                             "ztai detect would read this folder twice") from None
        return count

    def reader_exact() -> int:
        count = 0
        for _ in read_events([folder]):
            count += 1
        return count

    def end_to_end() -> int:
        engine, reread = run_files([folder], engine_factory)
        if reread is not None:  # the figure would include a second reading: not what it says
            raise SystemExit(f"detection_throughput: the windowed read does not hold here ({reread})")
        engine.finish()
        return engine.events

    def end_to_end_stdlib() -> int:
        codec.use_fast(False)
        try:
            return end_to_end()
        finally:
            codec.use_fast(True)

    out: dict[str, Callable[[], int]] = {"plain": plain}
    if orjson is not None:
        out["plain_orjson"] = plain_orjson
    out.update({"reader": reader, "reader_exact": reader_exact, "end_to_end": end_to_end,
                "end_to_end_stdlib": end_to_end_stdlib})
    return out


LABELS = {"plain": "plain parse: read + gunzip + json.loads, records iterated (baseline)",
          "plain_orjson": "plain parse with orjson.loads (for reference)",
          "reader": "the reader alone: read_events, the windowed read (events in time order)",
          "reader_exact": "the exact read (every event held, spilled past 100,000; for reference)",
          "end_to_end": "**end to end**: run_files (the windowed read, engine.process) + finish",
          "end_to_end_stdlib": "end to end, standard library only (no orjson)"}


def run(folder: Path, *, repeat: int,
        engine_factory: Callable[[], Engine] = build_engine) -> dict[str, Any]:
    """Every variant `repeat` times over `folder`, interleaved; medians, rates and ratios."""
    actions = variants(folder, engine_factory)
    fast = codec.use_fast(True)
    counts = {name: action() for name, action in actions.items()}  # warm-up (and the page cache)
    if len(set(counts.values())) != 1:
        raise SystemExit(f"detection_throughput: the variants saw different event counts: {counts}")
    events = counts["plain"]
    wall: dict[str, list[float]] = {name: [] for name in actions}
    cpu: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            elapsed, used, _ = measure(action)
            wall[name].append(elapsed)
            cpu[name].append(used)
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "events": events, "files": len(corpus_files(folder)), "repeat": repeat,
        "fast_libraries": list(fast), "wall_s": wall, "cpu_s": cpu, "median_cpu_s": median_cpu,
        "events_per_cpu_s": {name: events / seconds if seconds else 0.0
                             for name, seconds in median_cpu.items()},
        "cpu_vs_plain": {name: seconds / median_cpu["plain"] if median_cpu["plain"] else 0.0
                         for name, seconds in median_cpu.items()},
        "per_event_us": {name: 1e6 * seconds / events if events else 0.0
                         for name, seconds in median_cpu.items()},
        "detectors": [detector.name for detector in engine_factory().detectors],
    }


def report(result: dict[str, Any], pinned: str, corpus: str) -> str:
    detectors = ", ".join(result["detectors"]) or "none (the engine as build_engine() makes it today)"
    per_file = result["events"] / max(1, result["files"])
    lines = [f"machine: {os.cpu_count()} cores, {pinned}, Python {sys.version.split()[0]}; {corpus}: "
             f"{result['events']:,} events in {result['files']:,} files ({per_file:.1f} per file); "
             f"median of {result['repeat']} runs",
             f"detectors: {detectors}; "
             f"fast libraries: {', '.join(result['fast_libraries']) or 'none installed'}", "",
             "| measurement | events/s per core (CPU) | µs per event | CPU time vs. plain parse |",
             "|---|---:|---:|---:|"]
    for name, label in LABELS.items():
        if name in result["events_per_cpu_s"]:
            lines.append(f"| {label} | {result['events_per_cpu_s'][name]:,.0f} | "
                         f"{result['per_event_us'][name]:.1f} | {result['cpu_vs_plain'][name]:.2f} |")
    rate = result["events_per_cpu_s"]["end_to_end"]
    lines += ["", f"end to end: target ≥ {TARGET_EVENTS_PER_SECOND:,} events/s per core: "
              f"{'met' if rate >= TARGET_EVENTS_PER_SECOND else 'NOT met'} ({rate:,.0f})"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, *, engine_factory: Callable[[], Engine] = build_engine) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="time this folder of CloudTrail files instead of "
                        "generating the evaluation corpus")
    parser.add_argument("--dataset", type=Path,
                        help="the stratus-red-team folder (found beside the checkout by default)")
    parser.add_argument("--days", type=int, default=28, help="days of generated activity (default 28)")
    parser.add_argument("--events-per-day", type=int, default=2000,
                        help="benign records on a weekday (default 2000)")
    parser.add_argument("--busy", type=int, metavar="EVENTS_PER_DAY",
                        help="also time a busier account: the evaluation corpus generated with this many "
                        "benign records a weekday (20000 gives about 60 events per file, against 6 by "
                        "default); both corpora are reported")
    parser.add_argument("--seed", type=int, default=14, help="seed of the generated corpus (default 14)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant (median; default 5)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder for detection_throughput.json")
    args = parser.parse_args(argv)
    for name in ("repeat", "events_per_day"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    if args.busy is not None and args.busy < 1:
        parser.error(f"--busy must be at least 1 (records a weekday), not {args.busy}")
    if args.days < 8:
        parser.error(f"--days must be at least 8 (a week of baseline, then the attacks), not {args.days}")
    if args.corpus is not None and not (args.corpus.is_dir() and any(args.corpus.rglob("*.json*"))):
        parser.error(f"--corpus {args.corpus}: not a folder holding CloudTrail files (*.json, *.json.gz)")
    pinned = pin_one_core()
    start = DEFAULT_START.astimezone(UTC)

    def generated(folder: Path, events_per_day: int) -> str:
        build_corpus(folder, techniques=load_stratus(find_dataset(args.dataset)), start=start,
                     days=args.days, seed=args.seed, events_per_day=events_per_day)
        return (f"the evaluation corpus ({args.days} days from {start.date()}, "
                f"{events_per_day:,} records a weekday, seed {args.seed})")

    with tempfile.TemporaryDirectory(prefix="ztai-detect-bench-") as scratch:
        if args.corpus is not None:
            folder, corpus = args.corpus, f"the folder {args.corpus}"
        else:
            folder = Path(scratch)
            corpus = generated(folder, args.events_per_day)
        result = run(folder, repeat=args.repeat, engine_factory=engine_factory)
    print(report(result, pinned, corpus))
    out: dict[str, Any] = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "pinned": pinned,
                           "corpus": corpus, "python": sys.version.split()[0], **result}
    if args.busy is not None:
        # A busier account: ten times the records in about as many files (CloudTrail delivers one
        # file per region and five minutes), so the per-file costs weigh less and the reader's
        # spilling to disk (beyond its buffer of events) comes in.
        with tempfile.TemporaryDirectory(prefix="ztai-detect-bench-busy-") as scratch:
            busy_corpus = "a busier account: " + generated(Path(scratch), args.busy)
            busy = run(Path(scratch), repeat=args.repeat, engine_factory=engine_factory)
        print(report(busy, pinned, busy_corpus))
        out["busy"] = {"corpus": busy_corpus, **busy}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "detection_throughput.json").write_text(json.dumps(out, indent=2) + "\n",
                                                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
