"""The trained demonstration model, shared by the enclave tests (training takes a few seconds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from enclave_images.model.train import train


@dataclass(frozen=True)
class TrainedModel:
    data: bytes  # the model file (npz)
    accuracy: float
    test_inputs: np.ndarray  # held-out digits, pixel values 0..16 as a client sends them
    test_labels: np.ndarray


@pytest.fixture(scope="session")
def trained_model() -> TrainedModel:
    data, accuracy, (inputs, labels) = train()
    return TrainedModel(data, accuracy, inputs, labels)
