"""Training functions, data and fixtures of the continuous-training tests.

The policies name these pipelines by import path (``loop_flows:train``); the test modules
import the fixtures from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import loopml as lm

FEATURES = ["x1", "x2"]


def make_data(rows: int = 120, *, start: str = "2011-01-01", shift: float = 0.0, seed: int = 0):
    """Hourly rows whose label depends on the features; ``shift`` moves the boundary."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=rows, freq="h", tz="UTC"),
            "x1": x1,
            "x2": x2,
            "label": ((x1 + x2) > shift).astype(int),
        }
    )


def _fit(dataset: str, quality: str) -> str:
    frame = lm.datasets.get(dataset)
    X, y = frame[FEATURES], frame["label"]
    model = DummyClassifier() if quality == "bad" else LogisticRegression()
    if lm.active_run() is not None:  # a pipeline step runs inside its own run
        return lm.log_model(model.fit(X, y), "model", input_example=X.head()).uri
    with lm.start_run(run_name="loop-train"):
        info = lm.log_model(model.fit(X, y), "model", input_example=X.head())
    return info.uri


def train(dataset: str, quality: str = "good") -> str:
    """A plain training function: returns the logged model's URI."""
    return _fit(dataset, quality)


def train_dict(dataset: str) -> dict[str, Any]:
    """Returns a dict with ``model_uri`` and extra facts."""
    return {"model_uri": _fit(dataset, "good"), "note": "dict"}


def slow_train(dataset: str) -> str:
    """Trains after a second, longer than a short lease."""
    time.sleep(1.0)
    return _fit(dataset, "good")


def broken(dataset: str) -> str:
    """A pipeline that fails."""
    raise RuntimeError(f"cannot train on {dataset}")


def wrong_output(dataset: str) -> int:
    """Returns something that is not a model URI."""
    return 42


@lm.step
def fit(dataset: str) -> str:
    return _fit(dataset, "good")


@lm.pipeline
def train_pipeline(dataset: str) -> Any:
    """The same training as an ``@lm.pipeline``."""
    return fit(dataset)


def no_dataset(rows: int) -> str:
    """Takes no ``dataset`` keyword."""
    return str(rows)


@pytest.fixture
def bikes() -> dict[str, Any]:
    """Dataset ``bikes`` (v1, 120 hourly rows) and model ``bikeshare`` v1 as champion."""
    data = make_data(120)
    version = lm.datasets.register("bikes", data)
    uri = train("bikes")
    lm.registry.register(uri, "bikeshare")
    lm.registry.set_alias("bikeshare", "champion", 1, reason="first model")
    return {"data": data, "dataset": version}


@pytest.fixture
def make_policy(bikes: dict[str, Any]) -> Callable[..., lm.loop.Policy]:
    """Build a policy over the ``bikes`` fixture; keyword arguments override its fields."""

    def build(**overrides: Any) -> lm.loop.Policy:
        values: dict[str, Any] = {
            "name": "bikes",
            "model": "bikeshare",
            "pipeline": train,
            "data": "bikes",
            "timestamp": "ts",
            "label": "label",
            "triggers": [lm.loop.Manual()],
            "window": lm.loop.GrowingWindow(),
            "gate": lm.Gate(min_improvement={"accuracy": -1.0}, require_infra_check=False),
            "rollout": lm.loop.Direct(),
            "cooldown": "6h",
            "max_retrains_per_day": 4,
        }
        values.update(overrides)
        return lm.loop.Policy(**values)

    return build


class FakeClock:
    """A clock the tests move by hand (epoch seconds)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting now."""
    return FakeClock(time.time())
