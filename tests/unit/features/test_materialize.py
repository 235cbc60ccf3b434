"""Materialization: online lookups equal the latest offline values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopml as lm
from loopml.errors import InvalidInput
from loopml.features.online import open_online_store

T0 = pd.Timestamp("2026-01-01")


def _apply(tmp_path: Path, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = 300
    source = pd.DataFrame(
        {
            "driver_id": rng.integers(0, 20, rows),
            "ts": T0 + pd.to_timedelta(rng.integers(0, 100, rows), unit="h"),
            "value": rng.normal(size=rows).round(6),
            "count": rng.integers(0, 1000, rows),
        }
    )
    source.to_parquet(tmp_path / "s.parquet")
    lm.features.apply(
        [
            lm.features.FeatureView(
                "stats",
                [lm.features.Entity("driver", ["driver_id"])],
                source=str(tmp_path / "s.parquet"),
                timestamp_field="ts",
                features=[lm.features.Field("value"), lm.features.Field("count", "int64")],
            )
        ]
    )
    return source


@pytest.mark.parametrize("seed", [0, 1])
def test_online_values_equal_the_latest_offline_values(tmp_path: Path, seed: int) -> None:
    source = _apply(tmp_path, seed)
    end = T0 + pd.Timedelta("60h")
    changed = lm.features.materialize(T0.to_pydatetime(), end.to_pydatetime(), chunk_rows=7)
    drivers = sorted(source.driver_id.unique())
    assert changed == {"stats": source[source.ts < end].driver_id.nunique()}
    # Offline, just before `end`: what a training set built at that instant would see.
    entities = pd.DataFrame(
        {"driver_id": drivers, "event_timestamp": [end - pd.Timedelta("1us")] * len(drivers)}
    )
    offline = lm.features.get_historical_features(entities, ["stats"])
    store = open_online_store(None)
    try:
        online = store.read("stats", [{"driver_id": int(d)} for d in drivers], ["value", "count"])
    finally:
        store.close()
    for (_, row), values in zip(offline.iterrows(), online, strict=True):
        if pd.isna(row["stats__value"]):
            assert values is None
        else:
            assert values == {"value": row["stats__value"], "count": int(row["stats__count"])}
    # Running it again changes nothing.
    assert lm.features.materialize(T0.to_pydatetime(), end.to_pydatetime()) == {"stats": 0}


def test_bad_windows_are_refused(tmp_path: Path) -> None:
    _apply(tmp_path, 0)
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput) as caught:
        lm.features.materialize(now, now - timedelta(hours=1))
    assert caught.value.field == "start"
    with pytest.raises(InvalidInput) as caught:
        lm.features.materialize("2026-01-01", now)  # type: ignore[arg-type]
    assert caught.value.field == "start"
