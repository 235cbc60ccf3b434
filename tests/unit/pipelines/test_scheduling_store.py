"""The scheduling store on SQLite and PostgreSQL: CRUD, exactly-once claims, leases, events."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import delete

from loopml.config import load_settings
from loopml.errors import Conflict, NotFound
from loopml.store.scheduling_base import SchedulingStore
from loopml.store.sql.engine import open_engine
from loopml.store.sql.models import (
    EventRow,
    LockRow,
    ScheduleFireRow,
    ScheduleRow,
    TriggerFireRow,
    TriggerRow,
)
from loopml.store.sql.scheduling import SqlSchedulingStore

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def wipe(uri: str) -> None:
    """Empty the scheduling tables (the PostgreSQL database is shared by the session)."""
    with open_engine(uri).write.begin() as conn:
        for model in (TriggerFireRow, ScheduleFireRow, EventRow, TriggerRow, ScheduleRow, LockRow):
            conn.execute(delete(model))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[SqlSchedulingStore]:
    if request.param == "sqlite":
        uri = load_settings().resolved_store_uri
    else:
        uri = request.getfixturevalue("pg_uri")
    wipe(uri)
    yield SqlSchedulingStore(uri)
    wipe(uri)


def test_implements_the_protocol(store: SqlSchedulingStore) -> None:
    assert isinstance(store, SchedulingStore)


def test_schedule_crud(store: SqlSchedulingStore) -> None:
    created = store.create_schedule("nightly", "flows:train", "0 3 * * *", {"lr": 0.1}, False)
    assert (created.name, created.cron, created.params, created.enabled) == (
        "nightly",
        "0 3 * * *",
        {"lr": 0.1},
        True,
    )
    assert created.last_fire_time is None and not created.catchup
    store.create_schedule("alpha", "flows:eval", "@hourly", {}, True, created_time=T0)
    assert [s.name for s in store.list_schedules()] == ["alpha", "nightly"]
    assert store.get_schedule("alpha").created_time == T0
    with pytest.raises(Conflict, match="nightly"):
        store.create_schedule("nightly", "flows:other", "* * * * *", {}, False)
    assert not store.set_schedule_enabled("nightly", False).enabled
    assert store.set_schedule_enabled("nightly", True).enabled
    store.delete_schedule("nightly")
    with pytest.raises(NotFound, match="nightly"):
        store.get_schedule("nightly")
    with pytest.raises(NotFound):
        store.delete_schedule("nightly")
    with pytest.raises(NotFound):
        store.set_schedule_enabled("nightly", True)


def test_schedule_claims_are_exactly_once_and_move_forward(store: SqlSchedulingStore) -> None:
    schedule = store.create_schedule("s", "flows:train", "* * * * *", {}, False, created_time=T0)
    assert store.claim_schedule_fire(schedule.id, T0 + 60_000, "a")
    assert not store.claim_schedule_fire(schedule.id, T0 + 60_000, "b")
    # An earlier time than the last fired one is never fired afterwards.
    assert not store.claim_schedule_fire(schedule.id, T0 + 30_000, "b")
    assert store.get_schedule("s").last_fire_time == T0 + 60_000
    store.set_schedule_fire_run(schedule.id, T0 + 60_000, "run1")
    assert store.claim_schedule_fire(schedule.id, T0 + 120_000, "b")
    fires = store.list_schedule_fires(schedule.id)
    assert [(f["fire_time"], f["owner"], f["pipeline_run_id"]) for f in fires] == [
        (T0 + 120_000, "b", None),
        (T0 + 60_000, "a", "run1"),
    ]
    store.set_schedule_enabled("s", False)
    assert not store.claim_schedule_fire(schedule.id, T0 + 180_000, "a")
    store.delete_schedule("s")
    assert not store.claim_schedule_fire(schedule.id, T0 + 240_000, "a")
    assert store.list_schedule_fires(schedule.id) == []


def test_triggers_events_and_claims(store: SqlSchedulingStore) -> None:
    trigger = store.create_trigger("t", "flows:train", "drift", {"model": "churn"}, {"k": 1})
    assert (trigger.event_kind, trigger.match, trigger.params, trigger.last_event_id) == (
        "drift",
        {"model": "churn"},
        {"k": 1},
        0,
    )
    with pytest.raises(Conflict):
        store.create_trigger("t", "flows:train", "drift", {}, {})
    first = store.add_event("drift", {"model": "churn"})
    other = store.add_event("degradation", {"metric": "auc"})
    second = store.add_event("drift", {"model": "fraud"})
    assert first.id < other.id < second.id
    assert [e.id for e in store.list_events()] == [first.id, other.id, second.id]
    assert [e.id for e in store.list_events(after_id=first.id, kind="drift")] == [second.id]
    assert [e.id for e in store.list_events(limit=1)] == [first.id]
    assert store.list_events(since_time=second.created_time + 1) == []
    assert store.list_events(kind="drift")[0].payload == {"model": "churn"}

    assert store.claim_trigger_fire(trigger.id, first.id, "a")
    assert not store.claim_trigger_fire(trigger.id, first.id, "b")
    store.set_trigger_fire_run(trigger.id, first.id, "run1")
    assert store.get_trigger("t").last_event_id == first.id
    assert [f["pipeline_run_id"] for f in store.list_trigger_fires(trigger.id)] == ["run1"]
    store.delete_trigger("t")
    assert store.list_triggers() == []
    assert not store.claim_trigger_fire(trigger.id, second.id, "a")
    with pytest.raises(NotFound):
        store.get_trigger("t")


def test_lease(store: SqlSchedulingStore) -> None:
    assert store.acquire_lock("l", "a", 10, now=1000.0)
    assert not store.acquire_lock("l", "b", 10, now=1005.0)
    assert store.acquire_lock("l", "a", 10, now=1008.0)  # renewed until 1018
    assert not store.acquire_lock("l", "b", 10, now=1015.0)
    assert store.acquire_lock("l", "b", 10, now=1018.5)  # expired: b takes it
    store.release_lock("l", "a")  # not a's: no effect
    assert not store.acquire_lock("l", "a", 10, now=1019.0)
    store.release_lock("l", "b")
    assert store.acquire_lock("l", "a", 10, now=1019.0)


def test_unique_events_need_the_lease_and_are_deduplicated(store: SqlSchedulingStore) -> None:
    payloads = [{"dataset": "d", "version": 1}, {"dataset": "d", "version": 2}]
    with pytest.raises(Conflict, match="lease"):
        store.add_unique_events("new_dataset", payloads, ("dataset", "version"), lease=("l", "a"))
    assert store.acquire_lock("l", "a", 30)
    added = store.add_unique_events(
        "new_dataset", [*payloads, payloads[0]], ("dataset", "version"), lease=("l", "a")
    )
    assert [e.payload["version"] for e in added] == [1, 2]
    again = store.add_unique_events(
        "new_dataset",
        [{"dataset": "d", "version": 2}, {"dataset": "d", "version": 3}],
        ("dataset", "version"),
        lease=("l", "a"),
    )
    assert [e.payload["version"] for e in again] == [3]
    with pytest.raises(Conflict):
        store.add_unique_events("new_dataset", payloads, ("dataset",), lease=("l", "b"), now=None)


def _race(count: int, attempt: Callable[[str], bool]) -> list[bool]:
    barrier = threading.Barrier(count)
    results: list[bool] = []
    lock = threading.Lock()

    def worker(owner: str) -> None:
        barrier.wait()
        outcome = attempt(owner)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_claims_and_leases_have_one_winner(store: SqlSchedulingStore) -> None:
    schedule = store.create_schedule("s", "flows:train", "* * * * *", {}, False, created_time=T0)
    trigger = store.create_trigger("t", "flows:train", "drift", {}, {})
    event = store.add_event("drift", {})
    assert sorted(_race(4, lambda o: store.claim_schedule_fire(schedule.id, T0 + 60_000, o))) == [
        False,
        False,
        False,
        True,
    ]
    assert _race(4, lambda o: store.claim_trigger_fire(trigger.id, event.id, o)).count(True) == 1
    name = f"lock-{uuid.uuid4().hex[:6]}"
    assert _race(4, lambda o: store.acquire_lock(name, o, 30)).count(True) == 1
