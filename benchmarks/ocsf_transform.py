"""Benchmark: the SIEM stream's OCSF transform on real CloudTrail records, against plain
`json.loads` + `json.dumps` of the same records.

Run with `./run bench siem` (or `python -m benchmarks.ocsf_transform`). The records are the
stratus-red-team data set (CloudTrail records of 35 attack techniques), replicated to about
50,000 events and held in memory (no file I/O is timed). In one process pinned to one core, median
of several runs, the variants interleaved so that load on the shared machine hits them alike:

- baseline: `json.dumps(json.loads(line))` of every record line (standard library json), the
  issue's baseline; and the same with orjson (`orjson.dumps(orjson.loads(line))`), for reference;
- mapping: `ztai_runtime.siem.firehose.ocsf_lines`, what the transform does per log event: the
  OCSF mapping (`to_ocsf`) and its compact JSON, or the line forwarded when unmapped; called on
  one record's events at a time (`--events-per-record`), as the transform calls it;
- end to end: `transform_records` on the same events packed as Firehose records (base64 of gzip'd
  CloudWatch Logs payloads of `--events-per-record` events), base64 and gzip both ways included,
  in invocations as Firehose makes them: consecutive records up to the processor's buffer
  (`--invocation-bytes`, 0.2 MB as components/siem_stream.py sets it; at least one record each),
  each answered within the real response budget and then let go, as Lambda returns it. Every
  record must come back Ok (none left over for re-ingestion), or the run stops;
- the envelope alone: the same with a mapping that maps nothing (every line forwarded, redacted),
  which is the contract's own cost (base64, gzip, the payload's JSON, the response) without OCSF;
- end to end with the standard library only: what the transform costs where orjson and pybase64
  are not installed (the fallback of ztai_runtime.siem.codec).

The transform function ships orjson and pybase64 (components/siem_stream.py): the targets are
judged on the runs that use them. Without them installed here, every run is the fallback, and the
report says so.

"Per core" is per second of CPU time of this one process (pinned to one core): on the shared
machine, wall time also counts the other processes' turns. The targets are judged on it.

Then, in a separate pass (tracemalloc slows allocation, so it is never timed), the peak memory
of `transform_records` on batches of 1k, 10k and 50k events, each batch alone, and the same batch
three times in a row: the peak should grow in proportion to the batch and not across batches.
Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import base64
import gc
import gzip
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from ztai_runtime.siem import codec, firehose
from ztai_runtime.siem.ocsf import to_ocsf

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATASET_CANDIDATES = (ROOT.parent / "shared" / "datasets" / "stratus-red-team",
                      ROOT.parent.parent / "shared" / "datasets" / "stratus-red-team")
LOG_GROUP = "/zero-trust-ai/bench/cloudtrail"
TARGET_EVENTS_PER_SECOND = 50_000
TARGET_RATIO = 3.0
MEMORY_BATCHES = (1_000, 10_000, 50_000)
# Firehose's processor buffer for the transform: PROCESSOR_BUFFER_MB "0.2" in
# components/siem_stream.py, read as 200,000 bytes (the smaller reading of "MB").
INVOCATION_BYTES = 200_000


def load_lines(directory: Path | None) -> list[str]:
    """Every CloudTrail record of the data set as one line, as CloudWatch Logs carries it."""
    candidates = (directory,) if directory else DATASET_CANDIDATES
    for candidate in candidates:
        files = sorted(candidate.glob("*.json")) if candidate.is_dir() else []
        if files:
            return [json.dumps(record) for path in files for record in json.loads(path.read_text())]
    where = ", ".join(str(candidate) for candidate in candidates)
    print(f"ocsf_transform: no stratus-red-team JSON files in {where}; give the data set's "
          "directory with --dataset", file=sys.stderr)
    raise SystemExit(2)


def replicate(lines: Sequence[str], events: int) -> list[str]:
    return [lines[index % len(lines)] for index in range(events)]


def firehose_records(lines: Sequence[str], per_record: int) -> list[dict[str, Any]]:
    """The lines as a Firehose transformation batch: gzip'd subscription payloads, base64."""
    records = []
    for start in range(0, len(lines), per_record):
        payload = {"owner": "111122223333", "logGroup": LOG_GROUP, "logStream": "bench",
                   "subscriptionFilters": ["siem"], "messageType": "DATA_MESSAGE",
                   "logEvents": [{"id": str(start + index), "timestamp": 1764583200000 + index,
                                  "message": line}
                                 for index, line in enumerate(lines[start:start + per_record])]}
        data = base64.b64encode(gzip.compress(json.dumps(payload).encode(), 6)).decode("ascii")
        records.append({"recordId": f"r{start}", "approximateArrivalTimestamp": 0, "data": data})
    return records


