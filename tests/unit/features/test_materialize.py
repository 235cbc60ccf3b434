"""Materialization: online lookups equal the latest offline values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml as lm
from loopml.errors import InvalidInput, StoreUnavailable
from loopml.features.online import SqliteOnlineStore, open_online_store

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


class _Crashing(SqliteOnlineStore):
    """The default SQLite online store, whose write fails after some calls."""

    def __init__(self, path: Path, fail_after: int) -> None:
        super().__init__(path)
        self.fail_after = fail_after
        self.writes = 0

    def write(self, *args: Any, **kwargs: Any) -> int:
        if self.writes >= self.fail_after:
            raise StoreUnavailable("simulated crash")
        self.writes += 1
        return super().write(*args, **kwargs)


def _online(drivers: list[int]) -> list[dict[str, Any] | None]:
    store = open_online_store(None)
    try:
        return store.read("stats", [{"driver_id": d} for d in drivers], ["value", "count"])
    finally:
        store.close()


def test_incremental_runs_resume_after_a_crash_and_rerun_writes_nothing(tmp_path: Path) -> None:
    source = _apply(tmp_path, 2)
    drivers = [int(d) for d in sorted(source.driver_id.unique())]
    end = (T0 + pd.Timedelta("100h")).to_pydatetime()
    chunk = timedelta(hours=10)
    path = lm.config.load_settings().home / "online_store.db"
    crashing = _Crashing(path, fail_after=3)
    with pytest.raises(StoreUnavailable):
        lm.features.materialize_incremental(end, online_store=crashing, chunk=chunk)
    crashing.close()
    # Three 10-hour windows were written and committed; the fourth never was.
    assert lm.features.watermark("stats") == T0 + pd.Timedelta("30h")
    partial = _online(drivers)
    seen = source[source.ts < T0 + pd.Timedelta("30h")]
    assert sum(v is not None for v in partial) == seen.driver_id.nunique()

    first = lm.features.materialize_incremental(end, chunk=chunk)
    assert first["stats"] > 0
    assert lm.features.watermark("stats") == end
    reference = tmp_path / "reference.db"
    lm.features.materialize(T0.to_pydatetime(), end, online_store=f"sqlite:///{reference}")
    with SqliteOnlineStore(reference) as full:
        expected = full.read("stats", [{"driver_id": d} for d in drivers], ["value", "count"])
    assert _online(drivers) == expected
    # Same end again: nothing left to do, nothing written.
    assert lm.features.materialize_incremental(end, chunk=chunk) == {"stats": 0}


def test_incremental_runs_pick_up_where_the_last_one_stopped(tmp_path: Path) -> None:
    source = _apply(tmp_path, 3)
    middle = (T0 + pd.Timedelta("50h")).to_pydatetime()
    end = (T0 + pd.Timedelta("100h")).to_pydatetime()
    assert lm.features.watermark("stats") is None
    lm.features.materialize_incremental(middle)
    assert lm.features.watermark("stats") == middle
    second = lm.features.materialize_incremental(end, chunk=timedelta(days=30))
    # One window; only entities with a newer row after `middle` change.
    late = source[(source.ts >= middle) & (source.ts < end)]
    assert second == {"stats": late.driver_id.nunique()}


def test_incremental_refuses_a_bad_chunk(tmp_path: Path) -> None:
    _apply(tmp_path, 0)
    with pytest.raises(InvalidInput) as caught:
        lm.features.materialize_incremental(datetime(2026, 1, 2), chunk=timedelta(0))
    assert caught.value.field == "chunk"
