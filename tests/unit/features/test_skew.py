"""Skew check: served (logged) feature values against point-in-time offline recomputation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import loopml as lm
from conftest import serve_app
from loopml.errors import InvalidInput
from loopml.features.online import open_online_store
from loopml.serving import create_serving_app

T0 = pd.Timestamp("2026-01-01")
END = T0 + pd.Timedelta("1D")
FEATURES = ["activity__trips", "quality__rating"]


def _setup(tmp_path: Path) -> None:
    """Drivers 1-5 in two views and a service; a model on them registered as eta@champion."""
    rng = np.random.default_rng(0)
    trips = pd.DataFrame(
        {
            "driver_id": np.repeat(np.arange(1, 6), 10),
            "ts": T0 + pd.to_timedelta(np.tile(np.arange(10), 5), unit="h"),
            "trips": rng.integers(0, 20, 50),
        }
    )
    ratings = pd.DataFrame(
        {"driver_id": np.arange(1, 6), "day": [T0] * 5, "rating": rng.uniform(3, 5, 5)}
    )
    trips.to_parquet(tmp_path / "trips.parquet")
    ratings.to_parquet(tmp_path / "ratings.parquet")
    driver = lm.features.Entity("driver", ["driver_id"])
    views = [
        lm.features.FeatureView(
            name,
            [driver],
            source=str(tmp_path / f"{source}.parquet"),
            timestamp_field=ts,
            features=[lm.features.Field(feature, dtype)],
        )
        for name, source, ts, feature, dtype in [
            ("activity", "trips", "ts", "trips", "int64"),
            ("quality", "ratings", "day", "rating", "float64"),
        ]
    ]
    lm.features.apply([driver, *views, lm.features.FeatureService("ranker", views)])
    entities = pd.DataFrame({"driver_id": [1, 2, 3, 4, 5] * 4, "event_timestamp": [END] * 20})
    X = lm.features.get_historical_features(entities, "ranker")[FEATURES]
    with lm.start_run():
        info = lm.log_model(
            LinearRegression().fit(X, np.arange(20.0)), "model", input_example=X.head()
        )
    lm.registry.register(info.uri, "eta")
    lm.registry.set_alias("eta", "champion", 1, reason="first")
    lm.features.materialize(T0.to_pydatetime(), END.to_pydatetime())


def _serve(drivers: list[int]) -> pd.DataFrame:
    app = create_serving_app("eta@champion", feature_service="ranker", log_predictions=True)
    with serve_app(app) as client:
        for driver in drivers:
            response = client.post("/predict", json={"inputs": [{"driver_id": driver}]})
            assert response.status_code == 200, response.text
    return lm.monitoring.predictions("eta")


def test_no_skew_after_a_clean_materialization(tmp_path: Path) -> None:
    _setup(tmp_path)
    report = lm.features.check_skew(_serve([1, 2, 3, 4, 5]), "ranker")
    assert report.rows == 5
    assert report.mismatches == 0
    assert report.to_frame()["compared"].tolist() == [5, 5]
    assert report.examples.empty


def test_an_online_value_written_by_hand_is_reported(tmp_path: Path) -> None:
    _setup(tmp_path)
    store = open_online_store(None)
    try:
        # Newer than anything materialized, and in no source: the online store now disagrees.
        row = pd.DataFrame({"driver_id": [2], "ts": [T0 + pd.Timedelta("20h")], "trips": [999]})
        assert store.write("activity", row, ["driver_id"], ["trips"], "ts") == 1
    finally:
        store.close()
    logged = _serve([1, 2, 3, 2, 4])
    report = lm.features.check_skew(logged, "ranker")
    summary = report.to_frame().set_index("feature")
    assert summary.loc["activity__trips", "mismatches"] == 2
    assert summary.loc["activity__trips", "rate"] == pytest.approx(0.4)
    assert summary.loc["quality__rating", "mismatches"] == 0
    assert report.examples["driver_id"].tolist() == [2, 2]
    assert report.examples["served"].tolist() == [999, 999]
    assert report.examples["offline"].tolist() != [999, 999]
    # A sample smaller than the log compares only that many rows.
    assert lm.features.check_skew(logged, "ranker", sample=3).rows == 3


def test_bad_input_is_refused(tmp_path: Path) -> None:
    _setup(tmp_path)
    logged = pd.DataFrame({"driver_id": [1], "timestamp": [pd.Timestamp("2026-01-02", tz="UTC")]})
    with pytest.raises(InvalidInput) as caught:
        lm.features.check_skew(logged.drop(columns="driver_id"), "ranker")
    assert caught.value.field == "driver_id"
    with pytest.raises(InvalidInput) as caught:
        lm.features.check_skew(logged, "ranker")
    assert caught.value.field == "features"
    with pytest.raises(InvalidInput) as caught:
        lm.features.check_skew(logged.assign(activity__trips=[1]), "ranker", sample=0)
    assert caught.value.field == "sample"
