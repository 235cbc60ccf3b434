"""Evaluate registered versions and gate them against the champion, decisions stored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import loopml as lm
from loopml.errors import InvalidInput


def _data(seed: int, rows: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype(float),
            "charges": rng.normal(70, 20, rows),
            "region": rng.choice(["eu", "us"], rows),
        }
    )
    frame["churned"] = ((frame.charges > 75) ^ (rng.random(rows) < 0.1)).astype(int)
    return frame


def _register(model: object, train: pd.DataFrame) -> lm.entities.registry.ModelVersion:
    features = train[["tenure", "charges"]]
    with lm.start_run():
        info = lm.log_model(model, "model", input_example=features.head())
    return lm.registry.register(info.uri, "churn")


def test_first_model_passes_then_a_worse_one_fails() -> None:
    train, holdout = _data(0), _data(1)
    features = ["tenure", "charges"]
    good = LogisticRegression().fit(train[features], train.churned)
    first = _register(good, train)
    result = lm.evaluate(
        lm.models.load("churn/1"), holdout, target="churned", features=features, slices=["region"]
    )
    stored = lm.registry.get_model_version("churn", 1).evaluation
    assert stored is not None and stored["metrics"]["f1"] == pytest.approx(result.metrics["f1"])

    gate = lm.Gate(
        thresholds={"f1": 0.5},
        min_improvement={"f1": 0.0},
        slice_tolerance={"f1": 0.05},
        latency_budget_ms=5_000,
    )
    decision = gate.check(lm.registry.get_model_version("churn", first.version))
    assert decision.passed, decision.summary()
    assert any("champion" in r.message for r in decision.reasons)
    assert lm.registry.get_model_version("churn", 1).gate["passed"] is True
    lm.registry.set_alias("churn", "champion", 1, reason=decision.summary())

    worse = DummyClassifier(strategy="most_frequent").fit(train[features], train.churned)
    second = _register(worse, train)
    lm.evaluate(
        lm.models.load("churn/2"), holdout, target="churned", features=features, slices=["region"]
    )
    rejected = gate.check(lm.registry.get_model_version("churn", second.version))
    assert not rejected.passed
    assert lm.registry.get_model_version("churn", 2).gate["passed"] is False


def test_gate_needs_an_evaluation() -> None:
    train = _data(0)
    version = _register(
        LogisticRegression().fit(train[["tenure", "charges"]], train.churned), train
    )
    with pytest.raises(InvalidInput, match="no stored evaluation"):
        lm.Gate(thresholds={"f1": 0.5}).check(version)
