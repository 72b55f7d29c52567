"""The demonstration model: trained at build time, evaluated by the enclave with numpy only."""

from __future__ import annotations

import io

import numpy as np
import pytest

from enclave_images.enclave.model import DigitsModel, ModelError
from tests.enclave_images.conftest import TrainedModel


def test_the_enclave_reproduces_the_trained_accuracy(trained_model: TrainedModel) -> None:
    model = DigitsModel.from_bytes(trained_model.data)
    labels = model.predict(trained_model.test_inputs.tolist())
    accuracy = float(np.mean(np.array(labels) == trained_model.test_labels))
    assert trained_model.accuracy > 0.9
    assert accuracy == pytest.approx(trained_model.accuracy)  # same arithmetic as scikit-learn's


@pytest.mark.parametrize(("inputs", "complaint"), [
    ([], "1..1024 rows"),
    ([[0.0] * 63], "64 finite numbers"),
    ([[float("nan")] * 64], "64 finite numbers"),
    ([["a"] * 64], "numbers"),
    ("0" * 64, "list of 1..1024 rows"),
])
def test_bad_inputs_are_refused(trained_model: TrainedModel, inputs: object, complaint: str) -> None:
    with pytest.raises(ModelError, match=complaint):
        DigitsModel.from_bytes(trained_model.data).predict(inputs)  # type: ignore[arg-type]


def test_model_files_are_data_never_code() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, w1=np.array([object()], dtype=object), format_version=np.array(1))
    with pytest.raises(ModelError, match="not a model file"):
        DigitsModel.from_bytes(buffer.getvalue())  # an object array would need pickle
    with pytest.raises(ModelError, match="not a model file"):
        DigitsModel.from_bytes(b"\x80\x04 pickled")


def test_other_format_versions_and_shapes_are_refused(trained_model: TrainedModel) -> None:
    with np.load(io.BytesIO(trained_model.data)) as arrays:
        parts = {name: arrays[name] for name in arrays.files}
    for change, complaint in (({"format_version": np.array(2)}, "model format 2"),
                              ({"b1": np.zeros(3)}, "inconsistent shapes")):
        buffer = io.BytesIO()
        np.savez(buffer, **{**parts, **change})
        with pytest.raises(ModelError, match=complaint):
            DigitsModel.from_bytes(buffer.getvalue())
