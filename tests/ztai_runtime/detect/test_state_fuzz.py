"""A damaged detection state ends in a ValueError naming the problem (the stream function's
StateError), never another exception: every value of a real state, at every level, replaced in turn
by a value of the wrong type."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from benchmarks.detection_data import benign_activity
from tests.ztai_runtime.detect.test_extraction import T0_MS, record
from ztai_runtime.detect.build import build_engine
from ztai_runtime.detect.sources import event_from_record
from ztai_runtime.detect.stream import StateError, StreamConfig, restore_engine


def real_state() -> dict[str, Any]:
    engine = build_engine()
    start = datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
    for item in benign_activity(start=start, days=1, seed=3, events_per_day=300):
        engine.process(event_from_record(item, "benign"))
    for minute in range(30):
        engine.process(event_from_record(record(T0_MS + minute * 60_000, rows=5, cells=[minute]), "x"))
    state: dict[str, Any] = json.loads(json.dumps(engine.to_state()))
    return state


STATE = real_state()
WRONG: tuple[Any, ...] = (None, [], ["x"], "x", 7, {})


def paths(value: Any, path: tuple[Any, ...] = (), depth: int = 4) -> Iterator[tuple[Any, ...]]:
    """Every path into `value` up to `depth` levels (the first two entries of each list or object)."""
    if path:
        yield path
    if depth == 0:
        return
    if isinstance(value, dict):
        for key in list(value)[:6] if len(path) >= 2 else value:
            yield from paths(value[key], (*path, key), depth - 1)
    elif isinstance(value, list):
        for index in range(min(len(value), 2)):
            yield from paths(value[index], (*path, index), depth - 1)


CASES = [(path, wrong) for path in paths(STATE) for wrong in WRONG]


def test_the_state_covers_every_detector() -> None:
    assert set(STATE["detectors"]) == {"rules", "behaviour", "extraction"}
    assert STATE["detectors"]["extraction"]["clients"] and STATE["detectors"]["behaviour"]["principals"]
    assert len(CASES) > 200


def mutated(path: tuple[Any, ...], wrong: Any) -> dict[str, Any]:
    state = copy.deepcopy(STATE)
    target: Any = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = wrong
    return state


@pytest.mark.parametrize("path", [("detectors",), ("detectors", "behaviour"),
                                  ("detectors", "extraction", "settings"),
                                  ("detectors", "extraction", "clients")])
@pytest.mark.parametrize("wrong", [[], ["x"], "x", 7])
def test_a_part_that_is_not_an_object_is_a_value_error_naming_it(path: tuple[str, ...], wrong: Any) -> None:
    with pytest.raises(ValueError, match=path[-1]):
        build_engine(state=mutated(path, wrong))


def test_every_mutation_ends_in_a_state_error_or_a_usable_engine() -> None:
    config = StreamConfig(state_bucket="b", bus_name="bus")
    escaped: list[str] = []
    refused = 0
    for path, wrong in CASES:
        try:
            restore_engine(config, {"engine": mutated(path, wrong)})
        except StateError:
            refused += 1
        except Exception as error:  # noqa: BLE001 - the point: nothing else may escape
            escaped.append(f"{path} = {wrong!r}: {type(error).__name__}: {error}")
    assert escaped == []
    assert refused > len(CASES) // 2  # most damage is noticed, not silently taken
