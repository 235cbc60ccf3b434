"""Online lookup: after materialization it returns the latest offline values."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopml as lm
from conftest import free_port, service_missing
from loopml.errors import InvalidInput, StoreUnavailable
from loopml.features.online import RedisOnlineStore

T0 = pd.Timestamp("2026-01-01")
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", "redis"])
def online_store(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    try:
        RedisOnlineStore(REDIS, timeout=2).close()
    except StoreUnavailable:
        service_missing("Redis at 127.0.0.1:6379 is not reachable")
    return REDIS


@pytest.fixture
def view(online_store: str | None) -> Iterator[str]:
    # A fresh name per test: the Redis database is shared.
    name = f"stats_{uuid.uuid4().hex[:12]}"
    yield name
    if online_store is not None:
        with RedisOnlineStore(online_store) as store:
            store.delete_view(name)


def _apply(tmp_path: Path, view: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = 400
    source = pd.DataFrame(
        {
            "driver_id": rng.integers(0, 30, rows),
            "ts": T0 + pd.to_timedelta(rng.integers(0, 200, rows), unit="h"),
            "rating": rng.normal(size=rows).round(6),
            "trips": rng.integers(0, 1000, rows),
        }
    )
    source.to_parquet(tmp_path / "s.parquet")
    lm.features.apply(
        [
            lm.features.FeatureView(
                view,
                [lm.features.Entity("driver", ["driver_id"])],
                source=str(tmp_path / "s.parquet"),
                timestamp_field="ts",
                features=[lm.features.Field("rating"), lm.features.Field("trips", "int64")],
            ),
            lm.features.FeatureService("ranker", [view]),
        ]
    )
    return source


def test_online_lookup_equals_the_latest_offline_values(
    tmp_path: Path, online_store: str | None, view: str
) -> None:
    source = _apply(tmp_path, view)
    end = T0 + pd.Timedelta("300h")
    lm.features.materialize_incremental(end.to_pydatetime(), online_store=online_store)
    drivers = sorted(int(d) for d in source.driver_id.unique())
    # Two entities never seen: their features come back null.
    entities = pd.DataFrame({"driver_id": [*drivers, 998, 999]})
    online = lm.features.get_online_features(entities, "ranker", online_store=online_store)
    offline = lm.features.get_historical_features(
        entities.assign(event_timestamp=end), [view]
    ).drop(columns="event_timestamp")
    assert list(online.columns) == ["driver_id", f"{view}__rating", f"{view}__trips"]
    assert online[f"{view}__rating"].tolist()[:-2] == offline[f"{view}__rating"].tolist()[:-2]
    assert online[f"{view}__trips"].tolist()[:-2] == offline[f"{view}__trips"].tolist()[:-2]
    assert online.iloc[-2:, 1:].isna().all().all()


def test_lookup_takes_a_list_of_dicts_and_single_features(
    tmp_path: Path, online_store: str | None, view: str
) -> None:
    source = _apply(tmp_path, view, seed=1)
    end = T0 + pd.Timedelta("300h")
    lm.features.materialize(T0.to_pydatetime(), end.to_pydatetime(), online_store=online_store)
    last = source.sort_values("ts", kind="stable").groupby("driver_id").tail(1)
    driver = int(last.driver_id.iloc[0])
    expected = int(last.trips.iloc[0])
    found = lm.features.get_online_features(
        [{"driver_id": driver}], [f"{view}:trips"], online_store=online_store
    )
    assert found.to_dict("records") == [{"driver_id": driver, f"{view}__trips": expected}]


def test_as_dict_returns_the_same_columns_as_plain_lists(
    tmp_path: Path, online_store: str | None, view: str
) -> None:
    source = _apply(tmp_path, view, seed=2)
    end = T0 + pd.Timedelta("300h")
    lm.features.materialize(T0.to_pydatetime(), end.to_pydatetime(), online_store=online_store)
    drivers = [int(d) for d in source.driver_id.unique()[:3]]
    rows = [{"driver_id": d} for d in [*drivers, 999]]
    frame = lm.features.get_online_features(rows, "ranker", online_store=online_store)
    plain = lm.features.get_online_features(rows, "ranker", online_store=online_store, as_dict=True)
    assert list(plain) == list(frame.columns)
    assert plain["driver_id"] == [*drivers, 999]
    assert plain[f"{view}__trips"][:3] == frame[f"{view}__trips"].tolist()[:3]
    assert all(type(v) is int for v in plain[f"{view}__trips"][:3])
    assert plain[f"{view}__rating"][:3] == frame[f"{view}__rating"].tolist()[:3]
    assert plain[f"{view}__trips"][3] is None and plain[f"{view}__rating"][3] is None
    from_frame = lm.features.get_online_features(
        pd.DataFrame(rows), "ranker", online_store=online_store, as_dict=True
    )
    assert from_frame == plain


def test_bad_lookups_are_refused(tmp_path: Path) -> None:
    _apply(tmp_path, "stats")
    with pytest.raises(InvalidInput) as caught:
        lm.features.get_online_features([{"driver_id": 1}], ["stats:nope"])
    assert caught.value.field == "features"
    with pytest.raises(InvalidInput) as caught:
        lm.features.get_online_features([{"rider_id": 1}], ["stats"])
    assert caught.value.field == "driver_id"
    with pytest.raises(InvalidInput) as caught:
        lm.features.get_online_features("driver 1", ["stats"])  # type: ignore[arg-type]
    assert caught.value.field == "entity_rows"


def test_the_online_store_setting_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _apply(tmp_path, "stats")
    monkeypatch.setenv("LOOPML_ONLINE_STORE", f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable):
        lm.features.get_online_features([{"driver_id": 1}], ["stats"])
    monkeypatch.setenv("LOOPML_ONLINE_STORE", f"sqlite:///{tmp_path / 'other.db'}")
    lm.features.materialize_incremental((T0 + pd.Timedelta("300h")).to_pydatetime())
    assert (tmp_path / "other.db").exists()
    assert lm.features.get_online_features([{"driver_id": 1}], ["stats"]).shape == (1, 3)


def test_values_older_than_the_ttl_read_as_null(
    tmp_path: Path, online_store: str | None, view: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from loopml.features.online import open_online_store
    from loopml.features.online_lookup import read_view

    now = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
    source = pd.DataFrame(
        {
            # Driver 1's latest value is 3 h old, driver 2's 30 min: the TTL is 1 h.
            "driver_id": [1, 1, 2],
            "ts": [now - pd.Timedelta("5h"), now - pd.Timedelta("3h"), now - pd.Timedelta("30min")],
            "rating": [0.5, 1.5, 2.5],
        }
    )
    source.to_parquet(tmp_path / "s.parquet")
    lm.features.apply(
        [
            lm.features.FeatureView(
                view,
                [lm.features.Entity("driver", ["driver_id"])],
                source=str(tmp_path / "s.parquet"),
                timestamp_field="ts",
                features=[lm.features.Field("rating")],
                ttl=timedelta(hours=1),
            )
        ]
    )
    lm.features.materialize(
        (now - pd.Timedelta("1D")).to_pydatetime(),
        (now + pd.Timedelta("1min")).to_pydatetime(),
        online_store=online_store,
    )
    rows = [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}]
    online = lm.features.get_online_features(rows, [view], online_store=online_store)
    rating = online[f"{view}__rating"]
    assert rating.isna().tolist() == [True, False, True]
    assert rating[1] == 2.5

    store = open_online_store(online_store)
    try:
        # The stored row is kept: the same row is fresh as of an instant within its TTL.
        stamped = store.read_timestamped(view, rows[:1], ["rating"])[0]
        assert stamped is not None
        assert stamped[0] == {"rating": 1.5}
        assert stamped[1] == (now - pd.Timedelta("3h")).tz_localize(UTC).to_pydatetime()
        earlier = datetime.now(UTC) - timedelta(hours=2, minutes=30)
        then = read_view(store, view, rows, ["rating"], 3600, now=earlier)
        assert then.values == [{"rating": 1.5}, {"rating": 2.5}, None]
        assert then.expired == [False, False, False]
        current = read_view(store, view, rows, ["rating"], 3600)
        assert current.values == [None, {"rating": 2.5}, None]
        assert current.expired == [True, False, False]
        # Without a TTL every value is kept, whatever its age.
        assert read_view(store, view, rows, [], None).values[0] == {"rating": 1.5}
    finally:
        store.close()
