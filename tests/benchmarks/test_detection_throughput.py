"""`./run bench detect` (benchmarks/detection_throughput.py): a tiny run produces sane figures, and
bad options end in a usage error naming what is wrong. No time is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.detection_data import benign_activity
from benchmarks.detection_eval import write_cloudtrail

ROOT = Path(__file__).resolve().parents[2]


def bench(*options: str) -> subprocess.CompletedProcess[str]:
    # A process of its own: the benchmark pins itself to one core.
    return subprocess.run([sys.executable, "-m", "benchmarks.detection_throughput", *options], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_tiny_corpus_gives_every_figure(tmp_path: Path) -> None:
    records = list(benign_activity(start=datetime(2026, 11, 16, tzinfo=UTC), days=1, seed=2,
                                   events_per_day=300))
    files = write_cloudtrail(tmp_path / "corpus", records, account="111122223333", seed=2)
    result = bench("--corpus", str(tmp_path / "corpus"), "--repeat", "2", "--results", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "detection_throughput.json").read_text())
    assert data["events"] == len(records) and data["files"] == files and data["repeat"] == 2
    names = {"plain", "reader", "reader_exact", "end_to_end", "end_to_end_stdlib"}
    assert names <= set(data["events_per_cpu_s"])
    for name in names:
        assert len(data["cpu_s"][name]) == 2
        assert data["events_per_cpu_s"][name] > 0 and data["per_event_us"][name] > 0
    assert data["cpu_vs_plain"]["plain"] == pytest.approx(1.0)
    assert "end to end: target ≥ 50,000 events/s per core:" in result.stdout
    assert "| the reader alone: read_events, the windowed read (events in time order) |" in result.stdout


@pytest.mark.parametrize(("options", "problem"), [
    (["--repeat", "0"], "--repeat must be at least 1"),
    (["--events-per-day", "0"], "--events-per-day must be at least 1"),
    (["--days", "7"], "--days must be at least 8"),
    (["--busy", "0"], "--busy must be at least 1 (records a weekday)"),
    (["--busy", "lots"], "invalid int value"),
    (["--repeat", "many"], "invalid int value"),
])
def test_bad_options_are_usage_errors(options: list[str], problem: str) -> None:
    result = bench(*options)
    assert result.returncode == 2
    assert problem in result.stderr and "Traceback" not in result.stderr


def test_a_corpus_folder_without_cloudtrail_files_is_a_usage_error(tmp_path: Path) -> None:
    result = bench("--corpus", str(tmp_path))
    assert result.returncode == 2
    assert f"--corpus {tmp_path}: not a folder holding CloudTrail files" in result.stderr


def test_a_missing_data_set_is_a_usage_error(tmp_path: Path) -> None:
    result = bench("--dataset", str(tmp_path / "nowhere"), "--days", "8")
    assert result.returncode == 2
    assert "no Stratus Red Team records (aws.*.json) in" in result.stderr and "--dataset" in result.stderr
    assert "Traceback" not in result.stderr
