"""The scheduler with a fake clock: due times, catchup, triggers, dataset events, restarts."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopml import datasets
from loopml.config import load_settings
from loopml.errors import Conflict, InvalidInput
from loopml.pipelines import triggers
from loopml.pipelines.scheduler import LOCK_NAME, Scheduler
from loopml.pipelines.triggers import due_fire_times, matches, validate_cron
from loopml.store.sql.scheduling import SqlSchedulingStore


def ts(text: str) -> float:
    """Epoch seconds of a UTC time like ``2026-01-01T03:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def ms(text: str) -> int:
    return int(ts(text) * 1000)


class FakeRunner:
    """Records the runs the scheduler starts; ``fail`` makes a pipeline ref raise."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.fail = fail or set()

    def __call__(self, ref: str, params: dict[str, Any], trigger: str) -> str:
        self.calls.append((ref, params, trigger))
        if ref in self.fail:
            raise RuntimeError(f"{ref} broke")
        return uuid.uuid4().hex

    @property
    def triggers(self) -> list[str]:
        return [call[2] for call in self.calls]


@pytest.fixture
def store() -> SqlSchedulingStore:
    return SqlSchedulingStore(load_settings().resolved_store_uri)


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


def make(runner: FakeRunner, owner: str = "s1", **kwargs: Any) -> Scheduler:
    return Scheduler(owner=owner, run=runner, lease_seconds=30, **kwargs)


# -- cron ---------------------------------------------------------------------------------
def test_due_fire_times() -> None:
    after, until = ts("2026-01-01T00:30"), ts("2026-01-01T03:10")
    assert due_fire_times("0 * * * *", after, until, catchup=True) == (
        [ts("2026-01-01T01:00"), ts("2026-01-01T02:00"), ts("2026-01-01T03:00")],
        0,
    )
    assert due_fire_times("0 * * * *", after, until, catchup=False) == (
        [ts("2026-01-01T03:00")],
        2,
    )
    # The bounds: (after, until].
    assert due_fire_times(
        "0 * * * *", ts("2026-01-01T01:00"), ts("2026-01-01T02:00"), catchup=False
    )[0] == [ts("2026-01-01T02:00")]
    assert (
        due_fire_times("0 * * * *", ts("2026-01-01T02:00"), ts("2026-01-01T02:59"), catchup=True)[0]
        == []
    )
    times, _ = due_fire_times("* * * * *", 0, ts("2026-01-01T00:00"), catchup=True, limit=5)
    assert len(times) == 5


@pytest.mark.parametrize("bad", ["bogus", "61 * * * *", "* * *", "", "0 0 31 2 *"])
def test_bad_cron_is_a_clear_error(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_cron(bad)
    assert info.value.field == "cron"
    assert repr(bad) in info.value.message
    with pytest.raises(InvalidInput, match="invalid cron expression"):
        triggers.schedule("nightly", "flows:train", bad)
    assert triggers.list_schedules() == []


def test_validation_of_names_refs_kinds_and_payloads() -> None:
    with pytest.raises(InvalidInput, match="pipeline reference"):
        triggers.schedule("s", "no-colon", "* * * * *")
    with pytest.raises(InvalidInput, match="name"):
        triggers.schedule("bad name!", "flows:train", "* * * * *")
    with pytest.raises(InvalidInput, match="event kind"):
        triggers.fire("not a kind")
    with pytest.raises(InvalidInput, match="event kind"):
        triggers.fire("k" * 65)
    with pytest.raises(InvalidInput, match="JSON"):
        triggers.fire("drift", {"when": object()})
    with pytest.raises(InvalidInput, match="JSON"):
        triggers.fire("drift", {"score": float("nan")})
    with pytest.raises(InvalidInput, match="larger"):
        triggers.fire("drift", {"blob": "x" * 70_000})
    with pytest.raises(InvalidInput, match="string keys"):
        triggers.fire("drift", {1: "x"})  # type: ignore[dict-item]
    event = triggers.fire("drift", {"score": 0.3})
    assert (event.kind, event.payload) == ("drift", {"score": 0.3})
    triggers.schedule("s", "path/to/flow.py:train", "*/5 * * * *", {"k": [1, 2]})
    with pytest.raises(Conflict):
        triggers.schedule("s", "flows:train", "* * * * *")


def test_matches() -> None:
    assert matches({}, {"a": 1})
    assert matches({"a": 1}, {"a": 1, "b": 2})
    assert not matches({"a": 1}, {"a": 2})
    assert not matches({"a": None}, {})


# -- schedules ----------------------------------------------------------------------------
def test_schedule_fires_when_due_and_once(store: SqlSchedulingStore, runner: FakeRunner) -> None:
    store.create_schedule(
        "hourly",
        "flows:train",
        "0 * * * *",
        {"lr": 0.1},
        False,
        created_time=ms("2026-01-01T00:30"),
    )
    scheduler = make(runner)
    assert scheduler.tick(ts("2026-01-01T00:59:59")) == []
    started = scheduler.tick(ts("2026-01-01T01:00"))
    assert len(started) == 1
    assert runner.calls == [("flows:train", {"lr": 0.1}, "schedule:hourly@2026-01-01T01:00:00Z")]
    assert scheduler.tick(ts("2026-01-01T01:00:30")) == []
    assert store.get_schedule("hourly").last_fire_time == ms("2026-01-01T01:00")
    assert (
        store.list_schedule_fires(store.get_schedule("hourly").id)[0]["pipeline_run_id"]
        == (started[0])
    )


def test_catchup_runs_every_missed_time(store: SqlSchedulingStore, runner: FakeRunner) -> None:
    store.create_schedule(
        "hourly", "flows:train", "0 * * * *", {}, True, created_time=ms("2026-01-01T00:30")
    )
    assert len(make(runner).tick(ts("2026-01-01T03:10"))) == 3
    assert runner.triggers == [
        "schedule:hourly@2026-01-01T01:00:00Z",
        "schedule:hourly@2026-01-01T02:00:00Z",
        "schedule:hourly@2026-01-01T03:00:00Z",
    ]


def test_without_catchup_only_the_latest_runs_and_skips_are_logged(
    store: SqlSchedulingStore, runner: FakeRunner, caplog: pytest.LogCaptureFixture
) -> None:
    store.create_schedule(
        "hourly", "flows:train", "0 * * * *", {}, False, created_time=ms("2026-01-01T00:30")
    )
    with caplog.at_level(logging.WARNING, logger="loopml.pipelines.scheduler"):
        make(runner).tick(ts("2026-01-01T03:10"))
    assert runner.triggers == ["schedule:hourly@2026-01-01T03:00:00Z"]
    assert "skips 2 missed run(s)" in caplog.text


def test_disabled_schedules_do_not_fire(store: SqlSchedulingStore, runner: FakeRunner) -> None:
    store.create_schedule(
        "hourly", "flows:train", "0 * * * *", {}, False, created_time=ms("2026-01-01T00:30")
    )
    store.set_schedule_enabled("hourly", False)
    scheduler = make(runner)
    assert scheduler.tick(ts("2026-01-01T02:10")) == []
    store.set_schedule_enabled("hourly", True)
    assert len(scheduler.tick(ts("2026-01-01T02:20"))) == 1


def test_a_stored_bad_cron_is_logged_and_the_others_still_fire(
    store: SqlSchedulingStore, runner: FakeRunner, caplog: pytest.LogCaptureFixture
) -> None:
    store.create_schedule("broken", "flows:a", "nope", {}, False, created_time=ms("2026-01-01"))
    store.create_schedule("good", "flows:b", "0 * * * *", {}, False, created_time=ms("2026-01-01"))
    with caplog.at_level(logging.ERROR, logger="loopml.pipelines.scheduler"):
        make(runner).tick(ts("2026-01-01T01:00"))
    assert [c[0] for c in runner.calls] == ["flows:b"]
    assert "'broken' never fires" in caplog.text and "'nope'" in caplog.text


def test_a_failing_pipeline_does_not_stop_the_scheduler(store: SqlSchedulingStore) -> None:
    runner = FakeRunner(fail={"flows:a"})
    for name, ref in (("a", "flows:a"), ("b", "flows:b")):
        store.create_schedule(name, ref, "0 * * * *", {}, False, created_time=ms("2026-01-01"))
    scheduler = make(runner)
    assert len(scheduler.tick(ts("2026-01-01T01:00"))) == 1
    assert [c[0] for c in runner.calls] == ["flows:a", "flows:b"]
    # The failed firing is not retried: it happened, and failed.
    assert scheduler.tick(ts("2026-01-01T01:05")) == []


def test_restart_continues_without_refiring(store: SqlSchedulingStore, runner: FakeRunner) -> None:
    store.create_schedule(
        "hourly", "flows:train", "0 * * * *", {}, False, created_time=ms("2026-01-01T00:30")
    )
    first = make(runner, owner="first")
    first.tick(ts("2026-01-01T01:00"))
    first.close()
    second = make(runner, owner="second")
    assert second.tick(ts("2026-01-01T01:30")) == []
    assert len(second.tick(ts("2026-01-01T02:00"))) == 1
    assert runner.triggers == [
        "schedule:hourly@2026-01-01T01:00:00Z",
        "schedule:hourly@2026-01-01T02:00:00Z",
    ]


def test_one_active_scheduler_and_failover(store: SqlSchedulingStore, runner: FakeRunner) -> None:
    store.create_schedule(
        "hourly", "flows:train", "0 * * * *", {}, False, created_time=ms("2026-01-01T00:30")
    )
    active, standby = make(runner, owner="active"), make(runner, owner="standby")
    assert standby.tick(ts("2026-01-01T00:59:50")) == [] and standby.is_active
    assert active.tick(ts("2026-01-01T00:59:55")) == [] and not active.is_active
    # "standby" dies without releasing the lease: it expires at 01:00:20, then "active" fires.
    assert active.tick(ts("2026-01-01T01:00:10")) == [] and not active.is_active
    assert len(active.tick(ts("2026-01-01T01:00:21"))) == 1 and active.is_active
    assert standby.tick(ts("2026-01-01T01:00:30")) == [] and not standby.is_active
    assert len(runner.calls) == 1


def test_a_scheduler_that_loses_the_lease_mid_pass_stops(store: SqlSchedulingStore) -> None:
    store.create_schedule(
        "hourly", "flows:train", "0 * * * *", {}, True, created_time=ms("2026-01-01T00:30")
    )
    calls: list[str] = []

    def steal_the_lease(ref: str, params: dict[str, Any], trigger: str) -> str:
        calls.append(trigger)
        if len(calls) == 1:  # e.g. a pipeline ran longer than the lease
            store.release_lock(LOCK_NAME, "slow")
            assert store.acquire_lock(LOCK_NAME, "thief", 30, now=ts("2026-01-01T03:10"))
        return uuid.uuid4().hex

    slow = Scheduler(owner="slow", run=steal_the_lease)
    assert len(slow.tick(ts("2026-01-01T03:10"))) == 1 and not slow.is_active
    thief = Scheduler(owner="thief", run=steal_the_lease)
    assert len(thief.tick(ts("2026-01-01T03:10"))) == 2
    assert calls == [f"schedule:hourly@2026-01-01T0{h}:00:00Z" for h in (1, 2, 3)]


# -- triggers -----------------------------------------------------------------------------
def test_event_triggers_match_kind_and_payload(runner: FakeRunner) -> None:
    triggers.fire("drift", {"model": "churn"})  # before the trigger: ignored
    triggers.on_event("on-drift", "flows:retrain", "drift", {"model": "churn"}, {"full": True})
    scheduler = make(runner)
    hit = triggers.fire("drift", {"model": "churn", "score": 0.4})
    triggers.fire("drift", {"model": "fraud"})
    triggers.fire("degradation", {"model": "churn"})
    assert len(scheduler.tick()) == 1
    assert runner.calls == [("flows:retrain", {"full": True}, f"event:drift#{hit.id}")]
    assert scheduler.tick() == []
    again = triggers.fire("drift", {"model": "churn"})
    assert len(scheduler.tick()) == 1
    assert runner.triggers[-1] == f"event:drift#{again.id}"
    # A new scheduler (a restart) does not fire the same events again.
    scheduler.close()
    assert make(runner, owner="s2").tick() == []
    assert triggers.list_triggers()[0].last_event_id == again.id


def _frame(seed: int) -> pd.DataFrame:
    return pd.DataFrame({"x": [seed, seed + 1, seed + 2], "y": ["a", "b", "c"]})


def test_new_dataset_versions_fire_once(store: SqlSchedulingStore, runner: FakeRunner) -> None:
    datasets.register("other", _frame(0), profile=False)
    datasets.register("churn", _frame(0), profile=False)  # before the trigger: ignored
    triggers.on_new_dataset("retrain", "flows:retrain", "churn", {"epochs": 3})
    scheduler = make(runner)
    assert scheduler.tick() == []
    datasets.register("churn", _frame(1), profile=False)
    datasets.register("other", _frame(1), profile=False)
    assert len(scheduler.tick()) == 1
    events = store.list_events(kind="new_dataset")
    assert [e.payload["uri"] for e in events] == ["churn@v2"]
    assert events[0].payload["dataset"] == "churn" and events[0].payload["version"] == 2
    assert runner.calls == [("flows:retrain", {"epochs": 3}, f"event:new_dataset#{events[0].id}")]
    assert scheduler.tick() == []
    datasets.register("churn", _frame(1), profile=False)  # same content: no new version
    datasets.register("churn", _frame(2), profile=False)
    datasets.register("churn", _frame(3), profile=False)
    assert len(scheduler.tick()) == 2
    assert [e.payload["version"] for e in store.list_events(kind="new_dataset")] == [2, 3, 4]
    # A restarted scheduler neither records nor fires these versions again.
    scheduler.close()
    assert make(runner, owner="s2").tick() == []
    assert len(store.list_events(kind="new_dataset")) == 3
    assert len(runner.calls) == 3


def test_standby_scheduler_records_no_dataset_events(
    store: SqlSchedulingStore, runner: FakeRunner
) -> None:
    triggers.on_new_dataset("retrain", "flows:retrain", "churn")
    active, standby = make(runner, owner="a"), make(runner, owner="b")
    active.tick()
    datasets.register("churn", _frame(0), profile=False)
    assert standby.tick() == []
    assert store.list_events(kind="new_dataset") == []
    assert len(active.tick()) == 1


def test_run_forever_stops_and_releases_the_lease(
    store: SqlSchedulingStore, runner: FakeRunner
) -> None:
    triggers.on_event("on-drift", "flows:retrain", "drift")
    triggers.fire("drift")
    scheduler = make(runner, poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run_forever, args=(stop,))
    thread.start()
    try:
        for _ in range(200):
            if runner.calls:
                break
            threading.Event().wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(runner.calls) == 1
    assert store.acquire_lock(LOCK_NAME, "someone-else", 30)


def test_the_default_runner_runs_a_real_pipeline(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "import loopml as lm\n\n"
        "@lm.step\n"
        "def double(x: int) -> int:\n"
        "    return 2 * x\n\n"
        "@lm.pipeline\n"
        "def doubling(x: int = 1) -> int:\n"
        "    return double(x)\n",
        encoding="utf-8",
    )
    triggers.on_event("on-go", f"{flow}:doubling", "go", params={"x": 21})
    event = triggers.fire("go")
    started = Scheduler(owner="real").tick()
    assert len(started) == 1
    from loopml.store.sql.pipelines import SqlPipelineStore

    run = SqlPipelineStore(load_settings().resolved_store_uri).get_pipeline_run(started[0])
    assert run.trigger == f"event:go#{event.id}"
    assert run.params.get("x") == 21


def test_run_forever_survives_store_errors(
    runner: FakeRunner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from loopml.errors import StoreUnavailable

    scheduler = make(runner, poll_interval=0.01)
    stop = threading.Event()
    passes: list[int] = []
    real_tick = scheduler.tick

    def flaky_tick(now: float | None = None) -> list[str]:
        passes.append(1)
        if len(passes) == 1:
            raise StoreUnavailable("metadata store error: connection refused")
        if len(passes) == 2:
            raise RuntimeError("a bug")
        stop.set()
        return real_tick(now)

    monkeypatch.setattr(scheduler, "tick", flaky_tick)
    with caplog.at_level(logging.WARNING, logger="loopml.pipelines.scheduler"):
        scheduler.run_forever(stop)
    assert len(passes) == 3
    assert "connection refused" in caplog.text and "a bug" in caplog.text
