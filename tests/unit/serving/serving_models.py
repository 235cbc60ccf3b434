"""Classifiers that misbehave on purpose, for the serving tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SEPAL = "sepal length (cm)"


class Flaky:
    """A classifier that raises on rows whose sepal length is over a threshold."""

    def __init__(self, inner: Any, threshold: float) -> None:
        self.inner = inner
        self.threshold = threshold
        self.classes_ = inner.classes_

    def _check(self, frame: pd.DataFrame) -> None:
        if (frame[SEPAL] > self.threshold).any():
            raise RuntimeError("flaky model")

    def predict(self, frame: pd.DataFrame) -> Any:
        self._check(frame)
        return self.inner.predict(frame)

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        self._check(frame)
        return self.inner.predict_proba(frame)


class Opposite:
    """A classifier that always predicts the last class (so shadow answers differ)."""

    def __init__(self, inner: Any) -> None:
        self.classes_ = inner.classes_

    def predict(self, frame: pd.DataFrame) -> Any:
        return np.full(len(frame), self.classes_[-1])

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        out = np.zeros((len(frame), len(self.classes_)))
        out[:, -1] = 1.0
        return out
