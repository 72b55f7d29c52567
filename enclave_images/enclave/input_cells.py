"""The input summary of one request, computed inside the enclave: which coarse cells of the input
space its rows fall in, so the model-extraction detector can measure a client's query diversity and
coverage without any input leaving the enclave.

A cell is a random-hyperplane SimHash of a row: the signs of CELL_BITS projections of the row
(centred on the middle of the pixel range) onto fixed random directions, read as a number
0..2**CELL_BITS-1. Rows close in the input space share a cell; the model's natural inputs (digits)
occupy about 100 of the 256 cells, uniform or synthetic probing fills them all within a few hundred
rows (docs/detection-extraction.md has the figures).

The directions are drawn from a seed derived from the model's weights, which only the enclave holds
in the clear: outside it, a cell id is a number without a region attached, and nobody can compute
the cell of a candidate input to test a guess against the log. A new model version numbers its cells
afresh (the detector starts a window's coverage over when the version changes).

What leaves the enclave per request (ztai_runtime/inference_events.py): the sorted distinct cell ids,
at most MAX_INPUT_CELLS of them (a pseudo-random choice, seeded by the request's own bytes, when the
rows fall in more), and the number of distinct cells. Never a row, a pixel, a row's cell tied to its
position, or how many rows share a cell.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ztai_runtime.inference_events import CELL_BITS, MAX_INPUT_CELLS

# The middle of the pixel range 0..16: the hyperplanes pass through it, so every direction splits
# the valid inputs (through the origin, all-positive inputs would fall on one side of most planes).
CENTRE = 8.0
_DOMAIN = b"zero-trust-ai input cells v1\x00"
_WEIGHTS = (1 << np.arange(CELL_BITS, dtype=np.int64))


@dataclass(frozen=True)
class InputCells:
    """The hyperplanes of one loaded model."""

    planes: np.ndarray  # (CELL_BITS, features)

    @classmethod
    def for_weights(cls, weights: np.ndarray) -> InputCells:
        """Hyperplanes drawn from a seed derived from the first layer's weights (secret outside the
        enclave), so the same model always has the same cells."""
        digest = hashlib.sha256(_DOMAIN + np.ascontiguousarray(weights, dtype=np.float64).tobytes()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:16], "big"))
        return cls(rng.standard_normal((CELL_BITS, int(weights.shape[0]))))

    def cells(self, batch: np.ndarray) -> np.ndarray:
        """Each row's cell id (0..2**CELL_BITS-1), in row order: stays inside the enclave."""
        signs: np.ndarray = (batch - CENTRE) @ self.planes.T > 0
        cells: np.ndarray = signs.astype(np.int64) @ _WEIGHTS
        return cells

    def summary(self, inputs: Any) -> dict[str, Any]:
        """`inputCells` (sorted, distinct, at most MAX_INPUT_CELLS) and `inputCellCount` of a batch
        the model has already accepted (a list of rows of finite numbers)."""
        batch = np.asarray(inputs, dtype=np.float64)
        distinct = np.unique(self.cells(batch))
        count = len(distinct)
        if count > MAX_INPUT_CELLS:
            # Which ones are reported varies from request to request (seeded by the request's bytes,
            # so the same request always reports the same), so the union over a client's requests
            # covers every cell it reaches, not the lowest ids again and again.
            seed = int.from_bytes(hashlib.sha256(batch.tobytes()).digest()[:16], "big")
            distinct = np.sort(np.random.default_rng(seed).choice(distinct, MAX_INPUT_CELLS, replace=False))
        return {"inputCells": [int(cell) for cell in distinct], "inputCellCount": count}
