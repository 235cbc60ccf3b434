"""SHAP explanations: explainer choice, additivity, background samples and model-card importance."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from model_classes_for_tests import LinearScore
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopml as lm
from loopml.errors import InvalidInput
from loopml.models.explain import explain, explainer_kind, global_importance, importance_path
from loopml.models.storage import BACKGROUND, MANIFEST, MAX_BACKGROUND_ROWS, LoadedModel

TREE_TYPES = ["sklearn.tree._tree.Tree"]


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series[Any]]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return X, y


def log(model: Any, example: pd.DataFrame | None, **kwargs: Any) -> str:
    with lm.start_run():
        info = lm.log_model(model, "m", input_example=example, **kwargs)
    return info.uri


def load(uri: str, **kwargs: Any) -> LoadedModel:
    return lm.models.load(uri, **kwargs)


def rows(X: pd.DataFrame) -> pd.DataFrame:
    # One row of each iris class, so every class gets explained.
    return X.iloc[[0, 60, 120]]


def test_values_have_a_row_per_input_and_a_column_per_feature(
    iris: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    loaded = load(log(model, X.head(), background=X))
    result = explain(loaded, rows(X))
    assert result.values.shape == (3, 4)
    assert result.base_values.shape == (3,)
    assert result.feature_names == list(X.columns)
    assert result.explainer == "linear"
    # Classifiers are explained for the class they predict.
    assert result.classes == model.predict(rows(X)).tolist() == [0, 1, 2]
    body = result.to_dict()
    assert len(body["values"]) == 3 and len(body["values"][0]) == 4
    json.dumps(body)


def test_linear_models_are_additive(iris: tuple[pd.DataFrame, pd.Series[Any]]) -> None:
    X, y = iris
    binary = LogisticRegression(max_iter=500).fit(X, y == 1)
    result = explain(load(log(binary, X.head(), background=X)), rows(X))
    margin = binary.decision_function(rows(X))
    # One margin for two classes: a row predicted False is explained by the negated margin.
    explained = np.where(binary.predict(rows(X)), margin, -margin)
    np.testing.assert_allclose(result.base_values + result.values.sum(axis=1), explained)
    assert result.classes == [False, True, False]

    regression = LinearRegression().fit(X, y.astype(float))
    result = explain(load(log(regression, X.head(), background=X)), rows(X))
    np.testing.assert_allclose(
        result.base_values + result.values.sum(axis=1), regression.predict(rows(X))
    )
    assert result.classes is None


def test_tree_models_are_additive(iris: tuple[pd.DataFrame, pd.Series[Any]]) -> None:
    X, y = iris
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    loaded = load(log(forest, X.head()), trusted_types=TREE_TYPES)
    result = explain(loaded, rows(X))
    assert result.explainer == "tree"
    proba = forest.predict_proba(rows(X))
    explained = proba[np.arange(3), np.argmax(proba, axis=1)]
    np.testing.assert_allclose(result.base_values + result.values.sum(axis=1), explained, atol=1e-6)

    boosting = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(X, y)
    result = explain(load(log(boosting, X.head()), trusted_types=TREE_TYPES), rows(X))
    np.testing.assert_allclose(
        result.base_values + result.values.sum(axis=1), boosting.predict(rows(X)), atol=1e-6
    )


def _xgboost(X: pd.DataFrame, y: pd.Series[Any]) -> Any:
    xgboost = pytest.importorskip("xgboost")
    return xgboost.XGBRegressor(n_estimators=5, n_jobs=1).fit(X, y)


def _lightgbm(X: pd.DataFrame, y: pd.Series[Any]) -> Any:
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, y)


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (lambda X, y: LogisticRegression(max_iter=500).fit(X, y), "linear"),
        (lambda X, y: LinearRegression().fit(X, y), "linear"),
        (lambda X, y: RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), "tree"),
        (lambda X, y: GradientBoostingRegressor(n_estimators=5).fit(X, y), "tree"),
        (_xgboost, "tree"),
        (_lightgbm, "tree"),
        (
            lambda X, y: make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
            "model-agnostic",
        ),
        (lambda X, y: KNeighborsRegressor().fit(X, y), "model-agnostic"),
        (
            lambda X, y: LinearScore({"petal_length": 2.0, "sepal_width": -1.0}, 0.5),
            "model-agnostic",
        ),
    ],
)
def test_explainer_is_chosen_by_model_type(
    iris: tuple[pd.DataFrame, pd.Series[Any]], build: Any, kind: str
) -> None:
    X, y = iris
    trusted = [
        "sklearn.tree._tree.Tree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
    ]
    loaded = load(log(build(X, y), X.head(), background=X), trusted_types=trusted)
    assert explainer_kind(loaded) == kind
    result = explain(loaded, rows(X))
    assert result.explainer == kind
    assert result.values.shape == (3, 4)
    if kind == "model-agnostic" and not hasattr(loaded.model, "classes_"):
        # Exact Shapley values over the background: additive to the prediction.
        np.testing.assert_allclose(
            result.base_values + result.values.sum(axis=1), loaded.predict(rows(X)), atol=1e-9
        )


def test_model_agnostic_classifier_explains_the_predicted_probability(
    iris: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    X, y = iris
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    result = explain(load(log(pipeline, X.head(), background=X)), rows(X))
    proba = pipeline.predict_proba(rows(X))
    np.testing.assert_allclose(
        result.base_values + result.values.sum(axis=1), proba.max(axis=1), atol=1e-9
    )


def test_many_features_use_the_bounded_sampling_explainer() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 10)), columns=[f"x{i}" for i in range(10)])
    target = X.to_numpy() @ np.arange(10) + rng.normal(size=80)
    model = KNeighborsRegressor(n_neighbors=3).fit(X, target)
    trusted = [
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
    ]
    loaded = load(log(model, X.head(), background=X), trusted_types=trusted)
    result = explain(loaded, X.head(2), max_evals=21)
    assert result.values.shape == (2, 10)
    # Every sampled permutation distributes the whole output, so additivity still holds.
    np.testing.assert_allclose(
        result.base_values + result.values.sum(axis=1), model.predict(X.head(2)), atol=1e-9
    )


def test_bad_input_is_invalid_input_naming_the_column(
    iris: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    X, y = iris
    loaded = load(log(LogisticRegression(max_iter=500).fit(X, y), X.head()))
    with pytest.raises(InvalidInput, match="missing column") as missing:
        explain(loaded, X.drop(columns="petal_width").head(2))
    assert missing.value.field == "petal_width"
    record = {**X.iloc[0].to_dict(), "sepal_width": "wide"}
    with pytest.raises(InvalidInput) as wrong:
        explain(loaded, [record])
    assert wrong.value.field == "sepal_width"
    with pytest.raises(InvalidInput) as evals:
        explain(loaded, X.head(1), max_evals=0)
    assert evals.value.field == "max_evals"


def test_non_tree_model_without_background_is_invalid_input(
    iris: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    X, y = iris
    signature = lm.models.infer_signature(X.head())
    loaded = load(log(LogisticRegression(max_iter=500).fit(X, y), None, signature=signature))
    assert loaded.background is None
    with pytest.raises(InvalidInput, match="no background sample") as caught:
        explain(loaded, X.head(2))
    assert caught.value.field == "model"
    # Tree SHAP follows the trees' own training statistics: no sample needed.
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    tree = load(log(forest, None, signature=signature), trusted_types=TREE_TYPES)
    assert explain(tree, X.head(2)).values.shape == (2, 4)


def test_background_is_capped_sampled_and_listed_in_the_manifest(
    iris: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    X, y = iris
    big = pd.concat([X, X], ignore_index=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    first, second = (load(log(model, X.head(), background=big)) for _ in range(2))
    assert first.background is not None and second.background is not None
    assert len(first.background) == MAX_BACKGROUND_ROWS
    assert list(first.background.columns) == list(X.columns)
    # A fixed seed: the same rows every time, and not simply the first ones.
    pd.testing.assert_frame_equal(first.background, second.background)
    assert not first.background.equals(big.head(MAX_BACKGROUND_ROWS))
    assert len(first.manifest["files"][BACKGROUND]) == 64
    assert first.manifest["background"] == {
        "file": BACKGROUND,
        "rows": MAX_BACKGROUND_ROWS,
        "source": "background",
    }
    # Without an explicit sample, the input example serves.
    example = load(log(model, X.head()))
    assert example.background is not None
    pd.testing.assert_frame_equal(example.background, X.head().reset_index(drop=True))
    assert example.manifest["background"]["source"] == "input_example"


def test_background_not_matching_the_signature_is_refused(
    iris: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(InvalidInput, match="petal_width") as caught:
        log(model, X.head(), background=X.drop(columns="petal_width"))
    assert caught.value.field == "background"
    with pytest.raises(InvalidInput, match="no rows"):
        log(model, X.head(), background=X.head(0))


def test_tampered_background_is_refused(
    isolated_home: Path, iris: tuple[pd.DataFrame, pd.Series[Any]]
) -> None:
    X, y = iris
    uri = log(LogisticRegression(max_iter=500).fit(X, y), X.head(), background=X)
    run_id = uri.split("/")[1]
    entries = {e.path: e.sha256 for e in lm.get_service().list_artifacts(run_id, "m")}
    sha = entries[f"m/{BACKGROUND}"]
    blob = isolated_home / "artifacts" / "blobs" / sha[:2] / sha[2:]
    blob.chmod(0o600)
    X.head(3).to_parquet(blob, index=False)
    with pytest.raises(InvalidInput, match=rf"model file {BACKGROUND} .* changed since"):
        lm.models.load(uri)


def test_model_folders_from_before_background_samples_still_load(
    iris: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    uri = log(model, X.head())
    run_id = uri.split("/")[1]
    service = lm.get_service()
    manifest = json.loads(b"".join(service.read_artifact(run_id, f"m/{MANIFEST}")))
    del manifest["background"], manifest["files"][BACKGROUND]
    body = json.dumps(manifest).encode()
    service.log_artifact_stream(run_id, f"m/{MANIFEST}", io.BytesIO(body))
    loaded = lm.models.load(uri)
    assert loaded.background is None
    np.testing.assert_array_equal(loaded.predict(X.head()), model.predict(X.head()))
    # The input example stands in for the missing background sample.
    assert explain(loaded, rows(X)).values.shape == (3, 4)


def test_card_shows_global_importance_sorted(iris: tuple[pd.DataFrame, pd.Series[Any]]) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    uri = log(model, X.head(), background=X)
    lm.registry.register(uri, "flowers")
    importance = global_importance(load(uri))
    values = list(importance.values())
    assert values == sorted(values, reverse=True) and min(values) > 0
    expected = np.abs(explain(load(uri), X).values).mean(axis=0)
    np.testing.assert_allclose(sorted(values), sorted(expected.tolist()))

    card = lm.registry.card("flowers", 1)
    section = card.split("## Global feature importance", 1)[1]
    table = [line for line in section.splitlines() if line.startswith("| ") and "SHAP" not in line]
    assert [line.split("|")[1].strip() for line in table] == list(importance)
    assert "150 background rows (linear explainer)" in section
    page = lm.registry.card("flowers", 1, format="html")
    assert "<h2>Global feature importance</h2>" in page
    assert f"<td>{next(iter(importance))}</td>" in page
    # Computed once, then kept with the run and read back.
    run_id = uri.split("/")[1]
    stored = json.loads(b"".join(lm.get_service().read_artifact(run_id, importance_path("m"))))
    assert list(stored["importance"]) == list(importance)
    assert stored["rows"] == 150 and stored["explainer"] == "linear"


def test_card_says_why_importance_is_missing(iris: tuple[pd.DataFrame, pd.Series[Any]]) -> None:
    X, y = iris
    signature = lm.models.infer_signature(X.head())
    uri = log(LogisticRegression(max_iter=500).fit(X, y), None, signature=signature)
    lm.registry.register(uri, "bare")
    card = lm.registry.card("bare", 1)
    section = card.split("## Global feature importance", 1)[1]
    assert "not available" in section and "background sample" in section


def test_string_and_boolean_columns_are_explained() -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, 120),
            "plan": rng.choice(["basic", "plus", "pro"], 120),
            "promo": rng.choice([True, False], 120),
        }
    )
    target = (X.plan == "pro") ^ (X.tenure < 12) ^ X.promo
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]), ("passthrough", ["tenure", "promo"])
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(X, target)
    loaded = load(log(model, X.head(20)))
    assert loaded.background is not None and loaded.background.plan.dtype == object
    # A category the background never saw is explained too.
    rows = pd.concat([X.head(2), X.head(1).assign(plan="enterprise")], ignore_index=True)
    result = explain(loaded, rows)
    assert result.explainer == "model-agnostic"
    proba = loaded.model.predict_proba(rows)
    np.testing.assert_allclose(
        result.base_values + result.values.sum(axis=1), proba.max(axis=1), atol=1e-9
    )


def test_importance_of_a_model_that_needs_trusted_types(
    iris: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    X, y = iris
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    lm.registry.register(log(forest, X.head(), background=X), "forest")
    # A card never trusts types on its own: it says what is needed.
    assert "trusted_types" in lm.registry.card("forest", 1).split("## Global feature")[1]
    service = lm.registry.get_service()
    record = service.importance("forest", 1, trusted_types=TREE_TYPES)
    assert record["explainer"] == "tree" and record["rows"] == 150
    section = lm.registry.card("forest", 1).split("## Global feature importance", 1)[1]
    assert "(tree explainer)" in section
    assert f"| {next(iter(record['importance']))} |" in section
