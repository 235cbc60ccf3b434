"""The serving app over real HTTP: predictions, signature validation, health and metrics."""

from __future__ import annotations

import concurrent.futures
import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopml as lm
from conftest import module_home, register_iris, serve_app
from loopml.models.storage import LoadedModel
from loopml.serving import build_request_model, create_serving_app

BODY_LIMIT = 4_096


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, pd.DataFrame]:
    with module_home(tmp_path_factory, "serving-home"):
        X = register_iris()
        model = lm.models.load("iris@champion")
    return model, X


@pytest.fixture(scope="module")
def client(iris: tuple[LoadedModel, pd.DataFrame]) -> Iterator[httpx.Client]:
    model, _ = iris
    app = create_serving_app(
        "iris@champion",
        max_batch_size=16,
        max_wait_ms=20,
        max_body_bytes=BODY_LIMIT,
        loader=lambda spec: model,
    )
    with serve_app(app) as served:
        yield served


@pytest.fixture(scope="module")
def records(iris: tuple[LoadedModel, pd.DataFrame]) -> list[dict[str, float]]:
    _, X = iris
    return X.head(3).to_dict(orient="records")  # type: ignore[return-value]


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) >= {"error", "message"}
    return body


def test_predict_records(client: httpx.Client, records: list[dict[str, float]]) -> None:
    response = client.post("/predict", json={"inputs": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == [0, 0, 0]
    assert len(body["probabilities"]) == 3 and len(body["probabilities"][0]) == 3
    assert abs(sum(body["probabilities"][0]) - 1) < 1e-6
    assert body["model"] == "iris" and body["version"] == 1
    assert len(body["request_id"]) >= 16
    assert response.headers["x-request-id"] == body["request_id"]


def test_predict_columns(client: httpx.Client, records: list[dict[str, float]]) -> None:
    columns = {name: [r[name] for r in records] for name in records[0]}
    response = client.post("/predict", json={"columns": columns})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [0, 0, 0]


def test_integers_are_accepted_for_doubles(
    client: httpx.Client, records: list[dict[str, float]]
) -> None:
    record = {**records[0], "sepal length (cm)": 5}
    assert client.post("/predict", json={"inputs": [record]}).status_code == 200


def test_wrong_type_names_the_field(client: httpx.Client, records: list[dict[str, float]]) -> None:
    record = {**records[0], "petal width (cm)": "wide"}
    body = _error(client.post("/predict", json={"inputs": [records[1], record]}), 422)
    assert body["field"] == "inputs.1.petal width (cm)"
    assert "petal width (cm)" in body["message"]


def test_missing_field_names_the_field(
    client: httpx.Client, records: list[dict[str, float]]
) -> None:
    record = {k: v for k, v in records[0].items() if k != "sepal width (cm)"}
    body = _error(client.post("/predict", json={"inputs": [record]}), 422)
    assert body["field"] == "inputs.0.sepal width (cm)"
    assert "required" in body["message"].lower()


def test_extra_field_is_rejected(client: httpx.Client, records: list[dict[str, float]]) -> None:
    body = _error(client.post("/predict", json={"inputs": [{**records[0], "colour": 1}]}), 422)
    assert body["field"] == "inputs.0.colour"


def test_extra_fields_can_be_ignored(iris: tuple[LoadedModel, pd.DataFrame]) -> None:
    model, X = iris
    request_model = build_request_model(model.signature, extra_fields="ignore")
    record = {**X.head(1).to_dict(orient="records")[0], "colour": 1}
    parsed = request_model.model_validate_json(json.dumps({"inputs": [record]}))
    assert "colour" not in parsed.model_dump(by_alias=True)["inputs"][0]


def test_empty_inputs(client: httpx.Client) -> None:
    body = _error(client.post("/predict", json={"inputs": []}), 422)
    assert body["field"] == "inputs"


def test_neither_or_both_layouts(client: httpx.Client, records: list[dict[str, float]]) -> None:
    _error(client.post("/predict", json={}), 422)
    columns = {name: [r[name] for r in records] for name in records[0]}
    _error(client.post("/predict", json={"inputs": records, "columns": columns}), 422)


def test_columns_of_unequal_length(client: httpx.Client, records: list[dict[str, float]]) -> None:
    columns = {name: [r[name] for r in records] for name in records[0]}
    columns["sepal length (cm)"] = columns["sepal length (cm)"][:1]
    body = _error(client.post("/predict", json={"columns": columns}), 422)
    assert "same length" in body["message"]


def test_non_json_body(client: httpx.Client) -> None:
    response = client.post(
        "/predict", content=b"sepal=1", headers={"Content-Type": "application/json"}
    )
    body = _error(response, 400)
    assert "not valid JSON" in body["message"]


def test_nan_and_infinity_are_refused(
    client: httpx.Client, records: list[dict[str, float]]
) -> None:
    for token in ("NaN", "Infinity", "-Infinity"):
        record = json.dumps(records[0]).replace("5.1", token, 1)
        content = f'{{"inputs": [{record}]}}'.encode()
        body = _error(client.post("/predict", content=content), 422)
        assert body["field"] == "inputs.0.sepal length (cm)", body


def test_oversize_body_is_413_and_the_server_keeps_serving(
    client: httpx.Client, records: list[dict[str, float]]
) -> None:
    body = _error(client.post("/predict", json={"inputs": records * 100}), 413)
    assert body["error"] == "payload_too_large"
    assert client.post("/predict", json={"inputs": records}).status_code == 200


def test_health_ready_metadata(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    metadata = client.get("/metadata").json()
    assert metadata["model"] == "iris" and metadata["version"] == 1
    assert [c["name"] for c in metadata["signature"]["inputs"]][0] == "sepal length (cm)"


def test_concurrent_requests_share_batches_and_metrics(
    client: httpx.Client, records: list[dict[str, float]]
) -> None:
    def one(i: int) -> int:
        response = client.post("/predict", json={"inputs": [records[i % 3]]})
        assert response.status_code == 200, response.text
        return int(response.json()["predictions"][0])

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(one, range(48))) == [0] * 48
    text = client.get("/metrics").text
    assert 'loopml_serving_model_info{name="iris",version="1"} 1.0' in text
    assert 'loopml_serving_requests_total{route="/predict",status="200"}' in text
    assert "loopml_serving_request_latency_seconds_bucket" in text
    assert "loopml_serving_in_flight_requests" in text
    buckets = {
        line.split('le="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("loopml_serving_batch_size_bucket")
    }
    count = next(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("loopml_serving_batch_size_count")
    )
    assert buckets["1.0"] < count, "no batch held more than one row"


def test_default_loader_serves_a_registered_model(isolated_home: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with lm.start_run():
        info = lm.log_model(
            LogisticRegression(max_iter=300).fit(X, y), "model", input_example=X.head()
        )
    lm.registry.register(info.uri, "flowers")
    lm.registry.set_alias("flowers", "champion", 1, reason="first")
    with serve_app(create_serving_app("flowers@champion")) as client:
        assert client.get("/ready").status_code == 200
        records = X.head(1).to_dict(orient="records")
        body = client.post("/predict", json={"inputs": records}).json()
        assert body["model"] == "flowers" and body["version"] == 1


def test_hot_swap_under_load_has_no_failures(
    iris: tuple[LoadedModel, pd.DataFrame], records: list[dict[str, float]]
) -> None:
    model, _ = iris
    second = copy.copy(model)
    second.registered = ("iris", 2)
    current = {"version": 1}
    loaded: list[str] = []

    def loader(spec: str) -> LoadedModel:
        loaded.append(spec)
        return second if spec == "iris/2" else model

    def resolver(spec: str) -> tuple[str, int | None]:
        return "iris", current["version"]

    app = create_serving_app(
        "iris@champion",
        max_wait_ms=5,
        loader=loader,
        resolver=resolver,
        reload_interval=0.05,
    )
    with serve_app(app) as client:
        done = threading.Event()
        swapped = threading.Event()
        versions: list[int] = []
        failures: list[str] = []

        def hammer() -> None:
            while not done.is_set():
                response = client.post("/predict", json={"inputs": [records[0]]})
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    versions.append(int(response.json()["version"]))
                    if versions[-1] == 2:
                        swapped.set()

        threads = [threading.Thread(target=hammer) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(0.4)
        current["version"] = 2
        # On a loaded machine the swap may take longer than usual: wait for it, then keep
        # the load on a little longer so that requests after the swap are checked too.
        swapped.wait(timeout=20)
        time.sleep(0.3)
        done.set()
        for thread in threads:
            thread.join()
        assert failures == []
        assert versions[0] == 1 and versions[-1] == 2
        assert 1 in versions and 2 in versions
        assert loaded == ["iris@champion", "iris/2"]
        assert client.get("/metadata").json()["version"] == 2
        assert (
            'loopml_serving_model_info{name="iris",version="2"} 1.0' in client.get("/metrics").text
        )
