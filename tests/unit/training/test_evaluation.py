"""lm.training.evaluate: metrics equal scikit-learn's, slices, baseline, timing, logging, errors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

import loopml as lm
from loopml.errors import InvalidInput
from loopml.training import EvaluationResult, evaluate, parse_predicate, resolve_slices
from loopml.training import evaluation as evaluation_module
from loopml.training.evaluation import register_evaluation_recorder
from loopml.training.slices import canonical_slice_name, slice_metric_key


@pytest.fixture(scope="module")
def binary() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 400
    data = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "age": rng.integers(18, 90, n),
            "region": rng.choice(["EU", "US", "APAC"], n),
        }
    )
    logits = 1.5 * data["x1"] - data["x2"] + rng.normal(scale=0.8, size=n)
    data["churn"] = (logits > 0).astype(int)
    model = LogisticRegression().fit(data[["x1", "x2", "age"]], data["churn"])
    return model, data


@pytest.fixture(scope="module")
def regression() -> tuple[LinearRegression, pd.DataFrame]:
    rng = np.random.default_rng(11)
    n = 300
    data = pd.DataFrame({"x": rng.uniform(1, 10, n), "segment": rng.choice(["a", "b"], n)})
    data["y"] = 3.0 * data["x"] + 5.0 + rng.normal(scale=1.0, size=n)
    return LinearRegression().fit(data[["x"]], data["y"]), data


def test_binary_metrics_equal_sklearn(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    result = evaluate(model, data, "churn", latency_rows=5)
    X, y = data[["x1", "x2", "age"]], data["churn"]
    pred, proba = model.predict(X), model.predict_proba(X)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "log_loss": skm.log_loss(y, proba),
    }
    assert result.task == "classification"
    assert result.positive_label == 1
    assert result.metrics == pytest.approx(expected)
    assert result.labels == [0, 1]
    assert result.confusion_matrix == skm.confusion_matrix(y, pred).tolist()
    assert result.n_rows == len(data)
    assert result.metric("f1") == pytest.approx(expected["f1"])


def test_baseline_and_timing(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    result = evaluate(model, data, "churn", latency_rows=5)
    majority = data["churn"].value_counts(normalize=True).max()
    assert result.baseline == "DummyClassifier(strategy='prior')"
    assert result.baseline_metrics["accuracy"] == pytest.approx(majority)
    assert result.baseline_metrics["roc_auc"] == pytest.approx(0.5)
    assert result.metric("accuracy") > result.baseline_metrics["accuracy"]
    assert result.latency_ms_per_row is not None and result.latency_ms_per_row > 0
    assert result.single_row_p50_ms is not None and result.single_row_p50_ms > 0
    assert result.metric("single_row_p50_ms") == result.single_row_p50_ms
    none = evaluate(model, data, "churn", baseline=None, latency_rows=0)
    assert none.baseline_metrics == {} and none.single_row_p50_ms is None


def test_regression_metrics_equal_sklearn(
    regression: tuple[LinearRegression, pd.DataFrame],
) -> None:
    model, data = regression
    result = evaluate(model, data, "y", slices=["segment"], latency_rows=3)
    pred = model.predict(data[["x"]])
    y = data["y"]
    assert result.task == "regression"
    assert result.metrics == pytest.approx(
        {
            "rmse": skm.root_mean_squared_error(y, pred),
            "mae": skm.mean_absolute_error(y, pred),
            "r2": skm.r2_score(y, pred),
            "mape": skm.mean_absolute_percentage_error(y, pred),
        }
    )
    assert result.baseline_metrics["rmse"] == pytest.approx(float(np.std(y)))
    rows = data["segment"] == "b"
    assert result.metric("mae", slice="segment=b") == pytest.approx(
        skm.mean_absolute_error(y[rows], pred[rows])
    )
    assert result.confusion_matrix is None
    median = evaluate(model, data, "y", baseline="median", latency_rows=0, log=False)
    assert median.baseline == "DummyRegressor(strategy='median')"


def test_slices_by_column_and_predicate(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    result = evaluate(
        model,
        data,
        "churn",
        slices=["region", "age>60", "region == 'EU'", "age <= 20"],
        latency_rows=0,
    )
    assert list(result.slices) == [
        "region=APAC",
        "region=EU",
        "region=US",
        "age>60",
        "region=='EU'",
        "age<=20",
    ]
    old = data["age"] > 60
    X = data[["x1", "x2", "age"]]
    assert result.slices["age>60"]["n"] == int(old.sum())
    assert result.metric("f1", slice="age > 60") == pytest.approx(
        skm.f1_score(data["churn"][old], model.predict(X[old]))
    )
    eu = result.slices["region=EU"]
    assert eu == result.slices["region=='EU'"]
    assert eu["n"] == int((data["region"] == "EU").sum()) and not eu["small"]
    young = result.slices["age<=20"]
    assert young["n"] == int((data["age"] <= 20).sum()) and young["small"] is True
    with pytest.raises(InvalidInput) as missing:
        result.metric("f1", slice="region=Mars")
    assert missing.value.field == "slice"


def test_slice_with_one_class_omits_undefined_metrics() -> None:
    data = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "g": ["a"] * 3 + ["b"] * 3})
    data["y"] = [0, 0, 0, 1, 1, 1]
    model = LogisticRegression().fit(data[["x"]], data["y"])
    result = evaluate(model, data, "y", slices=["g"], latency_rows=0)
    assert "roc_auc" in result.metrics
    assert "roc_auc" not in result.slices["g=a"]["metrics"]
    assert "log_loss" in result.slices["g=a"]["metrics"]


def test_multiclass_uses_macro_average() -> None:
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"x": rng.normal(size=300)})
    data["label"] = np.where(data["x"] < -0.5, "low", np.where(data["x"] > 0.5, "high", "mid"))
    model = LogisticRegression().fit(data[["x"]], data["label"])
    result = evaluate(model, data, "label", latency_rows=0)
    pred = model.predict(data[["x"]])
    assert result.positive_label is None
    assert result.metric("f1") == pytest.approx(skm.f1_score(data["label"], pred, average="macro"))
    proba = model.predict_proba(data[["x"]])
    assert result.metric("roc_auc") == pytest.approx(
        skm.roc_auc_score(data["label"], proba, multi_class="ovr")
    )
    assert result.labels == ["high", "low", "mid"]


def test_predicate_parser() -> None:
    assert parse_predicate("age>60").value == 60
    assert parse_predicate("score >= -1.5e2").value == -150.0
    assert parse_predicate('region != "EU"').name == "region!='EU'"
    assert parse_predicate("active == true").value is True
    assert parse_predicate("`signup date` < '2024-01-01'").column == "signup date"
    assert canonical_slice_name("age >  60") == "age>60"
    assert slice_metric_key("region=='EU'") == "region_eq_EU"
    assert slice_metric_key("age>60") == "age_gt_60"


@pytest.mark.parametrize(
    "spec",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "age > __import__('os').system('true')",
        "age > 1 or 1",
        "region == 'EU' and age > 3",
        "age = 60",
        "age > ",
        "age >> 3",
        "len(region) > 2",
        "region == EU",
    ],
)
def test_predicate_parser_rejects_anything_else(spec: str) -> None:
    data = pd.DataFrame({"age": [1, 2], "region": ["EU", "US"]})
    with pytest.raises(InvalidInput):
        resolve_slices(data, [spec])


def test_slice_spec_errors() -> None:
    data = pd.DataFrame(
        {"id": range(50), "region": ["EU"] * 50, "when": pd.date_range("2024", periods=50)}
    )
    with pytest.raises(InvalidInput, match="predicate") as many:
        resolve_slices(data, ["id"])
    assert many.value.field == "slices"
    with pytest.raises(InvalidInput) as unknown:
        resolve_slices(data, ["country"])
    assert unknown.value.field == "country"
    with pytest.raises(InvalidInput) as absent:
        resolve_slices(data, ["country == 'FR'"])
    assert absent.value.field == "country"
    with pytest.raises(InvalidInput, match="not numeric"):
        resolve_slices(data, ["region > 3"])
    with pytest.raises(InvalidInput, match="without quotes"):
        resolve_slices(data, ["id == '3'"])
    with pytest.raises(InvalidInput, match="more than once"):
        resolve_slices(data, ["id>3", "id > 3"])
    dated = resolve_slices(data, ["when >= '2024-02-01'"])
    assert int(dated[0].mask.sum()) == 19


def test_logging_into_the_active_run(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    with lm.start_run() as run:
        result = evaluate(model, data, "churn", slices=["region", "age>60"], latency_rows=3)
    metrics = lm.get_run(run.run_id).metrics
    assert metrics["eval_f1"] == pytest.approx(result.metrics["f1"])
    assert metrics["eval_f1/region_EU"] == pytest.approx(result.metric("f1", "region=EU"))
    assert metrics["eval_accuracy/age_gt_60"] == pytest.approx(result.metric("accuracy", "age>60"))
    assert metrics["eval_baseline_accuracy"] == pytest.approx(result.baseline_metrics["accuracy"])
    assert "eval_single_row_p50_ms" in metrics
    paths = {a.path for a in lm.get_service().list_artifacts(run.run_id, "evaluation")}
    assert paths == {"evaluation/confusion_matrix.html", "evaluation/roc.html"}
    stored = b"".join(lm.get_service().read_artifact(run.run_id, "evaluation.json"))
    assert EvaluationResult.from_dict(json.loads(stored)) == result


def test_logging_to_an_explicit_run_and_residual_plot(
    regression: tuple[LinearRegression, pd.DataFrame],
) -> None:
    model, data = regression
    run = lm.start_run()
    run.end()
    assert lm.active_run() is None
    evaluate(model, data, "y", latency_rows=0, run_id=run.run_id)
    assert lm.get_run(run.run_id).metrics["eval_rmse"] > 0
    paths = {a.path for a in lm.get_service().list_artifacts(run.run_id, "evaluation")}
    assert paths == {"evaluation/residuals.html"}


def test_nothing_logged_without_a_run(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    evaluate(model, data, "churn", latency_rows=0)
    assert lm.active_run() is None
    with lm.start_run() as run:
        evaluate(model, data, "churn", latency_rows=0, log=False)
    assert lm.get_run(run.run_id).metrics == {}


def test_result_round_trips_through_json(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    result = evaluate(model, data, "churn", slices=["region"], latency_rows=0)
    assert EvaluationResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    with pytest.raises(InvalidInput):
        EvaluationResult.from_dict({"metrics": {}})


def test_missing_target_column(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    with pytest.raises(InvalidInput, match="'label'") as error:
        evaluate(model, data, "label")
    assert error.value.field == "label"


def test_missing_feature_column_is_named(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    with pytest.raises(InvalidInput, match="x2") as error:
        evaluate(model, data.drop(columns=["x2"]), "churn")
    assert error.value.field == "x2"


class _DictModel:
    """A model without feature_names_in_ that reads its columns by name."""

    def predict(self, frame: pd.DataFrame) -> Any:
        return (frame["x1"] > 0).astype(int).to_numpy()


def test_predict_failing_on_a_missing_column_is_a_clear_error(
    binary: tuple[LogisticRegression, pd.DataFrame],
) -> None:
    _, data = binary
    with pytest.raises(InvalidInput, match=r"_DictModel\.predict failed.*KeyError.*x1") as error:
        evaluate(_DictModel(), data.drop(columns=["x1"]), "churn", task="classification")
    assert error.value.field == "data"
    result = evaluate(_DictModel(), data, "churn", task="classification", latency_rows=0)
    assert "roc_auc" not in result.metrics and result.metric("accuracy") > 0.5


def test_other_bad_input(binary: tuple[LogisticRegression, pd.DataFrame]) -> None:
    model, data = binary
    with pytest.raises(InvalidInput, match="empty"):
        evaluate(model, data.iloc[:0], "churn")
    holes = data.astype({"churn": float})
    holes.loc[3, "churn"] = np.nan
    with pytest.raises(InvalidInput, match="1 missing"):
        evaluate(model, holes, "churn")
    with pytest.raises(InvalidInput) as positive:
        evaluate(model, data, "churn", positive_label=5)
    assert positive.value.field == "positive_label"
    with pytest.raises(InvalidInput) as baseline:
        evaluate(model, data, "churn", baseline="mean")
    assert baseline.value.field == "baseline"
    with pytest.raises(InvalidInput) as task:
        evaluate(model, data, "churn", task="ranking")  # type: ignore[arg-type]
    assert task.value.field == "task"
    with pytest.raises(InvalidInput):
        evaluate(model, data, "churn", features=["x1", "churn"])


def test_task_inference_and_recorder(
    regression: tuple[LinearRegression, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluation_module, "_recorders", [])
    model, data = regression
    seen: list[tuple[Any, EvaluationResult]] = []

    class Registered:
        """Stands for a model the registry loaded: it knows its version."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def predict(self, frame: pd.DataFrame) -> Any:
            return self.inner.predict(frame[["x"]])

    wrapped = Registered(model)
    register_evaluation_recorder(Registered, lambda m, r: seen.append((m, r)))
    result = evaluate(wrapped, data, "y", latency_rows=0)
    assert result.task == "regression"
    assert seen == [(wrapped, result)]
    evaluate(model, data, "y", latency_rows=0)
    assert len(seen) == 1


class _Wrapped:
    """Like a registry-loaded model: checks its input, always exposes predict_proba."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, frame: pd.DataFrame) -> Any:
        if "x1" not in frame.columns:
            raise InvalidInput("input lacks column 'x1'", field="x1")
        return self.inner.predict(frame[["x1", "x2", "age"]])

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        raise InvalidInput("this model has no predict_proba", field="predict_proba")


def test_wrapped_models_keep_their_errors_and_may_lack_probabilities(
    binary: tuple[LogisticRegression, pd.DataFrame],
) -> None:
    model, data = binary
    result = evaluate(_Wrapped(model), data, "churn", task="classification", latency_rows=0)
    assert "log_loss" not in result.metrics and "roc_auc" not in result.metrics
    assert result.metric("f1") == pytest.approx(evaluate(model, data, "churn").metric("f1"))
    with pytest.raises(InvalidInput) as error:
        evaluate(_Wrapped(model), data.drop(columns=["x1"]), "churn", task="classification")
    assert error.value.field == "x1"
