from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

import loopml as lm
from loopml.errors import InvalidInput
from loopml.training.automl import FAMILIES, automl, available_families


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    noise = rng.normal(scale=0.3, size=n)
    label = np.where(x + (color == "red") + noise > 0.5, "yes", "no")
    return pd.DataFrame(
        {"x": x, "z": rng.normal(size=n), "color": color, "value": 2 * x + noise, "label": label}
    )


SKLEARN_TWO = ["linear", "random_forest"]


def test_classification_returns_a_fitted_pipeline_and_a_sorted_leaderboard() -> None:
    data = _frame().drop(columns=["value"])
    started = time.monotonic()
    result = automl(data, "label", time_budget_s=10, families=SKLEARN_TWO, max_trials=2)
    assert time.monotonic() - started < 30

    assert result.task == "classification"
    assert result.metric == "f1_macro"
    assert isinstance(result.best_model, Pipeline)
    predictions = result.predict(data.drop(columns=["label"]).head(5))
    assert set(predictions) <= {"yes", "no"}
    unseen = pd.DataFrame({"x": [0.1], "z": [0.0], "color": ["purple"]})
    assert result.best_model.predict(unseen)[0] in {"yes", "no"}  # unseen category is fine

    board = result.leaderboard
    assert list(board["family"].sort_values()) == sorted(SKLEARN_TWO)
    assert list(board["score"]) == sorted(board["score"], reverse=True)
    assert (board["status"] == "ok").all()
    assert (board["n_trials"] == 2).all()
    assert result.best_family == board["family"].iloc[0]
    assert result.best_score == board["score"].iloc[0]
    assert 0 < result.best_score <= 1

    run = lm.get_run(result.run_id)
    assert run.run_name == "automl"
    assert run.metrics["best.f1_macro"] == pytest.approx(result.best_score)
    assert run.tags["loopml.automl.best_family"] == result.best_family
    for family_run_id in board["run_id"]:
        family_run = lm.get_run(family_run_id)
        assert family_run.parent_run_id == result.run_id
        assert family_run.tags["loopml.study"].endswith(family_run.run_name.split("-", 1)[1])


def test_regression_with_the_default_metric() -> None:
    data = _frame(seed=1).drop(columns=["label"])
    result = automl(data, "value", time_budget_s=10, families=["linear"], max_trials=2)
    assert result.task == "regression"
    assert result.metric == "neg_root_mean_squared_error"
    assert -1 < result.best_score < 0
    assert result.predict(data.drop(columns=["value"])).shape == (len(data),)
    assert set(result.leaderboard["best_params"].iloc[0]) == {"alpha"}  # Ridge, not C


def test_families_left_when_the_budget_runs_out_are_skipped() -> None:
    data = _frame().drop(columns=["value"])
    result = automl(data, "label", time_budget_s=0.01, families=SKLEARN_TWO, max_trials=5)
    board = result.leaderboard
    assert board["status"].tolist() == ["ok", "skipped"]
    assert board["n_trials"].tolist() == [1, 0]  # a started trial finishes
    assert np.isnan(board["score"].iloc[1])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target": "missing"}, "target"),
        ({"families": ["svm"]}, "families"),
        ({"families": []}, "families"),
        ({"metric": "accuracyy"}, "metric"),
        ({"task": "ranking"}, "task"),
        ({"cv": 1}, "cv"),
        ({"cv": 40}, "cv"),
        ({"time_budget_s": 0}, "time_budget_s"),
    ],
)
def test_bad_inputs_are_refused(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"target": "label", "families": SKLEARN_TWO, **kwargs}
    with pytest.raises(InvalidInput) as caught:
        automl(_frame().drop(columns=["value"]), **arguments)
    assert caught.value.field == field
    assert lm.search_runs().empty


def test_a_class_smaller_than_cv_is_named() -> None:
    data = _frame().drop(columns=["value"])
    data.loc[0, "label"] = "rare"
    with pytest.raises(InvalidInput, match="'rare'"):
        automl(data, "label", families=SKLEARN_TWO)


def test_optional_families_follow_installed_packages() -> None:
    families = available_families()
    assert families[:3] == list(FAMILIES[:3])
    assert set(families) <= set(FAMILIES)


def test_date_columns_are_refused_before_any_run() -> None:
    data = _frame().drop(columns=["value"])
    data["when"] = pd.Timestamp("2024-01-01")
    with pytest.raises(InvalidInput) as caught:
        automl(data, "label", families=SKLEARN_TWO)
    assert caught.value.field == "data.when"
    assert lm.search_runs().empty


@pytest.mark.slow
def test_boosting_families() -> None:
    pytest.importorskip("lightgbm")
    pytest.importorskip("xgboost")
    data = _frame().drop(columns=["value"])
    families = ["hist_gradient_boosting", "lightgbm", "xgboost"]
    result = automl(data, "label", time_budget_s=120, families=families, max_trials=1)
    assert (result.leaderboard["status"] == "ok").all()
    assert set(result.predict(data.drop(columns=["label"]))) <= {"yes", "no"}
    regression = automl(
        _frame().drop(columns=["label"]), "value", families=["xgboost"], max_trials=1
    )
    assert regression.predict(data.drop(columns=["label"])).shape == (len(data),)
