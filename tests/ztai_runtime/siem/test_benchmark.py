"""`./run bench siem` (benchmarks/ocsf_transform.py): bad options end in a usage error naming
what is wrong, and a tiny run on a hand-made data set produces its figures. No time is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import firehose_records as fx

ROOT = Path(__file__).resolve().parents[3]


def bench(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks.ocsf_transform", *options], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_missing_data_set_is_a_usage_error(tmp_path: Path) -> None:
    result = bench("--dataset", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "no stratus-red-team JSON files in" in result.stderr and "--dataset" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option, value, problem", [
    ("--events", "0", "--events must be at least 1"),
    ("--repeat", "-1", "--repeat must be at least 1"),
    ("--events-per-record", "0", "--events-per-record must be at least 1"),
    ("--memory-batches", "0", "--memory-batches sizes must be at least 1"),
    ("--events", "many", "invalid int value"),
])
def test_bad_options_are_usage_errors(tmp_path: Path, option: str, value: str, problem: str) -> None:
    result = bench("--dataset", str(tmp_path), option, value)
    assert result.returncode == 2
    assert problem in result.stderr and "Traceback" not in result.stderr


def test_memory_batches_need_a_size(tmp_path: Path) -> None:
    result = bench("--dataset", str(tmp_path), "--memory-batches")
    assert result.returncode == 2 and "--memory-batches: expected at least one argument" in result.stderr


def test_a_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    dataset = tmp_path / "stratus"
    dataset.mkdir()
    records = [fx.cloudtrail_record("GetObject", index) for index in range(7)]
    (dataset / "aws.test.json").write_text(json.dumps(records))
    result = bench("--dataset", str(dataset), "--events", "60", "--events-per-record", "25",
                   "--repeat", "1", "--memory-batches", "10", "20", "--results", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "7 stratus-red-team records replicated to 60 events" in result.stdout
    figures = json.loads((tmp_path / "out" / "ocsf_transform.json").read_text())
    assert figures["events"] == 60
    assert set(figures["events_per_s"]) == {"baseline", "baseline_orjson", "mapping", "end_to_end",
                                            "envelope", "end_to_end_stdlib"}
    # The benchmark measures what the function ships: both fast libraries (the dev lock has them).
    assert figures["fast_libraries"] == ["orjson", "pybase64"]
    assert "fast libraries: orjson, pybase64" in result.stdout
    assert figures["ratio_to_baseline"]["baseline"] == 1.0
    assert [entry["events"] for entry in figures["memory"]] == [10, 20]
    assert len(figures["repeated_peaks"]) == 3
