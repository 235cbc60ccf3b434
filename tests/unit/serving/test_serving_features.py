"""Serving with a feature service: requests carry entity keys, features come from online."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import loopml as lm
from conftest import serve_app
from loopml.features.online import open_online_store
from loopml.serving import create_serving_app

# Yesterday: the online values stay within the activity view's 2-day TTL during the tests.
T0 = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("D") - pd.Timedelta("1D")
END = T0 + pd.Timedelta("1D")
FEATURES = ["activity__trips", "quality__rating"]


def _feature_store(tmp_path: Path) -> None:
    """Two views of drivers 1-5 (a registered dataset and a Parquet file), one service."""
    rng = np.random.default_rng(0)
    hours = pd.to_timedelta(np.tile(np.arange(10), 5), unit="h")
    trips = pd.DataFrame(
        {
            "driver_id": np.repeat(np.arange(1, 6), 10),
            "ts": T0 + hours,
            "trips": rng.integers(0, 20, 50),
        }
    )
    ratings = pd.DataFrame(
        {
            "driver_id": np.arange(1, 6),
            "day": [T0] * 5,
            "rating": rng.uniform(3, 5, 5).round(3),
        }
    )
    lm.datasets.register("driver_trips", trips)
    ratings.to_parquet(tmp_path / "ratings.parquet")
    driver = lm.features.Entity("driver", ["driver_id"])
    activity = lm.features.FeatureView(
        "activity",
        [driver],
        source="driver_trips",
        timestamp_field="ts",
        features=[lm.features.Field("trips", "int64")],
        ttl=timedelta(days=2),
    )
    quality = lm.features.FeatureView(
        "quality",
        [driver],
        source=str(tmp_path / "ratings.parquet"),
        timestamp_field="day",
        features=[lm.features.Field("rating", "float64")],
    )
    service = lm.features.FeatureService("ranker", [activity, quality])
    lm.features.apply([driver, activity, quality, service])


def _train() -> LinearRegression:
    """Fit on a point-in-time-correct training set; register it as ``eta@champion``."""
    rng = np.random.default_rng(1)
    entities = pd.DataFrame(
        {
            "driver_id": rng.integers(1, 6, 40),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 600, 40), unit="min"),
        }
    )
    training = lm.features.get_historical_features(entities, "ranker")
    X = training[FEATURES]
    y = 2.0 * X["activity__trips"] + X["quality__rating"] + rng.normal(size=40)
    model = LinearRegression().fit(X, y)
    with lm.start_run():
        info = lm.log_model(model, "model", input_example=X.head())
    lm.registry.register(info.uri, "eta")
    lm.registry.set_alias("eta", "champion", 1, reason="first")
    return model


def _offline(drivers: list[int]) -> pd.DataFrame:
    """What a training set would hold for these drivers just before the materialized end."""
    entities = pd.DataFrame(
        {"driver_id": drivers, "event_timestamp": [END - pd.Timedelta("1us")] * len(drivers)}
    )
    return lm.features.get_historical_features(entities, "ranker")


def test_entity_keys_are_enriched_with_online_features(tmp_path: Path) -> None:
    _feature_store(tmp_path)
    model = _train()
    lm.features.materialize(T0.to_pydatetime(), END.to_pydatetime())
    drivers = [3, 1, 3, 5]
    offline = _offline(drivers)
    expected = model.predict(offline[FEATURES])
    app = create_serving_app("eta@champion", feature_service="ranker", log_predictions=True)
    with serve_app(app) as client:
        records = [{"driver_id": d} for d in drivers]
        response = client.post("/predict", json={"inputs": records})
        assert response.status_code == 200, response.text
        assert np.allclose(response.json()["predictions"], expected)
        # The columns layout works too.
        columns = client.post("/predict", json={"columns": {"driver_id": [5]}})
        assert columns.status_code == 200, columns.text
        assert np.allclose(columns.json()["predictions"], expected[3:])
        # An entity the online store has no row for: a clear 400 naming the key.
        unknown = client.post("/predict", json={"inputs": [{"driver_id": 1}, {"driver_id": 99}]})
        assert unknown.status_code == 400, unknown.text
        assert unknown.json()["field"] == "driver_id"
        assert "driver_id=99" in unknown.json()["message"]
        # Without the join key the body is refused before any lookup.
        missing = client.post("/predict", json={"inputs": [{"driver": 1}]})
        assert missing.status_code == 422, missing.text
        # The features themselves are not request fields.
        extra = client.post("/predict", json={"inputs": [{"driver_id": 1, "quality__rating": 1.0}]})
        assert extra.status_code == 422, extra.text
        assert client.get("/metadata").json()["signature"]["inputs"][0]["name"] == FEATURES[0]
    # The prediction log holds the keys and the enriched values the model saw.
    logged = lm.monitoring.predictions("eta")
    assert len(logged) == 5
    assert logged["driver_id"].tolist() == [*drivers, 5]
    for column in FEATURES:
        assert np.allclose(logged[column].to_numpy(dtype=float)[:4], offline[column].to_numpy())


def test_without_a_feature_service_the_body_carries_the_features(tmp_path: Path) -> None:
    _feature_store(tmp_path)
    model = _train()
    app = create_serving_app("eta@champion")
    with serve_app(app) as client:
        keys_only = client.post("/predict", json={"inputs": [{"driver_id": 1}]})
        assert keys_only.status_code == 422
        row = {"activity__trips": 4, "quality__rating": 4.5}
        answer = client.post("/predict", json={"inputs": [row]})
        assert answer.status_code == 200, answer.text
        assert np.allclose(answer.json()["predictions"], model.predict(pd.DataFrame([row])))


def test_serve_command_binds_the_feature_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from loopml.cli.main import app as cli

    _feature_store(tmp_path)
    _train()
    lm.features.materialize(T0.to_pydatetime(), END.to_pydatetime())
    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(app))
    runner = CliRunner()
    unknown = runner.invoke(cli, ["serve", "eta@champion", "--feature-service", "nope"])
    assert unknown.exit_code == 2, unknown.output
    assert "nope" in unknown.output and "Traceback" not in unknown.output
    result = runner.invoke(cli, ["serve", "eta@champion", "--feature-service", "ranker"])
    assert result.exit_code == 0, result.output
    with serve_app(started[0]) as client:
        response = client.post("/predict", json={"inputs": [{"driver_id": 2}]})
        assert response.status_code == 200, response.text


def test_an_entity_past_the_ttl_is_refused_naming_the_ttl(tmp_path: Path) -> None:
    _feature_store(tmp_path)
    _train()
    lm.features.materialize(T0.to_pydatetime(), END.to_pydatetime())
    # Driver 6's only activity is three days old: past the view's 2-day TTL.
    stale = pd.DataFrame(
        {"driver_id": [6], "ts": [T0 - pd.Timedelta("2D")], "trips": [3], "rating": [4.0]}
    )
    with open_online_store(None) as store:
        store.write("activity", stale, ["driver_id"], ["trips"], "ts")
        store.write("quality", stale, ["driver_id"], ["rating"], "ts")
    app = create_serving_app("eta@champion", feature_service="ranker")
    with serve_app(app) as client:
        expired = client.post("/predict", json={"inputs": [{"driver_id": 6}]})
        assert expired.status_code == 400, expired.text
        assert expired.json()["field"] == "driver_id"
        assert "driver_id=6" in expired.json()["message"]
        assert "older than the view's TTL (172800 s)" in expired.json()["message"]
        # The quality view has no TTL: only activity expires; fresh drivers still work.
        assert client.post("/predict", json={"inputs": [{"driver_id": 2}]}).status_code == 200


class _SlowStore:
    """An online store whose reads take ``delay`` seconds, as a remote one under load."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def read(self, view: str, keys: list[dict[str, Any]], features: list[str]) -> Any:
        time.sleep(self.delay)
        return self.inner.read(view, keys, features)

    def read_timestamped(self, view: str, keys: list[dict[str, Any]], features: list[str]) -> Any:
        time.sleep(self.delay)
        return self.inner.read_timestamped(view, keys, features)

    def close(self) -> None:
        self.inner.close()


