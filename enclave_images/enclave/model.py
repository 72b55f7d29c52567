"""The model as the enclave runs it: a two-layer perceptron evaluated with numpy."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FEATURES = 64  # 8x8 pixels, intensities 0..16 as in the digits dataset
MAX_BATCH = 1024


class ModelError(ValueError):
    pass


class _Reader(io.RawIOBase):
    """A seekable reader over a buffer, without copying it (the decrypted weights stay in the one
    buffer the enclave wipes)."""

    def __init__(self, data: memoryview) -> None:
        self._data, self._position = data.cast("B"), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._position:self._position + len(buffer)]
        memoryview(buffer).cast("B")[:len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._data)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position


@dataclass(frozen=True)
class DigitsModel:
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> DigitsModel:
        try:
            with np.load(_Reader(memoryview(data)), allow_pickle=False) as arrays:
                version = int(arrays["format_version"])
                if version != FORMAT_VERSION:
                    raise ModelError(f"model format {version}; this enclave reads {FORMAT_VERSION}")
                model = cls(*(np.array(arrays[name], dtype=np.float64) for name in ("w1", "b1", "w2", "b2")))
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
            if isinstance(error, ModelError):
                raise
            raise ModelError(f"not a model file: {error}") from None
        hidden = model.w1.shape[1] if model.w1.ndim == 2 else -1
        if (model.w1.shape != (FEATURES, hidden) or model.b1.shape != (hidden,) or model.w2.ndim != 2
                or model.w2.shape[0] != hidden or model.b2.shape != (model.w2.shape[1],)):
            raise ModelError("model arrays have inconsistent shapes")
        return model

    @property
    def classes(self) -> int:
        return int(self.w2.shape[1])

    def predict(self, inputs: list[list[float]]) -> list[int]:
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_BATCH:
            raise ModelError(f"inputs must be a list of 1..{MAX_BATCH} rows")
        try:
            batch = np.asarray(inputs, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float
            raise ModelError("inputs must be numbers") from None
        if batch.shape != (len(inputs), FEATURES) or not np.isfinite(batch).all():
            raise ModelError(f"each row must hold {FEATURES} finite numbers (8x8 pixels, 0..16)")
        hidden = np.maximum(batch / 16.0 @ self.w1 + self.b1, 0.0)
        return [int(label) for label in np.argmax(hidden @ self.w2 + self.b2, axis=1)]
