"""One conformance suite for the SQLite and Redis online stores."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import redis

from conftest import free_port, service_missing
from loopml.errors import InvalidInput, StoreUnavailable
from loopml.features import online
from loopml.features.online import (
    OnlineStore,
    RedisOnlineStore,
    SqliteOnlineStore,
    materialize_frame,
    open_online_store,
)

REDIS = "redis://127.0.0.1:6379/0"
KEYS = ["driver_id"]
FEATURES = ["trips", "rating"]


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[OnlineStore]:
    opened: OnlineStore
    if request.param == "sqlite":
        opened = open_online_store(None)
    else:
        try:
            opened = RedisOnlineStore(REDIS, timeout=2)
        except StoreUnavailable:
            service_missing("Redis at 127.0.0.1:6379 is not reachable")
    yield opened
    opened.close()


@pytest.fixture
def view(store: OnlineStore) -> Iterator[str]:
    name = f"test_view_{uuid.uuid4().hex[:12]}"
    yield name
    store.delete_view(name)


def _rows(*rows: tuple[Any, ...], columns: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns or ["driver_id", "trips", "rating", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def _write(store: OnlineStore, view: str, frame: pd.DataFrame) -> int:
    return store.write(view, frame, KEYS, FEATURES, "ts")


def test_write_then_read_round_trips(store: OnlineStore, view: str) -> None:
    frame = _rows((1, 10, 4.5, "2024-01-01"), (2, 20, 3.0, "2024-01-02"))
    assert _write(store, view, frame) == 2
    assert store.read(view, [{"driver_id": 2}, {"driver_id": 1}], FEATURES) == [
        {"trips": 20, "rating": 3.0},
        {"trips": 10, "rating": 4.5},
    ]
    assert store.read(view, [{"driver_id": 1}], ["rating"]) == [{"rating": 4.5}]
    assert store.read(view, [{"driver_id": 1}], []) == [{"trips": 10, "rating": 4.5}]


def test_latest_row_wins_whatever_the_write_order(store: OnlineStore, view: str) -> None:
    old = _rows((1, 1, 1.0, "2024-01-01"))
    new = _rows((1, 2, 2.0, "2024-02-01"))
    same_time = _rows((1, 3, 3.0, "2024-02-01"))
    _write(store, view, new)
    assert _write(store, view, old) == 0
    assert store.read(view, [{"driver_id": 1}], FEATURES) == [{"trips": 2, "rating": 2.0}]
    _write(store, view, same_time)
    winner = store.read(view, [{"driver_id": 1}], FEATURES)

    other = f"{view}_reversed"
    try:
        for frame in (same_time, old, new):
            _write(store, other, frame)
        assert store.read(other, [{"driver_id": 1}], FEATURES) == winner
        # Rows of one call reduce the same way: the latest per key, ties decided by value.
        mixed = f"{view}_mixed"
        _write(store, mixed, pd.concat([new, old, same_time], ignore_index=True))
        assert store.read(mixed, [{"driver_id": 1}], FEATURES) == winner
        store.delete_view(mixed)
    finally:
        store.delete_view(other)


def test_missing_keys_read_as_none(store: OnlineStore, view: str) -> None:
    _write(store, view, _rows((1, 10, 4.5, "2024-01-01")))
    assert store.read(view, [{"driver_id": 9}, {"driver_id": 1}], FEATURES) == [
        None,
        {"trips": 10, "rating": 4.5},
    ]
    assert store.read(f"{view}_none", [{"driver_id": 1}], FEATURES) == [None]
    assert store.read(view, [], FEATURES) == []


def test_multiple_join_keys(store: OnlineStore, view: str) -> None:
    frame = pd.DataFrame(
        {
            "city": ["paris", "paris", "oslo"],
            "driver_id": [1, 2, 1],
            "trips": [10, 20, 30],
            "ts": pd.to_datetime(["2024-01-01"] * 3),
        }
    )
    assert store.write(view, frame, ["driver_id", "city"], ["trips"], "ts") == 3
    keys = [
        {"city": "oslo", "driver_id": 1},
        {"driver_id": 2, "city": "paris"},
        {"driver_id": 2, "city": "oslo"},
    ]
    assert store.read(view, keys, ["trips"]) == [{"trips": 30}, {"trips": 20}, None]


def test_rewriting_the_same_rows_changes_nothing(store: OnlineStore, view: str) -> None:
    frame = _rows((1, 10, 4.5, "2024-01-01"), (2, 20, 3.0, "2024-01-02"))
    assert _write(store, view, frame) == 2
    assert _write(store, view, frame) == 0
    assert _write(store, view, frame.iloc[::-1]) == 0
    assert store.read(view, [{"driver_id": 1}], ["trips"]) == [{"trips": 10}]


def test_values_keep_their_types(store: OnlineStore, view: str) -> None:
    frame = pd.DataFrame(
        {
            "driver_id": ["a", "b"],
            "count": [3, 4],
            "score": [0.25, float("nan")],
            "name": ["x", None],
            "active": [True, False],
            "seen": pd.to_datetime(["2024-03-01T12:30:00Z", None], utc=True),
            "small": pd.array([7, None], dtype="Int64"),
            "ts": pd.to_datetime(["2024-01-01", "2024-01-01"]),
        }
    )
    features = ["count", "score", "name", "active", "seen", "small"]
    store.write(view, frame, ["driver_id"], features, "ts")
    first, second = store.read(view, [{"driver_id": "a"}, {"driver_id": "b"}], features)
    assert first == {
        "count": 3,
        "score": 0.25,
        "name": "x",
        "active": True,
        "seen": "2024-03-01T12:30:00+00:00",
        "small": 7,
    }
    assert first is not None and type(first["count"]) is int and type(first["active"]) is bool
    assert second == {
        "count": 4,
        "score": None,
        "name": None,
        "active": False,
        "seen": None,
        "small": None,
    }


def test_integral_float_and_int_keys_are_one_entity(store: OnlineStore, view: str) -> None:
    _write(store, view, _rows((1, 10, 4.5, "2024-01-01")))
    assert store.read(view, [{"driver_id": 1.0}], ["trips"]) == [{"trips": 10}]


def test_delete_view_removes_only_that_view(store: OnlineStore, view: str) -> None:
    other = f"{view}_kept"
    _write(store, view, _rows((1, 10, 4.5, "2024-01-01")))
    _write(store, other, _rows((1, 11, 4.0, "2024-01-01")))
    store.delete_view(view)
    assert store.read(view, [{"driver_id": 1}], ["trips"]) == [None]
    assert store.read(other, [{"driver_id": 1}], ["trips"]) == [{"trips": 11}]
    store.delete_view(other)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda f: f.drop(columns=["ts"]), "ts"),
        (lambda f: f.drop(columns=["driver_id"]), "driver_id"),
        (lambda f: f.assign(ts=[None]), "ts"),
        (lambda f: f.assign(ts=[1_700_000_000]), "ts"),
        (lambda f: f.assign(driver_id=[None]), "driver_id"),
        (lambda f: f.assign(trips=[object()]), "trips"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_written(
    store: OnlineStore, view: str, change: Any, field: str
) -> None:
    frame = change(_rows((1, 10, 4.5, "2024-01-01")))
    with pytest.raises(InvalidInput) as caught:
        _write(store, view, frame)
    assert caught.value.field == field
    assert store.read(view, [{"driver_id": 1}], ["trips"]) == [None]


def test_materialize_frame_writes_in_chunks(store: OnlineStore, view: str) -> None:
    frame = pd.DataFrame(
        {
            "driver_id": list(range(250)) * 2,
            "trips": list(range(500)),
            "rating": [1.0] * 500,
            "ts": pd.to_datetime([0] * 250 + [1] * 250, unit="D"),
        }
    )
    calls: list[int] = []
    real_write = store.write

    def counting(*args: Any) -> int:
        calls.append(len(args[1]))
        return real_write(*args)

    store.write = counting  # type: ignore[method-assign]
    written = materialize_frame(store, view, frame, KEYS, FEATURES, "ts", chunk_rows=100)
    assert calls == [100] * 5
    assert written == 500  # every chunk of the second day replaces the first
    assert store.read(view, [{"driver_id": 7}], ["trips"]) == [{"trips": 257}]
    assert materialize_frame(store, view, iter([frame]), KEYS, FEATURES, "ts", progress=False) == 0
    with pytest.raises(InvalidInput):
        materialize_frame(store, view, frame, KEYS, FEATURES, "ts", chunk_rows=0)


def test_open_online_store_picks_the_backend_by_scheme(tmp_path: Any) -> None:
    default = open_online_store(None)
    assert isinstance(default, SqliteOnlineStore)
    assert default.path.name == "online_store.db"
    default.close()
    absolute = open_online_store(f"sqlite:///{tmp_path / 'own.db'}")
    assert isinstance(absolute, SqliteOnlineStore) and absolute.path == tmp_path / "own.db"
    absolute.close()
    with pytest.raises(InvalidInput, match="unknown online store"):
        open_online_store("memcached://127.0.0.1:11211")


def test_a_redis_that_is_down_fails_fast_naming_the_url() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/3"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        open_online_store(url)
    assert time.monotonic() - started < 5
    assert f"redis://127.0.0.1:{url.rsplit(':', 1)[1]}" in caught.value.message
    assert "secret" not in caught.value.message


def test_a_redis_lookup_of_100_entities_is_one_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        store = RedisOnlineStore(REDIS, timeout=2)
    except StoreUnavailable:
        service_missing("Redis at 127.0.0.1:6379 is not reachable")
    view = f"test_view_{uuid.uuid4().hex[:12]}"
    try:
        frame = pd.DataFrame(
            {
                "driver_id": range(100),
                "trips": range(100),
                "rating": [0.5] * 100,
                "ts": pd.to_datetime(["2024-01-01"] * 100),
            }
        )
        _write(store, view, frame)
        sends: list[int] = []
        real_send = redis.connection.Connection.send_packed_command

        def counting(self: Any, command: Any, check_health: bool = True) -> None:
            sends.append(1)
            real_send(self, command, check_health)

        monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
        rows = store.read(view, [{"driver_id": i} for i in range(100)], FEATURES)
        assert len(sends) == 1
        assert rows[42] == {"trips": 42, "rating": 0.5}
    finally:
        monkeypatch.undo()
        store.delete_view(view)
        store.close()


def test_naive_and_text_event_times_are_utc(store: OnlineStore, view: str) -> None:
    naive = pd.DataFrame(
        {"driver_id": [1], "trips": [1], "rating": [1.0], "ts": [pd.Timestamp("2024-01-01 12:00")]}
    )
    text = naive.assign(trips=[2], ts=["2024-01-01T13:00:00+02:00"])
    _write(store, view, naive)
    assert _write(store, view, text) == 0  # 11:00 UTC is older than 12:00 UTC
    assert _write(store, view, text.assign(ts=["2024-01-01T12:00:01Z"])) == 1
    assert store.read(view, [{"driver_id": 1}], ["trips"]) == [{"trips": 2}]


def test_redis_reads_several_views_in_one_round_trip_and_reloads_a_lost_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A script text the server has never seen stands for one it lost (a restart, a flush).
    monkeypatch.setattr(online, "_READ_LUA", online._READ_LUA + f"-- {uuid.uuid4().hex}\n")
    try:
        store = RedisOnlineStore(REDIS, timeout=2)
    except StoreUnavailable:
        service_missing("Redis at 127.0.0.1:6379 is not reachable")
    views = [f"test_view_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    frame = pd.DataFrame(
        {
            "driver_id": range(3),
            "trips": [10, 11, 12],
            "rating": [0.5, 0.25, 0.125],
            "ts": pd.to_datetime(["2024-01-01"] * 3),
        }
    )
    try:
        for view in views:
            _write(store, view, frame)
        keys = [{"driver_id": 2}, {"driver_id": 7}]
        reads = [(views[0], keys, ["trips"]), (views[1], keys, FEATURES)]
        first = store.read_timestamped_views(reads)
        sends: list[int] = []
        real_send = redis.connection.Connection.send_packed_command

        def counting(self: Any, command: Any, check_health: bool = True) -> None:
            sends.append(1)
            real_send(self, command, check_health)

        monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
        again = store.read_timestamped_views(reads)
        assert len(sends) == 1
        assert again == first
        assert [None if row is None else row[0] for row in first[0]] == [{"trips": 12}, None]
        assert [None if row is None else row[0] for row in first[1]] == [
            {"trips": 12, "rating": 0.125},
            None,
        ]
        assert first[1][0] is not None and first[1][0][1] == pd.Timestamp("2024-01-01", tz="UTC")
    finally:
        monkeypatch.undo()
        for view in views:
            store.delete_view(view)
        store.close()
