"""The inference traffic generator: events in the exact shape the parent agent writes, seeded,
partners inside their working hours, and the evaluation it drives (extraction flagged early, no
benign finding)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from benchmarks import inference_traffic
from benchmarks.inference_traffic import (
    PARTNERS,
    START_S,
    benign_traffic,
    evaluate,
    perturbation_extraction,
    uniform_extraction,
)
from ztai_runtime.inference_events import FIELDS, OPTIONAL_FIELDS, event_problems


def hour_and_weekday(event: dict[str, Any], offset: int) -> tuple[int, int]:
    """The event's local hour and weekday (0 = Monday) at UTC+`offset`."""
    moment = datetime.strptime(str(event["time"]), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    local = moment + timedelta(hours=offset)
    return local.hour, local.weekday()


@pytest.fixture(scope="module")
def week() -> list[dict[str, Any]]:
    return benign_traffic(days=7, seed=3)


def test_every_event_has_the_agents_exact_shape(week: list[dict[str, Any]]) -> None:
    attacks = (uniform_extraction(start_s=START_S, rows=256)
               + perturbation_extraction(start_s=START_S, rows=256))
    for event in week + attacks:
        assert event_problems(event) == []
        assert list(event) == [*FIELDS, *OPTIONAL_FIELDS]
    assert [e["time"] for e in week] == sorted(str(e["time"]) for e in week)
    assert len({e["requestId"] for e in week}) == len(week)


def test_the_same_seed_gives_the_same_traffic(week: list[dict[str, Any]]) -> None:
    again = benign_traffic(days=7, seed=3)
    assert [(e["requestId"], e["inputCells"]) for e in again] == [
        (e["requestId"], e["inputCells"]) for e in week]
    assert benign_traffic(days=1, seed=4)[0]["requestId"] != again[0]["requestId"]


def test_partners_work_their_own_hours_and_volume(week: list[dict[str, Any]]) -> None:
    initech = next(p for p in PARTNERS if p.name == "initech")  # 09-17 UTC, weekdays, one row each
    theirs = [e for e in week if e["clientId"] == initech.client_id]
    assert theirs and all(e["rows"] == 1 for e in theirs)
    for event in theirs:
        hour, weekday = hour_and_weekday(event, initech.utc_offset)
        assert 9 <= hour < 17 and weekday < 5
    rows = sum(int(e["rows"]) for e in theirs)
    assert 5 * 0.6 * initech.rows_per_day <= rows <= 5 * inference_traffic.SURGE * 1.4 * initech.rows_per_day


def test_the_probe_covers_far_more_cells_than_a_partner() -> None:
    probe = uniform_extraction(start_s=START_S, rows=32 * 20)
    partner = [e for e in benign_traffic(days=1, seed=5) if e["clientId"] == PARTNERS[1].client_id][:20]
    def cells(events: list[dict[str, Any]]) -> int:
        return len({cell for event in events for cell in event["inputCells"]})

    assert cells(probe) > 2 * cells(partner)


def test_the_evaluation_flags_both_extractions_early_and_no_partner() -> None:
    result = evaluate(days=10, seed=0)
    assert result["falseFindings"] == 0, result["falseFindingReasons"]
    flagged = result["flaggedAfterRows"]
    # Well before the measured replication points (95% agreement): about 5,000 labels for perturbed
    # seeds, beyond 20,000 for uniform probing (63% at 20,000).
    assert flagged["probe"] is not None and flagged["probe"] <= 1_000
    assert flagged["stolen"] is not None and flagged["stolen"] <= 1_000
