"""The model-extraction detector: learns each client's normal, flags rows, coverage and diversity
beyond it or beyond the budgets, forgets slowly, keeps its state, and reads events written before
the enclave's input summary existed."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ztai_runtime.detect.engine import Engine
from ztai_runtime.detect.extraction import Extraction, ExtractionSettings
from ztai_runtime.detect.signals import Signal, principal_of
from ztai_runtime.detect.sources import Event, event_from_record
from ztai_runtime.inference_events import inference_event

HOUR_MS = 3_600_000
T0_MS = 1_796_601_600_000  # 2026-12-07T00:00:00Z, a window boundary
CLIENT = "acme-7f3c1d2e"
_ids = iter(range(10**9))


def record(at_ms: int, rows: int = 1, cells: list[int] | None = None, count: int | None = None,
           client: str | None = CLIENT, decision: str = "served", version: str = "1",
           summary: bool = True) -> dict[str, Any]:
    given = cells if cells is not None else [0]
    return inference_event(
        source="enclave", request_id=f"r{next(_ids)}", client_id=client, partner="acme",
        route="POST /v1/infer", rows=rows, request_bytes=100, response_bytes=10, latency_ms=1.0,
        model="digits", model_version=version, decision=decision,
        reason=None if decision == "served" else "refused: no token",
        status=200 if decision == "served" else 401, at=at_ms / 1000,
        input_cells=given if summary and decision == "served" else None,
        input_cell_count=(count if count is not None else len(given)) if summary and decision == "served"
        else None)


def feed(detector: Extraction, records: list[dict[str, Any]]) -> list[Signal]:
    signals: list[Signal] = []
    for index, line in enumerate(records):
        event = event_from_record(line, f"test:{index}")
        signals += detector.observe(event, principal_of(event))
    return signals


def normal_hours(first_hour: int, hours: int, rows_per_hour: int = 100, cells: int = 20,
                 batch: int = 10) -> list[dict[str, Any]]:
    """`hours` windows of ordinary use: `rows_per_hour` rows in batches over a few of `cells` cells."""
    out = []
    for hour in range(first_hour, first_hour + hours):
        for index in range(rows_per_hour // batch):
            picked = sorted({(index * 3 + k) % cells for k in range(3)})
            out.append(record(T0_MS + hour * HOUR_MS + index * 1000, rows=batch, cells=picked))
    return out


def test_ordinary_use_raises_nothing_and_is_learned() -> None:
    detector = Extraction()
    assert feed(detector, normal_hours(0, 12)) == []
    client = detector.clients[f"client:{CLIENT}"]
    assert client.learned == 11  # the twelfth window is still open
    assert client.rows_normal.mean == pytest.approx(100)
    assert client.coverage_normal.mean == pytest.approx(20)


def test_rows_far_above_the_clients_normal_are_flagged() -> None:
    detector = Extraction()
    feed(detector, normal_hours(0, 12))
    # The next hour: ten times the rows, same few cells.
    signals = feed(detector, normal_hours(12, 1, rows_per_hour=1000))
    assert signals, "ten times the normal volume raised nothing"
    first = signals[0]
    assert (first.rule, first.severity, first.technique, first.principal) == (
        "model:extraction", "high", "AML.T0024", f"client:{CLIENT}")
    assert "rows served, its normal 100 ± 0 per active window" in first.reason
    # Flagged at the row that crossed the limit (the normal's 4x, at least 500), not before.
    assert len(feed(Extraction(), normal_hours(0, 12) + normal_hours(12, 1, rows_per_hour=490))) == 0


def test_a_new_client_probing_the_whole_space_is_flagged_by_the_coverage_budget() -> None:
    detector = Extraction()
    # One-row requests, each in a new cell: 159 cells (and 159 rows) pass the diversity rule only
    # from 200 rows on, and the coverage budget only at 160.
    probes = [record(T0_MS + index * 1000, cells=[index]) for index in range(159)]
    assert feed(detector, probes) == []
    [signal] = feed(detector, [record(T0_MS + 200_000, cells=[159])])
    assert "fall in 160 of the 256 input cells (budget 160" in signal.reason


def test_a_single_large_request_counts_its_cells_beyond_the_ids_listed() -> None:
    detector = Extraction()
    [signal] = feed(detector, [record(T0_MS, rows=1024, cells=list(range(0, 256, 16)), count=250)])
    assert "fall in 250 of the 256 input cells" in signal.reason
    assert feed(Extraction(), [record(T0_MS, rows=1024, cells=list(range(0, 256, 16)), count=90)]) == []


def test_diverse_queries_are_flagged_and_repetitive_ones_are_not() -> None:
    diverse = [record(T0_MS + i * 1000, rows=2, cells=[i % 120]) for i in range(100)]
    [signal] = feed(Extraction(), diverse)[:1]
    assert "0.50 distinct cells per row over 200 rows (budget 0.5" in signal.reason
    repetitive = [record(T0_MS + i * 1000, rows=2, cells=[i % 40]) for i in range(100)]
    assert feed(Extraction(), repetitive) == []


def test_the_rows_budget_holds_for_a_client_without_history() -> None:
    settings = ExtractionSettings(rows_budget=5_000)
    [signal] = feed(Extraction(settings), [record(T0_MS + i, rows=1000, cells=[1]) for i in range(5)])
    assert "5,000 rows served (budget 5,000 per window)" in signal.reason
    assert feed(Extraction(settings), [record(T0_MS + i, rows=1000, cells=[1]) for i in range(4)]) == []


def test_coverage_above_the_clients_normal_is_flagged() -> None:
    detector = Extraction()
    feed(detector, normal_hours(0, 12))  # 20 cells an hour
    wide = [record(T0_MS + 12 * HOUR_MS + i * 1000, rows=10, cells=[i, i + 50]) for i in range(40)]
    signals = feed(detector, wide)
    assert any("input cells covered, its normal 20 ± 0" in s.reason for s in signals)


def test_cells_a_known_client_never_queried_are_flagged() -> None:
    """48 hours of a client's own data (cells 0-19), then queries from elsewhere: eight new cells in
    one window raise a signal, seven do not."""
    def shifted(new: int) -> list[dict[str, Any]]:
        return [record(T0_MS + 48 * HOUR_MS + i * 1000, rows=10, cells=[i % 20, 100 + i])
                for i in range(new)] + [record(T0_MS + 48 * HOUR_MS + 60_000, rows=10, cells=[1])]

    detector = Extraction()
    feed(detector, normal_hours(0, 48))
    assert feed(detector, normal_hours(48, 1)) == []
    seven = Extraction.from_state(detector.to_state())
    signals = feed(detector, shifted(8))
    assert signals and "8 input cells it has not queried before (it had queried 20)" in signals[0].reason
    assert feed(seven, shifted(7)) == []


def test_new_cells_are_not_judged_before_the_client_is_known() -> None:
    detector = Extraction()
    feed(detector, normal_hours(0, 47))  # the 47th window is still open: 46 learned
    elsewhere = [record(T0_MS + 47 * HOUR_MS + i, rows=10, cells=[100 + i]) for i in range(20)]
    assert feed(detector, elsewhere) == []


def test_cells_unused_for_long_are_forgotten() -> None:
    settings = ExtractionSettings(known_windows=2, forget_ms=5 * HOUR_MS)
    lines = normal_hours(0, 2) + normal_hours(2, 24, cells=10)  # cells 10-19 unused from hour 2
    return_of_old_cells = normal_hours(26, 1)
    forgetting = Extraction(settings)
    feed(forgetting, lines)
    assert any("10 input cells it has not queried before" in s.reason
               for s in feed(forgetting, return_of_old_cells))
    remembering = Extraction(ExtractionSettings(known_windows=2))
    feed(remembering, lines)
    assert feed(remembering, return_of_old_cells) == []


def test_a_lasting_change_of_use_is_learned_slowly() -> None:
    """Six times the volume from hour 12 on: flagged at first, still flagged some windows later
    (one window does not make a normal), no longer once the normal has caught up."""
    detector = Extraction()
    feed(detector, normal_hours(0, 12))
    flagged = [bool(feed(detector, normal_hours(hour, 1, rows_per_hour=600))) for hour in range(12, 60)]
    assert flagged[0] and flagged[1] and flagged[2]
    assert not any(flagged[-10:])
    first_quiet = flagged.index(False)
    assert 3 <= first_quiet <= 30


def test_windows_without_requests_do_not_shift_the_normal() -> None:
    detector = Extraction()
    feed(detector, normal_hours(0, 12) + normal_hours(100, 1))  # a long weekend in between
    assert detector.clients[f"client:{CLIENT}"].rows_normal.mean == pytest.approx(100)


def test_old_events_without_the_input_summary_still_count_rows() -> None:
    detector = Extraction()
    old = [record(T0_MS + i * 1000, rows=10, summary=False) for i in range(10)]
    assert "inputCells" not in old[0]
    assert feed(detector, old) == []
    client = detector.clients[f"client:{CLIENT}"]
    assert (client.rows, client.requests, client.window_coverage()) == (100, 10, 0)
    [signal] = feed(Extraction(ExtractionSettings(rows_budget=100)), old)[-1:]
    assert "100 rows served" in signal.reason


def test_refused_anonymous_and_other_events_are_ignored() -> None:
    detector = Extraction()
    lines = [record(T0_MS, rows=1000, cells=list(range(16)), count=250, decision="refused"),
             record(T0_MS, rows=1000, cells=list(range(16)), count=250, client=None)]
    assert feed(detector, lines) == []
    cloudtrail = Event(T0_MS, "cloudtrail", "ct-1", {"eventName": "Decrypt"}, "test")
    assert detector.observe(cloudtrail, "arn:aws:iam::1:role/x") == []
    assert detector.clients == {}  # nothing learned from them either


def test_a_new_model_version_restarts_the_windows_coverage() -> None:
    detector = Extraction()
    feed(detector, [record(T0_MS + i, cells=[i]) for i in range(100)])
    client = detector.clients[f"client:{CLIENT}"]
    assert client.window_coverage() == 100
    feed(detector, [record(T0_MS + 1000, cells=[7], version="2")])
    assert (client.window_coverage(), client.version, client.rows) == (1, "2", 101)
    # What it knew of the old numbering is forgotten too, and learned again.
    assert (client.known, client.known_windows) == ({}, 0)


def gateway(at_ms: int, client: str = CLIENT) -> dict[str, Any]:
    return {"requestId": f"g{next(_ids)}", "requestTime": str(at_ms), "routeKey": "POST /v1/infer",
            "status": "200", "clientId": client}


def test_gateway_requests_above_the_clients_normal_are_flagged() -> None:
    detector = Extraction()
    quiet = [gateway(T0_MS + hour * HOUR_MS + i * 1000) for hour in range(12) for i in range(50)]
    assert feed(detector, quiet) == []
    burst = [gateway(T0_MS + 12 * HOUR_MS + i * 100) for i in range(300)]
    signals = feed(detector, burst)
    assert len(signals) == 101  # from the 200th request on (max of 4x 50 and the 200 floor)
    assert "200 requests at the gateway (its normal 50 ± 0 per active window)" in signals[0].reason


def test_state_round_trips_and_carries_on_identically() -> None:
    history, later = normal_hours(0, 12), normal_hours(12, 2, rows_per_hour=1000)
    whole = Extraction()
    feed(whole, history)
    saved = json.loads(json.dumps(whole.to_state()))  # JSON-safe
    resumed = Extraction.from_state(saved)
    assert resumed.to_state() == whole.to_state()
    assert feed(resumed, later) == feed(whole, later) != []
    # New thresholds apply to the learned normals.
    strict = Extraction.from_state(saved, settings=ExtractionSettings(rows_budget=50))
    assert strict.settings.rows_budget == 50 and strict.clients.keys() == whole.clients.keys()


@pytest.mark.parametrize(("state", "complaint"), [
    ({"version": 99}, "extraction state version 99 is not 1"),
    ([], "extraction state version None is not 1"),
    ({"version": 1, "clients": {"client:a": {"start": 0}}}, "a client's entry is malformed"),
])
def test_a_bad_state_is_refused_clearly(state: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Extraction.from_state(state)


@pytest.mark.parametrize(("change", "complaint"), [
    ({"window_ms": 0}, "window_ms 0: a whole number of at least 1"),
    ({"coverage_budget": 300}, "coverage_budget 300: at most 256"),
    ({"diversity_budget": 1.5}, "diversity_budget 1.5: a number in (0, 1]"),
    ({"alpha": 0}, "alpha 0: a number in (0, 1]"),
    ({"factor": 0.5}, "factor 0.5: a number of at least 1"),
    ({"warmup_windows": -1}, "warmup_windows -1"),
    ({"rows_budget": True}, "rows_budget True"),
])
def test_bad_settings_are_refused_naming_the_setting(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match="^extraction settings: .*" + re.escape(complaint)):
        ExtractionSettings(**change)


def test_in_the_engine_a_burst_is_one_finding_listing_every_event() -> None:
    engine = Engine([Extraction()])
    lines = normal_hours(0, 12) + normal_hours(12, 1, rows_per_hour=1000)
    for index, line in enumerate(lines):
        engine.process(event_from_record(line, f"test:{index}"))
    [finding] = engine.finish()
    assert (finding.rule, finding.severity, finding.technique) == ("model:extraction", "high", "AML.T0024")
    flagged = [line["requestId"] for line in lines[-100:]][-len(finding.event_ids):]
    assert finding.event_ids == flagged and len(flagged) > 40
