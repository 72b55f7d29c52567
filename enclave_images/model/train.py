"""Build-time training of the demonstration model: a digits classifier (scikit-learn's bundled
8x8 digits, no download), exported as plain arrays so that the enclave needs only numpy.

    python -m enclave_images.model.train OUT.npz

The file holds float64 arrays `w1` (64x64), `b1`, `w2` (64x10), `b2` and `format_version` (1). It
is loaded with `allow_pickle=False`: weights are data, never code.
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
HIDDEN_UNITS = 64


def train(seed: int = 0) -> tuple[bytes, float, tuple[np.ndarray, np.ndarray]]:
    """(model file bytes, held-out accuracy, (held-out inputs, labels)) for a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    inputs, labels = load_digits(return_X_y=True)
    inputs = inputs / 16.0  # pixel intensities 0..16 -> 0..1; the enclave applies the same scaling
    train_x, test_x, train_y, test_y = train_test_split(inputs, labels, test_size=0.25, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 300 epochs reach ~97% on this split
        model = MLPClassifier(hidden_layer_sizes=(HIDDEN_UNITS,), max_iter=300, random_state=seed)
        model.fit(train_x, train_y)
    buffer = io.BytesIO()
    np.savez(buffer, w1=model.coefs_[0], b1=model.intercepts_[0], w2=model.coefs_[1],
             b2=model.intercepts_[1], format_version=np.array(FORMAT_VERSION))
    return buffer.getvalue(), float(model.score(test_x, test_y)), (test_x * 16.0, test_y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    data, accuracy, _ = train()
    args.output.write_bytes(data)
    print(f"wrote {len(data)} bytes to {args.output}; held-out accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
