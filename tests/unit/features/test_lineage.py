"""Lineage: a model version records its feature service and view versions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

import loopml as lm
from loopml.cli.main import app
from loopml.errors import InvalidInput


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
