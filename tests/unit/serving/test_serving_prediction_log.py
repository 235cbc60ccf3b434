"""The model server logs its predictions for monitoring and takes ground truth on /feedback."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, BinaryIO

import pandas as pd
import pytest
from serving_models import Flaky

import loopml as lm
from conftest import register_iris, serve_app
from loopml.config import load_settings
from loopml.monitoring.predictions import PredictionLogger, open_stores
from loopml.serving import create_serving_app
from loopml.store.registry import PredictionLogStores


@pytest.fixture()
def iris_rows() -> pd.DataFrame:
    return register_iris()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): float(v) for k, v in row.items()} for row in frame.to_dict("records")]


def test_predictions_are_logged_and_feedback_joins_them(iris_rows: pd.DataFrame) -> None:
    app = create_serving_app("iris@champion", log_predictions=True)
    with serve_app(app) as client:
        first = client.post(
            "/predict",
            json={"inputs": _records(iris_rows.iloc[:2])},
            headers={"x-request-id": "r0"},
        )
        assert first.status_code == 200, first.text
        for index in range(1, 5):
            answer = client.post(
                "/predict",
                json={"inputs": _records(iris_rows.iloc[[50 * (index % 3)]])},
                headers={"x-request-id": f"r{index}"},
            )
            assert answer.status_code == 200, answer.text
        accepted = client.post("/feedback", json={"request_id": "r1", "label": 1})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"accepted": 1}
        per_row = client.post("/feedback", json={"request_id": "r0", "labels": [0, 0]})
        assert per_row.json() == {"accepted": 2}
        bad = client.post("/feedback", json={"request_id": "r2"})
        assert bad.status_code == 400
        assert "label" in bad.json()["field"]
        not_json = client.post("/feedback", content=b"{nope")
        assert not_json.status_code == 400
        assert not_json.json()["field"] == "body"
        assert client.post("/predict", json={"inputs": [{"x": 1}]}).status_code == 422
        assert "loopml_prediction_log_queue_depth" in client.get("/metrics").text
    # Leaving the block ran the app's shutdown, which flushed the log.
    logged = lm.monitoring.predictions("iris")
    assert sorted(logged["request_id"]) == ["r0", "r0", "r1", "r2", "r3", "r4"]
    assert set(logged["variant"]) == {"primary"}
    assert set(logged["version"]) == {1}
    assert (logged["latency_ms"] > 0).all()
    labelled = logged.set_index(["request_id", "row"])["label"]
    assert labelled[("r1", 0)] == 1
    assert labelled[("r0", 1)] == 0
    assert pd.isna(labelled[("r3", 0)])
    row = logged[logged["request_id"] == "r0"].sort_values("row").iloc[0]
    assert row["sepal length (cm)"] == pytest.approx(float(iris_rows.iloc[0, 0]))


def test_failed_requests_are_logged_with_their_error(iris_rows: pd.DataFrame) -> None:
    loaded = lm.models.load("iris/1")
    loaded.model = Flaky(loaded.model, 6.0)
    app = create_serving_app("iris@champion", loader=lambda _: loaded, log_predictions=True)
    short = iris_rows[iris_rows["sepal length (cm)"] <= 6.0].iloc[:1]
    long = iris_rows[iris_rows["sepal length (cm)"] > 6.0].iloc[:1]
    with serve_app(app) as client:
        ok = client.post(
            "/predict", json={"inputs": _records(short)}, headers={"x-request-id": "a"}
        )
        assert ok.status_code == 200, ok.text
        failed = client.post(
            "/predict", json={"inputs": _records(long)}, headers={"x-request-id": "b"}
        )
        assert failed.status_code == 500
        assert failed.json()["error"] == "prediction_failed"
    # Readers of predictions never see the failure; the serving statistics count it.
    assert lm.monitoring.predictions("iris")["request_id"].tolist() == ["a"]
    everything = lm.monitoring.predictions("iris", with_errors=True)
    assert everything["request_id"].tolist() == ["a", "b"]
    assert everything["error"].iloc[1] == "RuntimeError: flaky model"
    assert everything["sepal length (cm)"].iloc[1] == pytest.approx(
        float(long["sepal length (cm)"].iloc[0])
    )
    from loopml.monitoring.serving_stats import serving_stats

    overall = serving_stats("iris")["overall"]
    assert (overall["requests"], overall["errors"], overall["error_rate"]) == (2, 1, 0.5)


def test_a_server_that_does_not_log_refuses_feedback(iris_rows: pd.DataFrame) -> None:
    with serve_app(create_serving_app("iris@champion")) as client:
        answer = client.post("/feedback", json={"request_id": "r1", "label": 1})
    assert answer.status_code == 404
    assert "does not log" in answer.json()["message"]


class _StalledBlobs:
    """A blob store whose writes wait until the test opens the gate."""

    def __init__(self, inner: Any, gate: threading.Event) -> None:
        self.inner, self.gate = inner, gate

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        assert self.gate.wait(30)
        result: tuple[str, int] = self.inner.put_stream(stream)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_stalled_log_writer_never_holds_up_predictions(iris_rows: pd.DataFrame) -> None:
    settings = load_settings()
    real = open_stores(settings)
    gate = threading.Event()
    stores = PredictionLogStores(log=real.log, blobs=_StalledBlobs(real.blobs, gate))  # type: ignore[arg-type]
    logger = PredictionLogger(max_queue=4, flush_rows=1, settings=settings, stores=stores)
    body = {"inputs": _records(iris_rows.iloc[:1])}
    app = create_serving_app("iris@champion", prediction_logger=logger)
    try:
        with serve_app(app) as client:

            def call(index: int) -> tuple[int, float]:
                started = time.perf_counter()
                answer = client.post("/predict", json=body, headers={"x-request-id": f"s{index}"})
                return answer.status_code, time.perf_counter() - started

            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                results = list(pool.map(call, range(80)))
            assert {status for status, _ in results} == {200}
            # The writer is stuck on its first segment, so the queue filled and the rest
            # were dropped and counted instead of waiting.
            assert logger.dropped > 0
            assert max(seconds for _, seconds in results) < 5
            gate.set()
    finally:
        gate.set()
    assert logger.dropped + len(lm.monitoring.predictions("iris")) == 80
