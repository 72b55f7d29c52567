"""The enclave's input summary (enclave_images/enclave/input_cells.py): deterministic for a model,
bounded whatever the request, and only cells, never inputs."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from enclave_images.enclave.input_cells import InputCells
from enclave_images.enclave.model import DigitsModel
from tests.enclave_images.conftest import TrainedModel
from ztai_runtime.inference_events import CELL_SPACE, MAX_INPUT_CELLS, summary_problems

DIGITS = load_digits().data


def cells_of(trained_model: TrainedModel) -> InputCells:
    return InputCells.for_weights(DigitsModel.from_bytes(trained_model.data).w1)


def test_the_same_model_and_request_give_the_same_summary(trained_model: TrainedModel) -> None:
    one, two = cells_of(trained_model), cells_of(trained_model)
    rows = DIGITS[:500].tolist()
    assert one.summary(rows) == two.summary(rows)  # a capped choice too: seeded by the request
    assert np.array_equal(one.cells(DIGITS), two.cells(DIGITS))


def test_another_model_numbers_its_cells_afresh(trained_model: TrainedModel) -> None:
    weights = DigitsModel.from_bytes(trained_model.data).w1
    other = InputCells.for_weights(weights + 1e-9)
    assert not np.array_equal(cells_of(trained_model).cells(DIGITS), other.cells(DIGITS))


def test_a_summary_is_bounded_and_well_formed(trained_model: TrainedModel) -> None:
    cells = cells_of(trained_model)
    rng = np.random.default_rng(0)
    for rows in (DIGITS[:1], DIGITS[:5], DIGITS[:1024], rng.uniform(0, 16, (1024, 64))):
        summary = cells.summary(rows.tolist())
        assert summary_problems({**summary, "decision": "served"}) == []
        assert len(summary["inputCells"]) == min(summary["inputCellCount"], MAX_INPUT_CELLS)
        assert summary["inputCellCount"] == len(set(cells.cells(rows).tolist())) <= min(len(rows), CELL_SPACE)
    one = cells.summary(DIGITS[:1].tolist())
    assert one == {"inputCells": [int(cells.cells(DIGITS[:1])[0])], "inputCellCount": 1}


def test_natural_inputs_stay_in_few_cells_and_probing_fills_the_space(trained_model: TrainedModel) -> None:
    """What the detector relies on: the digits occupy well under half the cells; uniform probing
    reaches more than half within a few hundred rows."""
    cells = cells_of(trained_model)
    natural = len(set(cells.cells(DIGITS).tolist()))
    probing = len(set(cells.cells(np.random.default_rng(1).uniform(0, 16, (300, 64))).tolist()))
    assert natural < CELL_SPACE * 0.5 < probing


def test_capped_summaries_of_different_requests_choose_different_cells(trained_model: TrainedModel) -> None:
    """A request over more cells than the cap reports a subset chosen by its own bytes, so the union
    over a client's requests reaches cells the lowest ids alone would never show."""
    cells = cells_of(trained_model)
    rng = np.random.default_rng(2)
    seen: set[int] = set()
    for _ in range(20):
        seen.update(cells.summary(rng.uniform(0, 16, (512, 64)).tolist())["inputCells"])
    assert len(seen) > 4 * MAX_INPUT_CELLS


def test_nothing_of_an_input_is_in_its_summary(trained_model: TrainedModel) -> None:
    summary = cells_of(trained_model).summary([[13.1337] * 64, [0.0625] * 64])
    assert set(summary) == {"inputCells", "inputCellCount"}
    assert all(isinstance(cell, int) for cell in summary["inputCells"])
    assert "13.1337" not in repr(summary) and "0.0625" not in repr(summary)
