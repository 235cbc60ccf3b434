"""``POST /explain`` over real HTTP: SHAP values of the served model, 422 on a bad body."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest

import loopml as lm
from conftest import module_home, register_iris, serve_app
from loopml.models.storage import LoadedModel
from loopml.serving import create_serving_app


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, pd.DataFrame]:
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    with module_home(tmp_path_factory, "explain-home"):
        X = register_iris(columns=columns, background=True)
        model = lm.models.load("iris@champion")
    return model, X


@pytest.fixture(scope="module")
def client(iris: tuple[LoadedModel, pd.DataFrame]) -> Iterator[httpx.Client]:
    model, _ = iris
    app = create_serving_app("iris@champion", loader=lambda spec: model, max_body_bytes=8192)
    with serve_app(app, timeout=30) as served:
        yield served


def test_explain_returns_values_per_row_and_feature(
    client: httpx.Client, iris: tuple[LoadedModel, pd.DataFrame]
) -> None:
    model, X = iris
    rows = X.iloc[[0, 60, 120]]
    response = client.post("/explain", json={"inputs": rows.to_dict(orient="records")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "iris" and body["version"] == 1
    assert body["feature_names"] == list(X.columns)
    values = np.asarray(body["values"])
    assert values.shape == (3, 4) and len(body["base_values"]) == 3
    assert body["classes"] == [0, 1, 2] and body["explainer"] == "linear"
    # Each row is explained for its predicted class, in log-odds: the values add up.
    margins = model.model.decision_function(rows)
    explained = margins[np.arange(3), body["classes"]]
    np.testing.assert_allclose(np.asarray(body["base_values"]) + values.sum(axis=1), explained)


def test_explain_accepts_the_columns_layout(
    client: httpx.Client, iris: tuple[LoadedModel, pd.DataFrame]
) -> None:
    _, X = iris
    columns = {name: X[name].head(2).tolist() for name in X.columns}
    response = client.post("/explain", json={"columns": columns})
    assert response.status_code == 200, response.text
    assert np.asarray(response.json()["values"]).shape == (2, 4)


def test_bad_body_is_422_naming_the_field(
    client: httpx.Client, iris: tuple[LoadedModel, pd.DataFrame]
) -> None:
    _, X = iris
    record = {**X.iloc[0].to_dict(), "petal_width": "wide"}
    response = client.post("/explain", json={"inputs": [record]})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "inputs.0.petal_width"
    missing = {k: v for k, v in X.iloc[0].to_dict().items() if k != "sepal_length"}
    response = client.post("/explain", json={"inputs": [missing]})
    assert response.status_code == 422, response.text
    assert "sepal_length" in response.json()["field"]
    assert client.post("/explain", json={"inputs": []}).status_code == 422
