"""Model classes the model tests log and load back: they must live in an importable module."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from loopml.models import PythonModel

try:
    import torch
except ImportError:  # torch is in the test extra; the tests needing it skip without it
    torch = None  # type: ignore[assignment]


class LinearScore(PythonModel):
    """A hand-written linear model: ``sum(weight * column) + offset``."""

    def __init__(self, weights: dict[str, float], offset: float) -> None:
        self.weights = weights
        self.offset = offset

    def predict(self, data: Any) -> Any:
        frame = pd.DataFrame(data)
        total = np.full(len(frame), self.offset, dtype=float)
        for column, weight in self.weights.items():
            total += weight * frame[column].to_numpy(dtype=float)
        return total


class ClipOutliers(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A custom scikit-learn transformer: skops does not trust it by default."""

    def __init__(self, limit: float = 3.0) -> None:
        self.limit = limit

    def fit(self, X: Any, y: Any = None) -> ClipOutliers:
        frame = np.asarray(X, dtype=float)
        self.mean_ = frame.mean(axis=0)
        self.scale_ = frame.std(axis=0) + 1e-12
        return self

    def transform(self, X: Any) -> Any:
        frame = np.asarray(X, dtype=float)
        low = self.mean_ - self.limit * self.scale_
        high = self.mean_ + self.limit * self.scale_
        return np.clip(frame, low, high)


if torch is not None:

    class RegressionMLP(torch.nn.Module):
        """A small regression MLP that TorchScript can script."""

        def __init__(self, n_features: int = 3, hidden: int = 16) -> None:
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(n_features, hidden),
                torch.nn.ReLU(),
                torch.nn.Dropout(0.5),
                torch.nn.Linear(hidden, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x)

    class VariadicMLP(torch.nn.Module):
        """Cannot be scripted (variadic ``forward``) but traces cleanly."""

        def __init__(self, n_features: int = 3) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(n_features, 2)

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.linear(inputs[0]))

    class BranchingMLP(torch.nn.Module):
        """Cannot be scripted, and its trace would freeze a data-dependent branch."""

        def __init__(self, n_features: int = 3) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(n_features, 1)

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            out = self.linear(inputs[0])
            if bool(out.sum() > 0):
                return out * 2
            return out - 1
