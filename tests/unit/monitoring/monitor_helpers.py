"""Shared builders of the monitor tests: a registered model with lineage, and log windows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import loopml as lm

FEATURES = ["tenure", "charges", "plan"]
MODEL = "churn-model"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def reference_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Training data: two numeric features, one categorical, a binary target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n).astype(float),
            "charges": rng.normal(70, 20, n),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    frame["churned"] = (frame["charges"] > 75).astype(int)
    return frame


def features_frame(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """Serving traffic like :func:`reference_frame`; ``shift`` moves ``charges`` (in std units)."""
    frame = reference_frame(n, seed).drop(columns=["churned"])
    frame["charges"] = frame["charges"] + shift * 20
    return frame


def register_model(
    name: str = MODEL,
    *,
    dataset: str = "churn",
    lineage: bool = True,
    evaluation: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Register ``dataset``, train on it inside a run (lineage), register ``name`` v1."""
    data = reference_frame()
    lm.datasets.register(dataset, data)
    with lm.start_run():
        if lineage:
            lm.datasets.get(dataset)
        X = data[["tenure", "charges"]]
        info = lm.log_model(
            LogisticRegression(max_iter=500).fit(X, data["churned"]), "model", input_example=X
        )
    lm.registry.register(info.uri, name)
    lm.registry.set_alias(name, "champion", 1, reason="first")
    lm.registry.get_service().record(
        name,
        1,
        "evaluation",
        evaluation
        or {
            "task": "classification",
            "metrics": {"f1": 0.9, "accuracy": 0.92},
            "target": "churned",
        },
    )
    return data


def window(
    features: pd.DataFrame,
    *,
    model: str = MODEL,
    version: int = 1,
    predictions: Any = None,
    labels: Any = None,
    latency_ms: float = 12.0,
    start: datetime = NOW - timedelta(hours=1),
) -> pd.DataFrame:
    """A frame shaped like ``lm.monitoring.predictions(...)`` around ``features``."""
    n = len(features)
    predicted = (
        (features["charges"] > 75).astype(int).to_numpy() if predictions is None else predictions
    )
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i // 2}" for i in range(n)],
            "row": [i % 2 for i in range(n)],
            "timestamp": [start + timedelta(seconds=i) for i in range(n)],
            "model": model,
            "version": version,
            "variant": "",
            "latency_ms": latency_ms,
            "prediction": predicted,
            "probability": 0.8,
            "label": np.nan if labels is None else labels,
        }
    )
    return pd.concat([frame, features.reset_index(drop=True)], axis=1)


@dataclass
class FakeSource:
    """A prediction source that returns the frames it is given, recording each call."""

    frames: list[pd.DataFrame]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        model: str,
        since: datetime | None = None,
        until: datetime | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        self.calls.append({"model": model, "since": since, "until": until, **options})
        frame = self.frames[min(len(self.calls), len(self.frames)) - 1]
        limit = options.get("limit")
        return frame.tail(limit) if limit else frame


def clock(moment: datetime = NOW) -> Callable[[], datetime]:
    return lambda: moment
