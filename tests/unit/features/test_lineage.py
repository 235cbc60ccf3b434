"""Lineage: a model version records its feature service and view versions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

import loopml as lm
from conftest import serve_app
from loopml.cli.main import app
from loopml.errors import InvalidInput
from loopml.server.app import create_app


def _views(tmp_path: Path, ttl_hours: int) -> None:
    source = pd.DataFrame(
        {"driver_id": [1, 2], "ts": pd.to_datetime(["2026-01-01", "2026-01-02"]), "r": [1.0, 2.0]}
    )
    source.to_parquet(tmp_path / "s.parquet")
    driver = lm.features.Entity("driver", ["driver_id"])
    view = lm.features.FeatureView(
        "stats",
        [driver],
        source=str(tmp_path / "s.parquet"),
        timestamp_field="ts",
        features=[lm.features.Field("r")],
        ttl=pd.Timedelta(hours=ttl_hours).to_pytimedelta(),
    )
    lm.features.apply([driver, view, lm.features.FeatureService("ranker", ["stats:r"])])


def test_a_registered_version_records_the_service_and_view_versions(tmp_path: Path) -> None:
    _views(tmp_path, 24)
    _views(tmp_path, 48)  # a changed view: version 2
    assert lm.features.lineage_tags("ranker") == {
        "features.service": "ranker v1",
        "features.views": "stats v2",
    }
    frame = pd.DataFrame({"stats__r": [1.0, 2.0, 3.0]})
    with lm.start_run():
        info = lm.log_model(LinearRegression().fit(frame, [1, 2, 3]), "model")
    version = lm.registry.register(info.uri, "eta", tags=lm.features.lineage_tags("ranker"))
    assert version.tags["features.views"] == "stats v2"
    result = CliRunner().invoke(app, ["models", "show", "eta/1"])
    assert result.exit_code == 0, result.output
    assert "ranker v1: stats v2" in result.output


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        lm.features.lineage_tags("nope")
    assert caught.value.field == "service"


def _entities() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "driver_id": [1, 2, 1],
            "event_timestamp": pd.to_datetime(["2026-01-02", "2026-01-02", "2026-01-03"]),
            "y": [1.0, 2.0, 3.0],
        }
    )


def test_a_model_trained_in_a_run_records_its_features_without_being_asked(
    tmp_path: Path,
) -> None:
    _views(tmp_path, 24)
    _views(tmp_path, 48)
    with lm.start_run() as run:
        training = lm.features.get_historical_features(_entities(), "ranker")
        # A second training set from the same views is recorded once.
        lm.features.get_historical_features(_entities(), ["stats:r"])
        X = training[["stats__r"]].fillna(0)
        info = lm.log_model(LinearRegression().fit(X, training["y"]), "model")
    assert lm.get_run(run.run_id).tags["features.views"] == "stats v2"
    version = lm.registry.register(info.uri, "eta")
    assert version.tags == {"features.service": "ranker v1", "features.views": "stats v2"}

    shown = CliRunner().invoke(app, ["models", "show", "eta/1"])
    assert shown.exit_code == 0, shown.output
    assert "ranker v1: stats v2" in shown.output
    with serve_app(create_app()) as client:
        response = client.get("/api/v1/models/eta/versions/1")
    assert response.status_code == 200, response.text
    assert response.json()["tags"]["features.service"] == "ranker v1"
    assert response.json()["tags"]["features.views"] == "stats v2"


def test_explicit_tags_win_and_references_record_only_views(tmp_path: Path) -> None:
    _views(tmp_path, 24)
    with lm.start_run() as run:
        training = lm.features.get_historical_features(_entities(), ["stats"])
        info = lm.log_model(LinearRegression().fit(training[["y"]], training["y"]), "model")
    assert "features.service" not in lm.get_run(run.run_id).tags
    assert lm.registry.register(info.uri, "a").tags == {"features.views": "stats v1"}
    explicit = {"features.service": "other v3", "team": "eta"}
    assert lm.registry.register(info.uri, "b", tags=explicit).tags == explicit


def test_a_service_object_is_recorded_only_as_an_applied_version(tmp_path: Path) -> None:
    _views(tmp_path, 24)
    changed = lm.features.FeatureService("ranker", ["stats"])  # differs from the applied one
    with lm.start_run() as run:
        lm.features.get_historical_features(_entities(), changed)
        assert "features.service" not in lm.get_run(run.run_id).tags
        lm.features.get_historical_features(
            _entities(), lm.features.FeatureService("ranker", ["stats:r"])
        )
    tags = lm.get_run(run.run_id).tags
    assert tags["features.service"] == "ranker v1"
    assert tags["features.views"] == "stats v1"


def test_outside_a_run_nothing_is_recorded(tmp_path: Path) -> None:
    _views(tmp_path, 24)
    lm.features.get_historical_features(_entities(), "ranker")
    assert lm.search_runs().empty
