"""Two scheduler processes on one store fire a cron schedule, a new-data trigger and an event
trigger exactly once each, also when the active one is killed and the other takes over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import delete

from loopml.config import load_settings
from loopml.data.datasets import DatasetService
from loopml.store.artifacts import open_blob_store
from loopml.store.sql.datasets import SqlDatasetStore
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

LEASE_SECONDS = 2.0

SCHEDULER = """
import os, sys, uuid
from loopml.pipelines.scheduler import Scheduler

uri, out = sys.argv[1], sys.argv[2]

def run(ref, params, trigger):
    with open(out, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()} {ref} {trigger}\\n")
    return uuid.uuid4().hex

Scheduler(uri, poll_interval=0.1, lease_seconds=float(sys.argv[3]), run=run).run_forever()
"""


def _wipe(uri: str) -> None:
    with open_engine(uri).write.begin() as conn:
        for model in (TriggerFireRow, ScheduleFireRow, EventRow, TriggerRow, ScheduleRow, LockRow):
            conn.execute(delete(model))


def _cron_for(moment: float) -> str:
    """A cron expression that fires at ``moment``'s minute and then only a year later."""
    at = datetime.fromtimestamp(moment, tz=timezone.utc)
    return f"{at.minute} {at.hour} {at.day} {at.month} *"


def _lines(out: Path) -> list[list[str]]:
    if not out.exists():
        return []
    return [line.split(" ", 2) for line in out.read_text(encoding="utf-8").splitlines()]


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the schedulers")
        time.sleep(0.05)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[str, Path], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def spawn(uri: str, out: Path) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"scheduler-{len(started)}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", SCHEDULER, uri, str(out), str(LEASE_SECONDS)],
                env=os.environ.copy(),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _exactly_once(
    uri: str, tmp_path: Path, spawn: Callable[[str, Path], subprocess.Popen[bytes]]
) -> None:
    _wipe(uri)
    store = SqlSchedulingStore(uri)
    data = DatasetService(SqlDatasetStore(uri), open_blob_store(str(tmp_path / "blobs")))
    dataset = f"churn_{os.getpid()}_{int(time.time() * 1000)}"
    now = time.time()
    # Due two minutes ago, created ten minutes ago: one fire is due, the next is a year away.
    store.create_schedule(
        "nightly",
        "flows:train",
        _cron_for(now - 120),
        {},
        False,
        created_time=int(now - 600) * 1000,
    )
    store.create_trigger("retrain", "flows:retrain", "new_dataset", {"dataset": dataset}, {})
    store.create_trigger("on-drift", "flows:drift", "drift", {}, {})
    out = tmp_path / "runs.txt"
    first, second = spawn(uri, out), spawn(uri, out)

    _wait_for(lambda: len(_lines(out)) >= 1)
    data.register(dataset, pd.DataFrame({"x": [1, 2, 3]}), profile=False)
    store.add_event("drift", {"score": 0.4})
    _wait_for(lambda: len(_lines(out)) >= 3)
    time.sleep(1.0)  # both schedulers pass several more times: nothing fires again
    lines = _lines(out)
    assert sorted(ref for _, ref, _ in lines) == ["flows:drift", "flows:retrain", "flows:train"]

    # Kill the active scheduler without letting it release the lease: the other takes over.
    active_pid = int(lines[-1][0])
    active = first if first.pid == active_pid else second
    standby = second if active is first else first
    active.kill()
    active.wait(timeout=10)
    data.register(dataset, pd.DataFrame({"x": [4, 5, 6]}), profile=False)
    _wait_for(lambda: len(_lines(out)) >= 4, timeout=LEASE_SECONDS + 8)
    time.sleep(0.5)
    lines = _lines(out)
    assert len(lines) == 4, lines
    assert int(lines[-1][0]) == standby.pid
    assert lines[-1][1] == "flows:retrain"

    # SIGTERM stops the survivor cleanly, releasing the lease.
    standby.send_signal(signal.SIGTERM)
    assert standby.wait(timeout=10) == 0
    assert store.acquire_lock("scheduler", "after-test", 30)
    events = store.list_events(kind="new_dataset")
    assert [e.payload["version"] for e in events] == [1, 2]
    _wipe(uri)


def test_two_sqlite_schedulers_fire_once(tmp_path: Path, processes: Callable[..., Any]) -> None:
    _exactly_once(load_settings().resolved_store_uri, tmp_path, processes)


@pytest.mark.postgres
def test_two_postgres_schedulers_fire_once(
    tmp_path: Path, pg_uri: str, processes: Callable[..., Any]
) -> None:
    _exactly_once(pg_uri, tmp_path, processes)