def test_a_hot_swap_waits_for_requests_in_their_feature_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.serving import _features
    from loopml.serving.batcher import MicroBatcher

    _feature_store(tmp_path)
    _train()
    run_id = lm.registry.resolve("eta@champion").run_id
    lm.registry.register(f"runs:/{run_id}/model", "eta")  # version 2, the same model
    lm.features.materialize(T0.to_pydatetime(), END.to_pydatetime())
    monkeypatch.setattr(
        _features, "open_online_store", lambda uri: _SlowStore(open_online_store(uri), 0.5)
    )
    # Per batcher (one per served version): when it started, answered, and began draining.
    started: list[tuple[int, float]] = []
    answered: dict[int, list[float]] = {}
    drained: dict[int, float] = {}
    real_start, real_submit, real_drain = (
        MicroBatcher.start,
        MicroBatcher.submit,
        MicroBatcher.drain,
    )

    async def start(self: MicroBatcher) -> None:
        started.append((id(self), time.monotonic()))
        await real_start(self)

    async def submit(self: MicroBatcher, frame: pd.DataFrame) -> Any:
        result = await real_submit(self, frame)
        answered.setdefault(id(self), []).append(time.monotonic())
        return result

    async def drain(self: MicroBatcher, poll_seconds: float = 0.001) -> None:
        drained.setdefault(id(self), time.monotonic())
        await real_drain(self, poll_seconds)

    monkeypatch.setattr(MicroBatcher, "start", start)
    monkeypatch.setattr(MicroBatcher, "submit", submit)
    monkeypatch.setattr(MicroBatcher, "drain", drain)

    app = create_serving_app("eta@champion", feature_service="ranker", reload_interval=0.05)
    with serve_app(app) as client:
        stop = time.monotonic() + 2.0
        versions: dict[int, list[int]] = {}
        failures: list[str] = []

        def hammer(driver: int) -> None:
            while time.monotonic() < stop:
                response = client.post("/predict", json={"inputs": [{"driver_id": driver}]})
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    versions.setdefault(driver, []).append(response.json()["version"])

        threads = [threading.Thread(target=hammer, args=(d,)) for d in range(1, 6)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # every thread is inside a lookup holding version 1
        lm.registry.set_alias("eta", "champion", 2, reason="hot swap")
        for thread in threads:
            thread.join()

    assert failures == []
    # Each client saw version 1, then version 2, and never went back.
    for seen in versions.values():
        assert seen == sorted(seen) and seen[0] == 1 and seen[-1] == 2, seen
    (old, _), (new, new_started) = started[:2]
    assert old in drained and answered[old]
    # The old model's batcher kept answering requests that chose it before the swap (they
    # were in their slow lookup meanwhile) and started draining only after the last one.
    assert max(answered[old]) > new_started
    assert max(answered[old]) <= drained[old]
    assert min(answered[new]) > new_started