def invocations(records: list[dict[str, Any]], limit: int) -> list[list[dict[str, Any]]]:
    """The records in Firehose-sized invocations: consecutive records whose data adds up to at
    most `limit` bytes, at least one record each."""
    batches: list[list[dict[str, Any]]] = []
    size = limit + 1
    for record in records:
        if size + len(record["data"]) > limit:
            batches.append([])
            size = 0
        batches[-1].append(record)
        size += len(record["data"])
    return batches


def pin_one_core() -> str:
    """Run on one core so that 'per core' is what is measured."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def measure(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    gc.collect()
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    action()
    return (time.perf_counter_ns() - wall) / 1e9, (time.process_time_ns() - cpu) / 1e9


def peak_memory(records: list[dict[str, Any]]) -> tuple[int, int]:
    """(peak bytes traced during one transform of the batch, bytes still held after it is freed)."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    result = firehose.transform_records(records, response_budget=sys.maxsize)
    peak = tracemalloc.get_traced_memory()[1] - before
    del result
    gc.collect()
    return peak, tracemalloc.get_traced_memory()[0] - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="the stratus-red-team directory (found beside "
                        "the checkout by default)")
    parser.add_argument("--events", type=int, default=50_000, help="events per timed run")
    parser.add_argument("--events-per-record", type=int, default=500,
                        help="log events per Firehose record (one CloudWatch Logs payload)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant (median)")
    parser.add_argument("--invocation-bytes", type=int, default=INVOCATION_BYTES,
                        help="record data per transform invocation (Firehose's processor buffer)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="directory for ocsf_transform.json (default benchmarks/results)")
    parser.add_argument("--memory-batches", type=int, nargs="+", default=list(MEMORY_BATCHES),
                        help="batch sizes (events) of the memory pass")
    args = parser.parse_args()
    for name in ("events", "events_per_record", "repeat", "invocation_bytes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if any(size < 1 for size in args.memory_batches):
        parser.error("--memory-batches sizes must be at least 1")

    source = load_lines(args.dataset)
    pinned = pin_one_core()
    lines = replicate(source, args.events)
    records = firehose_records(lines, args.events_per_record)
    dumps = json.dumps
    loads = json.loads
    fast = codec.use_fast(True)
    try:
        import orjson
    except ImportError:
        orjson = None  # type: ignore[assignment]

    def baseline() -> None:
        for line in lines:
            dumps(loads(line))

    def baseline_orjson() -> None:
        if orjson is not None:
            fast_dumps, fast_loads = orjson.dumps, orjson.loads
            for line in lines:
                fast_dumps(fast_loads(line))

    chunks = [lines[start:start + args.events_per_record]
              for start in range(0, len(lines), args.events_per_record)]

    def mapping() -> None:
        # One record's events at a time, as the transform maps them: holding every output line of
        # the run at once would time the allocation of fresh memory (~160 MB) rather than the mapping.
        stats = firehose.TransformStats()
        for chunk in chunks:
            firehose.ocsf_lines(chunk, LOG_GROUP, stats)

    batches = invocations(records, args.invocation_bytes)

    def end_to_end() -> None:
        for batch in batches:
            firehose.transform_records(batch)

    def forward(message: str, *, log_group: str = "") -> None:
        return None

    def envelope() -> None:
        for batch in batches:
            firehose.transform_records(batch, mapper=forward)

    def end_to_end_stdlib() -> None:
        codec.use_fast(False)
        try:
            end_to_end()
        finally:
            codec.use_fast(True)

    # The check, also the warm-up: every record Ok within the real budget, every event answered.
    stats = firehose.TransformStats()
    for batch in batches:
        check = firehose.transform_records(batch)
        if {output["result"] for output in check.outputs} != {"Ok"}:
            raise SystemExit(f"an invocation of {len(batch)} records left {check.stats.reingested_records} "
                             "for re-ingestion: lower --invocation-bytes or --events-per-record")
        for item in fields(stats):
            setattr(stats, item.name, getattr(stats, item.name) + getattr(check.stats, item.name))
    if stats.events != args.events:
        raise SystemExit(f"the transform answered {stats.events} events of {args.events}")
    baseline()
    mapping()

    variants: dict[str, Callable[[], None]] = {"baseline": baseline, "mapping": mapping,
                                                "end_to_end": end_to_end, "envelope": envelope,
                                                "end_to_end_stdlib": end_to_end_stdlib}
    if orjson is not None:
        variants["baseline_orjson"] = baseline_orjson
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, action in variants.items():
            elapsed, used = measure(action)
            wall[name].append(elapsed)
            cpu[name].append(used)
    median_wall = {name: statistics.median(values) for name, values in wall.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    rate = {name: args.events / median_wall[name] for name in variants}
    rate_cpu = {name: args.events / median_cpu[name] for name in variants}
    ratio = {name: median_cpu[name] / median_cpu["baseline"] for name in variants}

    print(f"machine: {os.cpu_count()} cores, {pinned}, Python {sys.version.split()[0]}; "
          f"{len(source)} stratus-red-team records replicated to {args.events:,} events "
          f"({args.events_per_record} per Firehose record, {len(records)} records in {len(batches)} "
          f"invocations of at most {args.invocation_bytes:,} bytes); median of {args.repeat} runs each")
    print(f"mapping: {to_ocsf.__module__}.to_ocsf; mapped {stats.mapped_events:,}, "
          f"forwarded unmapped {stats.unmapped_events:,}")
    print("fast libraries: " + (", ".join(fast) if fast else
                                "NONE installed here: every run below is the standard-library fallback, "
                                "not what the function ships") + "\n")
    print("| measurement | wall time (s) | events/s (wall) | events/s per core (CPU) "
          "| CPU time vs. baseline |")
    print("|---|---:|---:|---:|---:|")
    labels = {"baseline": "plain json.loads + json.dumps (baseline)",
              "baseline_orjson": "plain orjson.loads + orjson.dumps (for reference)",
              "mapping": "OCSF mapping + serialisation, per event",
              "end_to_end": "end to end: Firehose records in, response records out",
              "envelope": "the envelope alone (end to end, nothing mapped)",
              "end_to_end_stdlib": "end to end, standard library only (the fallback)"}
    for name, label in labels.items():
        if name not in variants:
            continue
        print(f"| {label} | {median_wall[name]:.3f} | {rate[name]:,.0f} | {rate_cpu[name]:,.0f} | "
              f"{ratio[name]:.2f} |")
    for name in ("mapping", "end_to_end"):
        met = rate_cpu[name] >= TARGET_EVENTS_PER_SECOND and ratio[name] <= TARGET_RATIO
        print(f"{labels[name]}: target ≥ {TARGET_EVENTS_PER_SECOND:,} events/s per core and "
              f"≤ {TARGET_RATIO:.0f}× the baseline: {'met' if met else 'NOT met'}")

    # Memory: never timed. Each batch size alone, then one size three times in a row.
    tracemalloc.start()
    memory: list[dict[str, Any]] = []
    print("\n| batch (events) | input (bytes) | peak traced (bytes) | peak per event (bytes) | held after |")
    print("|---:|---:|---:|---:|---:|")
    for size in args.memory_batches:
        batch = firehose_records(replicate(source, size), args.events_per_record)
        input_bytes = sum(len(item["data"]) for item in batch)
        peak, held = peak_memory(batch)
        memory.append({"events": size, "input_bytes": input_bytes, "peak_bytes": peak, "held_bytes": held})
        print(f"| {size:,} | {input_bytes:,} | {peak:,} | {peak // size:,} | {held:,} |")
    repeated_size = args.memory_batches[len(args.memory_batches) // 2]
    batch = firehose_records(replicate(source, repeated_size), args.events_per_record)
    repeated = [peak_memory(batch)[0] for _ in range(3)]
    tracemalloc.stop()
    print(f"\nthe {repeated_size:,}-event batch three times in a row, peaks: "
          + ", ".join(f"{peak:,}" for peak in repeated))

    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "ocsf_transform.json").write_text(json.dumps({
        "events": args.events, "events_per_record": args.events_per_record, "repeat": args.repeat,
        "pinned": pinned, "mapped": stats.mapped_events, "unmapped": stats.unmapped_events,
        "wall_s": wall, "cpu_s": cpu, "median_wall_s": median_wall, "events_per_s": rate,
        "events_per_cpu_s": rate_cpu, "ratio_to_baseline": ratio, "memory": memory,
        "repeated_peaks": repeated, "mapper": to_ocsf.__module__, "fast_libraries": list(fast),
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
