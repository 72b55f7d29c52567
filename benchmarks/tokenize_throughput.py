"""Benchmark: deterministic tokenization of one CSV column, against plain CSV read + write.

Run with `./run bench tokenize` (or `python -m benchmarks.tokenize_throughput`). Everything is
measured in this run, on one generated file (default 1,000,000 rows of id, email, country, amount;
200,000 distinct emails), median of several repetitions, interleaved so drift hits both alike:

- baseline: `csv.reader` → `csv.writer` of the same file, nothing else;
- tokenize: the CLI's engine (`ztai_runtime.tokenize.stream.run`) replacing the email column by
  `tk1_` tokens, with its checkpoints (every 50,000 rows, synced) and the final rename;
- MAC only: `DeterministicTokenizer.tokens` over the same emails in memory (the cryptographic share).

The domain key is random and in memory: deriving it is one KMS call per run, not per row, so KMS
plays no part in the per-row cost. The work is single-threaded; rows per second of CPU time is the
per-core figure. Reported as ratios to the baseline; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ztai_runtime.tokenize.deterministic import DeterministicTokenizer
from ztai_runtime.tokenize.keys import PURPOSE_TOKEN, DomainKey
from ztai_runtime.tokenize.stream import StreamJob, run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_ROWS_PER_SECOND = 100_000


def generate(path: Path, rows: int, distinct: int) -> None:
    generator = random.Random(20240611)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "email", "country", "amount"])
        for index in range(rows):
            writer.writerow([index, f"user{generator.randrange(distinct)}@example.com",
                             generator.choice(("DE", "FR", "NL", "PL", "")),
                             f"{generator.random() * 1000:.2f}"])


def measure(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated CSV")
    parser.add_argument("--distinct", type=int, default=200_000, help="distinct emails")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement")
    args = parser.parse_args()
    logging.getLogger("ztai.tokenize").setLevel(logging.WARNING)  # one decision line per run: noise here
    tokenizer = DeterministicTokenizer(DomainKey(PURPOSE_TOKEN, "benchmark", "in-memory",
                                                 os.urandom(32)))

    with tempfile.TemporaryDirectory() as temp:
        source = Path(temp) / "in.csv"
        generate(source, args.rows, args.distinct)
        with open(source, newline="", encoding="utf-8") as handle:
            emails = [row[1] for row in csv.reader(handle)][1:]

        def baseline() -> None:
            with open(source, newline="", encoding="utf-8") as reader_handle, \
                    open(Path(temp) / "plain.csv", "w", newline="", encoding="utf-8") as writer_handle:
                csv.writer(writer_handle).writerows(csv.reader(reader_handle))

        def tokenize() -> None:
            run(StreamJob(source=source, destination=Path(temp) / "tokens.csv", file_format="csv",
                          columns=("email",), parameters={"mode": "deterministic"}, force=True),
                tokenizer.tokens)

        def mac_only() -> None:
            tokenizer.tokens(emails)

        variants: dict[str, Callable[[], None]] = {"baseline": baseline, "tokenize": tokenize,
                                                    "mac_only": mac_only}
        wall: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, action in variants.items():
                elapsed, used = measure(action)
                wall[name].append(elapsed)
                cpu[name].append(used)
        with open(Path(temp) / "tokens.csv", newline="", encoding="utf-8") as handle:
            tokenized = sum(1 for _ in csv.reader(handle)) - 1
        if tokenized != args.rows:
            raise SystemExit(f"the tokenized file has {tokenized} rows, expected {args.rows}")

    median_wall = {name: statistics.median(values) for name, values in wall.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    rate = {name: args.rows / median_wall[name] for name in variants}
    rate_cpu = {name: args.rows / median_cpu[name] for name in variants}
    ratio = median_wall["tokenize"] / median_wall["baseline"]

    print(f"machine: {os.cpu_count()} cores (one used), Python {sys.version.split()[0]}, "
          f"{args.rows:,} rows, median of {args.repeat} runs each\n")
    print("| measurement | wall time (s) | rows/s (wall) | rows/s (CPU, one core) | time vs. baseline |")
    print("|---|---:|---:|---:|---:|")
    labels = {"baseline": "plain CSV read + write (baseline)",
              "tokenize": "deterministic tokenization of one column (file to file)",
              "mac_only": "tk1_ tokens alone, in memory"}
    for name, label in labels.items():
        print(f"| {label} | {median_wall[name]:.2f} | {rate[name]:,.0f} | {rate_cpu[name]:,.0f} | "
              f"{median_wall[name] / median_wall['baseline']:.2f} |")
    met = "met" if min(rate["tokenize"], rate_cpu["tokenize"]) >= TARGET_ROWS_PER_SECOND else "NOT met"
    print(f"\ntarget ≥ {TARGET_ROWS_PER_SECOND:,} rows/s per core: {met} "
          f"(tokenizing costs {ratio:.2f}× the plain read + write)")

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tokenize_throughput.json").write_text(json.dumps({
        "rows": args.rows, "distinct": args.distinct, "wall_s": wall, "cpu_s": cpu,
        "median_wall_s": median_wall, "rows_per_s": rate, "rows_per_cpu_s": rate_cpu,
        "ratio_to_baseline": ratio,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
