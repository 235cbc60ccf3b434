"""Point-in-time-correct training sets, checked against a brute-force pandas reference."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopml as lm
from loopml.errors import InvalidInput

T0 = pd.Timestamp("2026-01-01")


def _source(rng: np.random.Generator, drivers: int, rows: int, step: str) -> pd.DataFrame:
    # Timestamps on a coarse grid make ties (same driver, same instant) frequent; shuffling
    # puts late rows (older event time) after newer ones in the file.
    ticks = rng.integers(0, 200, rows)
    frame = pd.DataFrame(
        {
            "driver_id": rng.integers(0, drivers, rows),
            "ts": T0 + pd.to_timedelta(ticks * pd.Timedelta(step).value, unit="ns"),
            "value": rng.normal(size=rows).round(6),
            "count": rng.integers(0, 1000, rows),
        }
    )
    return frame.sample(frac=1.0, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)


def _reference(
    entities: pd.DataFrame, source: pd.DataFrame, ttl: timedelta | None, prefix: str
) -> pd.DataFrame:
    """For every entity row: the last file row among the newest rows at or before its time."""
    out = []
    indexed = source.reset_index().rename(columns={"index": "file_row"})
    for _, row in entities.iterrows():
        candidates = indexed[
            (indexed.driver_id == row.driver_id) & (indexed.ts <= row.event_timestamp)
        ]
        if ttl is not None:
            candidates = candidates[candidates.ts >= row.event_timestamp - ttl]
        if candidates.empty:
            out.append({f"{prefix}__value": np.nan, f"{prefix}__count": np.nan})
            continue
        best = candidates.sort_values(["ts", "file_row"]).iloc[-1]
        out.append({f"{prefix}__value": best.value, f"{prefix}__count": float(best["count"])})
    return pd.DataFrame(out)


def _define(path_fast: Path, path_slow: Path, ttl_fast: timedelta | None) -> None:
    driver = lm.features.Entity("driver", ["driver_id"])
    fields = [lm.features.Field("value", "float64"), lm.features.Field("count", "int64")]
    lm.features.apply(
        [
            lm.features.FeatureView(
                "fast",
                [driver],
                source=str(path_fast),
                timestamp_field="ts",
                features=fields,
                ttl=ttl_fast,
            ),
            lm.features.FeatureView(
                "slow", [driver], source=str(path_slow), timestamp_field="ts", features=fields
            ),
        ]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_brute_force_reference(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    fast = _source(rng, drivers=6, rows=400, step="1h")
    slow = _source(rng, drivers=6, rows=60, step="1D")
    fast.to_parquet(tmp_path / "fast.parquet")
    slow.to_parquet(tmp_path / "slow.parquet")
    ttl = timedelta(hours=5)
    _define(tmp_path / "fast.parquet", tmp_path / "slow.parquet", ttl)
    entities = pd.DataFrame(
        {
            "driver_id": rng.integers(0, 7, 150),  # driver 6 has no features at all
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(-10, 220 * 60, 150), unit="min"),
            "label": rng.integers(0, 2, 150),
        }
    )
    # Some entity times exactly on source timestamps: "at or before" includes equality.
    entities.loc[:20, "event_timestamp"] = fast.ts.iloc[:21].to_numpy()
    entities.loc[:20, "driver_id"] = fast.driver_id.iloc[:21].to_numpy()

    result = lm.features.get_historical_features(entities, ["fast", "slow:value", "slow:count"])

    expected = pd.concat(
        [
            entities,
            _reference(entities, fast, ttl, "fast"),
            _reference(entities, slow, None, "slow"),
        ],
        axis=1,
    )
    assert list(result.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        result.astype({c: float for c in expected.columns if "__" in c}),
        expected.astype({c: float for c in expected.columns if "__" in c}),
        check_dtype=False,
    )
    assert result["fast__value"].isna().any()  # TTL expiry happened
    assert result["fast__value"].notna().any()


@pytest.mark.parametrize(
    ("base", "step"),
    [
        # Odd microseconds: the ordering key counts microseconds.
        (T0, pd.Timedelta("1h") + pd.Timedelta("1us")),
        # Nearly three centuries around 1970 at microsecond resolution: too wide a span for
        # a BIGINT key with the row positions, so the key is a HUGEINT; times before 1970
        # are negative.
        (pd.Timestamp("1800-01-01"), pd.Timedelta("500D") + pd.Timedelta("3us")),
    ],
    ids=["microseconds", "centuries"],
)
def test_any_time_resolution_and_span_matches_the_reference(
    tmp_path: Path, base: pd.Timestamp, step: pd.Timedelta
) -> None:
    rng = np.random.default_rng(7)
    ticks = rng.integers(0, 200, 600)
    source = pd.DataFrame(
        {
            "driver_id": rng.integers(0, 4, 600),
            "ts": base + pd.to_timedelta(ticks * step.value, unit="ns"),
            "value": rng.normal(size=600).round(6),
            "count": rng.integers(0, 1000, 600),
        }
    )
    source.to_parquet(tmp_path / "s.parquet")
    ttl = 7 * step.to_pytimedelta()
    _define(tmp_path / "s.parquet", tmp_path / "s.parquet", ttl)
    offsets = rng.integers(-5 * step.value, 205 * step.value, 80)
    entities = pd.DataFrame(
        {
            "driver_id": rng.integers(0, 5, 80),
            "event_timestamp": base + pd.to_timedelta(offsets, unit="ns"),
        }
    )
    # Exactly on source times (ties included), and one microsecond before them.
    entities.loc[:9, "event_timestamp"] = source.ts.iloc[:10].to_numpy()
    entities.loc[:9, "driver_id"] = source.driver_id.iloc[:10].to_numpy()
    entities.loc[10:14, "event_timestamp"] = (source.ts.iloc[:5] - pd.Timedelta("1us")).to_numpy()
    entities.loc[10:14, "driver_id"] = source.driver_id.iloc[:5].to_numpy()

    result = lm.features.get_historical_features(entities, ["fast"])

    expected = _reference(entities, source, ttl, "fast")
    pd.testing.assert_frame_equal(
        result[expected.columns].astype(float), expected.astype(float), check_dtype=False
    )
    assert result["fast__value"].notna().sum() > 20


def test_no_future_leakage(tmp_path: Path) -> None:
    source = pd.DataFrame(
        {
            "driver_id": [1, 1, 1],
            "ts": [T0, T0 + pd.Timedelta("1h"), T0 + pd.Timedelta("2h")],
            "value": [1.0, 2.0, 3.0],
            "count": [1, 2, 3],
        }
    )
    source.to_parquet(tmp_path / "s.parquet")
    _define(tmp_path / "s.parquet", tmp_path / "s.parquet", None)
    entities = pd.DataFrame(
        {
            "driver_id": [1, 1, 1, 1],
            "event_timestamp": [
                T0 - pd.Timedelta("1s"),
                T0 + pd.Timedelta("59min"),
                T0 + pd.Timedelta("1h"),
                T0 + pd.Timedelta("1h59min"),
            ],
        }
    )
    result = lm.features.get_historical_features(entities, ["fast:value"])
    assert result["fast__value"].tolist()[0] != result["fast__value"].tolist()[0]  # NaN
    assert result["fast__value"].tolist()[1:] == [1.0, 2.0, 2.0]


def test_registered_dataset_source_and_register_as(tmp_path: Path) -> None:
    source = pd.DataFrame(
        {"driver_id": [1, 2], "ts": [T0, T0], "value": [0.5, 0.7], "count": [3, 4]}
    )
    lm.datasets.register("driver_stats", source)
    driver = lm.features.Entity("driver", "driver_id")
    view = lm.features.FeatureView(
        "stats",
        [driver],
        source="driver_stats",
        timestamp_field="ts",
        features=[lm.features.Field("value")],
    )
    lm.features.apply([view])
    entities = pd.DataFrame({"driver_id": [2, 1], "event_timestamp": [T0 + pd.Timedelta("1D")] * 2})
    result = lm.features.get_historical_features(
        entities, lm.features.FeatureService("svc", [view]), register_as="training"
    )
    assert result["stats__value"].tolist() == [0.7, 0.5]
    stored = lm.datasets.get_service().resolve("training")
    assert stored.tags["features.views"] == "stats@v1"
    assert stored.tags["features.sources"] == "driver_stats@v1"
    edges = lm.datasets.get_service().store.list_lineage(target=("dataset_version", stored.uri))
    assert ("feature_view", "stats@v1") in {(e.source_kind, e.source_id) for e in edges}


def _simple_view(tmp_path: Path, source: pd.DataFrame) -> None:
    source.to_parquet(tmp_path / "s.parquet")
    lm.features.apply(
        [
            lm.features.FeatureView(
                "v",
                [lm.features.Entity("driver", ["driver_id"])],
                source=str(tmp_path / "s.parquet"),
                timestamp_field="ts",
                features=[lm.features.Field("value")],
            )
        ]
    )


GOOD_SOURCE = pd.DataFrame({"driver_id": [1], "ts": [T0], "value": [1.0]})
GOOD_ENTITIES = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]})


@pytest.mark.parametrize(
    ("entities", "features", "field"),
    [
        (GOOD_ENTITIES.drop(columns="event_timestamp"), ["v:value"], "event_timestamp"),
        (GOOD_ENTITIES.drop(columns="driver_id"), ["v:value"], "driver_id"),
        (GOOD_ENTITIES.assign(event_timestamp="2026"), ["v:value"], "event_timestamp"),
        (GOOD_ENTITIES, ["v:nope"], "features"),
        (GOOD_ENTITIES, ["nope:value"], "features"),
    ],
)
def test_bad_requests_name_the_field(
    tmp_path: Path, entities: pd.DataFrame, features: list[str], field: str
) -> None:
    _simple_view(tmp_path, GOOD_SOURCE)
    with pytest.raises(InvalidInput) as caught:
        lm.features.get_historical_features(entities, features)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "source",
    [
        GOOD_SOURCE.assign(ts=[None]).astype({"ts": "datetime64[ns]"}),
        GOOD_SOURCE.assign(ts=["2026-01-01"]),
    ],
)
def test_bad_source_timestamps_are_refused(tmp_path: Path, source: pd.DataFrame) -> None:
    _simple_view(tmp_path, source)
    with pytest.raises(InvalidInput) as caught:
        lm.features.get_historical_features(GOOD_ENTITIES, ["v:value"])
    assert caught.value.field == "timestamp_field"


def test_custom_timestamp_column_and_tz_aware_times(tmp_path: Path) -> None:
    _simple_view(tmp_path, GOOD_SOURCE)
    entities = pd.DataFrame(
        {
            "driver_id": [1, 1],
            "at": pd.to_datetime([T0, T0 - pd.Timedelta("1s")]).tz_localize("UTC"),
        }
    )
    result = lm.features.get_historical_features(entities, ["v"], timestamp_field="at")
    assert result["v__value"].tolist()[0] == 1.0
    assert result["v__value"].isna().tolist() == [False, True]
