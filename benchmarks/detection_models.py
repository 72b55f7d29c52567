"""Evaluation of the behavioural models alone (`ztai_runtime.detect.models.Behaviour`): false
findings on weeks of benign activity, which attack techniques they flag, and their cost per event.

Run with `python -m benchmarks.detection_models [--dataset DIR] [--seeds 1,2,3]`. It prints the
tables docs/detection-models.md quotes. Nothing here asserts a figure.

1. Benign: `benchmarks.detection_data.benign_activity` (21 days, 2,000 events a weekday) for each
   seed and two windows (one that starts on a Monday, one that spans the 1st of a month: the key
   rotation), run through `Engine([Behaviour()])` in event-time order. Every finding is false; they
   are counted per 10,000 benign events after the baseline (the first 7 days), at every severity
   and at medium or above.
2. Techniques: the Stratus Red Team records mixed into the first window (`mixed`), one technique
   every two hours on weekday afternoons of weeks two and three, in three variants:
   - `recorded`: as recorded (re-homed): the actor is mostly an IAM user with an AKIA key and a
     stratus user agent, which give it away without any model of behaviour;
   - `insider`: each record's identity replaced by a data curator's own session (a principal with
     weeks of normal behaviour), keeping the record's address and user agent;
   - `careful`: the curator's identity, and their own address and user agent: only what was done
     (the APIs, the volume, the failures) can give them away.
   A technique is flagged when a finding lists one of its eventIDs; the models that did are named.
3. Cost: `Behaviour.observe` over the benign events of the first window (principal computed
   beforehand), in CPU time of this process, best and median of five runs, next to `json.loads`
   of the same records as lines in the same runs (the parse every event costs anyway).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.detection_data import benign_activity, load_stratus, mixed
from ztai_runtime.detect.engine import Engine, Finding
from ztai_runtime.detect.models import Behaviour
from ztai_runtime.detect.signals import SEVERITY_RANK, principal_of
from ztai_runtime.detect.sources import Event, event_from_record

ROOT = Path(__file__).resolve().parent.parent
DATASET_CANDIDATES = (ROOT.parent / "shared" / "datasets" / "stratus-red-team",
                      ROOT.parent.parent / "shared" / "datasets" / "stratus-red-team",
                      ROOT.parent.parent.parent / "shared" / "datasets" / "stratus-red-team")
WINDOWS = (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
DAYS = 21
BASELINE_MS = 7 * 86_400_000
CURATOR = "zero-trust-ai-prod-data-curator/anna.schmidt"


def events_of(records: Sequence[dict[str, Any]]) -> list[Event]:
    events = [event_from_record(record, f"r:{index}") for index, record in enumerate(records)]
    events.sort(key=lambda event: event.time_ms)  # stable: equal times keep the input's order
    return events


def run(events: Sequence[Event]) -> list[Finding]:
    engine = Engine([Behaviour()])
    for event in events:
        engine.process(event)
    return engine.finish()


def benign(seeds: Sequence[int]) -> None:
    print("| window | seed | benign events after the baseline | findings (severities) | per 10k | "
          "per 10k at medium+ |")
    print("|---|---|---|---|---|---|")
    for start in WINDOWS:
        for seed in seeds:
            events = events_of(list(benign_activity(start=start, days=DAYS, seed=seed)))
            after = sum(1 for e in events if e.time_ms >= events[0].time_ms + BASELINE_MS)
            findings = run(events)
            severities = Counter(f.severity for f in findings)
            medium = sum(1 for f in findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK["medium"])
            shown = ", ".join(f"{n} {s}" for s, n in sorted(severities.items())) or "none"
            print(f"| {start.date()} | {seed} | {after:,} | {len(findings)} ({shown}) | "
                  f"{len(findings) / after * 1e4:.2f} | {medium / after * 1e4:.2f} |")
            for finding in findings:
                print(f"|  | | {finding.rule} {finding.severity} | {finding.principal} | "
                      f"{finding.reason[:120]} | |")


def _as_curator(techniques: dict[str, list[dict[str, Any]]], curator: dict[str, Any],
                careful: bool) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, records in techniques.items():
        moved = []
        for record in records:
            record = json.loads(json.dumps(record))
            record["userIdentity"] = json.loads(json.dumps(curator["userIdentity"]))
            if careful:
                record["sourceIPAddress"] = curator["sourceIPAddress"]
                record["userAgent"] = curator["userAgent"]
            moved.append(record)
        out[name] = moved
    return out


def techniques(dataset: Path, seed: int) -> None:
    start = WINDOWS[0]
    base = list(benign_activity(start=start, days=DAYS, seed=seed))
    stratus = load_stratus(dataset)
    curator = next(r for r in base if CURATOR in r["userIdentity"].get("arn", "")
                   and r["eventName"] == "GetObject" and not r["sourceIPAddress"].startswith("10."))
    names = sorted(stratus)
    at = {name: start + timedelta(days=8 + (i // 3) % 12, hours=10 + 2 * (i % 3), minutes=7)
          for i, name in enumerate(names)}
    results: dict[str, dict[str, str]] = defaultdict(dict)
    false: dict[str, int] = {}
    for variant in ("recorded", "insider", "careful"):
        chosen = stratus if variant == "recorded" else _as_curator(stratus, curator, variant == "careful")
        records, truth = mixed(base, chosen, at, seed=seed)
        owner = {event_id: name for name, ids in truth.items() for event_id in ids}
        findings = run(events_of(records))
        flagged: dict[str, set[str]] = defaultdict(set)
        false[variant] = 0
        for finding in findings:
            hits = [owner[i] for i in finding.event_ids if i in owner]
            for name in hits:
                flagged[name].add(f"{finding.rule.removeprefix('model:')} ({finding.severity})")
            if len(hits) < len(finding.event_ids):
                false[variant] += 1
        for name in names:
            results[name][variant] = ", ".join(sorted(flagged[name])) or "**missed**"
    print("| technique | as recorded | as an insider (curator's identity) | careful insider "
          "(identity, network and client) |")
    print("|---|---|---|---|")
    for name in names:
        row = results[name]
        print(f"| {name} | {row['recorded']} | {row['insider']} | {row['careful']} |")
    print(f"\nfindings holding a benign event: {false}")


def cost() -> None:
    records = list(benign_activity(start=WINDOWS[0], days=DAYS, seed=1))
    lines = [json.dumps(record) for record in records]
    events = events_of(records)
    principals = [principal_of(event) for event in events]
    observe: list[float] = []
    parse: list[float] = []
    for _ in range(5):
        model = Behaviour()
        begin = time.process_time()
        for event, principal in zip(events, principals, strict=True):
            model.observe(event, principal)
        observe.append((time.process_time() - begin) / len(events) * 1e6)
        begin = time.process_time()
        for line in lines:
            json.loads(line)
        parse.append((time.process_time() - begin) / len(lines) * 1e6)
    state = len(json.dumps(model.to_state()))
    print(f"observe(): best {min(observe):.2f} µs, median {statistics.median(observe):.2f} µs per event; "
          f"json.loads of the same records: best {min(parse):.2f} µs, "
          f"median {statistics.median(parse):.2f} µs ({len(events):,} events, CPU time)")
    print(f"learned state after 21 days: {state:,} bytes of JSON for {len(model.principals)} principals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="the stratus-red-team folder (aws.*.json)")
    parser.add_argument("--seeds", default="1,2,3", help="benign seeds, comma-separated (default 1,2,3)")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    benign(seeds)
    print()
    dataset = args.dataset or next((d for d in DATASET_CANDIDATES if any(d.glob("aws.*.json"))), None)
    if dataset is None:
        print("no Stratus Red Team data set found (--dataset DIR): techniques not evaluated")
    else:
        techniques(dataset, seeds[0])
    print()
    cost()


if __name__ == "__main__":
    main()
