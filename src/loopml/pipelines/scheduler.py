"""The scheduler: fires due schedules and triggers, each exactly once, from any number of processes.

Every pass (:meth:`Scheduler.tick`) first takes or renews a lease (the ``scheduler`` row of
the store's lock table): one process at a time is active, the others stand by and take over
within ``lease_seconds`` when it stops or dies. The active scheduler

1. fires each enabled schedule whose cron times fell due since its last firing (all of them
   with ``catchup=True``; otherwise only the most recent, logging the skipped ones);
2. records a ``new_dataset`` event for every new version of a watched dataset;
3. fires each enabled trigger once per new event that matches it.

Each firing is claimed in the store before the pipeline runs (a row under a unique key), so
even two schedulers that both believe they hold the lease never run the same firing twice.
All state lives in the store: a restarted scheduler continues where the last one stopped.
Pipelines run in the scheduler process, one after the other; one that raises is logged and
the scheduler carries on.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from loopml.entities.data import DatasetVersion
from loopml.entities.pipelines import Schedule, Trigger
from loopml.errors import Conflict, InvalidInput, LoopmlError, NotFound
from loopml.pipelines.triggers import (
    MAX_SKIP_COUNT,
    NEW_DATASET,
    due_fire_times,
    iso_utc,
    matches,
    validate_cron,
)
from loopml.store.base import DatasetStore
from loopml.store.scheduling_base import SchedulingStore

logger = logging.getLogger(__name__)

#: Name of the lease row that makes one scheduler active at a time.
LOCK_NAME = "scheduler"
#: Events younger than this (ms) are looked at again next pass, in case an event with a
#: smaller id commits late (PostgreSQL sequences hand out ids before commit).
EVENT_SETTLE_MS = 10_000
_EVENT_BATCH = 1000

RunFunction = Callable[[str, dict[str, Any], str], str]


class LeaseLost(Exception):
    """The scheduler no longer holds the lease; the pass stops."""


def run_pipeline(ref: str, params: dict[str, Any], trigger: str) -> str:
    """Run a pipeline by reference in this process and return its pipeline run id."""
    from loopml.pipelines.runner import run_pipeline_ref

    return run_pipeline_ref(ref, params, trigger=trigger).id


def default_owner() -> str:
    """A name unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Scheduler:
    """Fires due schedules and triggers exactly once; run one or several for availability.

    Parameters
    ----------
    store_uri : str, optional
        Metadata store URI; the current settings' store by default.
    owner : str, optional
        This scheduler's name in the lease and firing records; unique per process by default.
    poll_interval : float
        Seconds between passes in :meth:`run_forever`.
    lease_seconds : float
        How long the lease lasts without renewal: a standby scheduler takes over this long
        after the active one dies.
    run : callable, optional
        ``run(pipeline_ref, params, trigger) -> pipeline_run_id``; runs the pipeline in this
        process with :func:`loopml.pipelines.runner.run_pipeline_ref` by default.
    clock : callable
        Returns the current epoch seconds.
    store, datasets : optional
        Stores to use instead of opening ``store_uri``.
    """

    def __init__(
        self,
        store_uri: str | None = None,
        *,
        owner: str | None = None,
        poll_interval: float = 1.0,
        lease_seconds: float = 30.0,
        run: RunFunction | None = None,
        clock: Callable[[], float] = time.time,
        store: SchedulingStore | None = None,
        datasets: DatasetStore | None = None,
    ) -> None:
        if poll_interval <= 0 or lease_seconds <= 0:
            raise InvalidInput(
                "poll_interval and lease_seconds must be positive", field="poll_interval"
            )
        if store is None or datasets is None:
            if store_uri is None:
                from loopml.config import load_settings

                store_uri = load_settings().resolved_store_uri
            from loopml.store.sql.datasets import SqlDatasetStore
            from loopml.store.sql.scheduling import SqlSchedulingStore

            store = store or SqlSchedulingStore(store_uri)
            datasets = datasets or SqlDatasetStore(store_uri)
        self.store: SchedulingStore = store
        self.datasets: DatasetStore = datasets
        self.owner = owner or default_owner()
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self._run = run or run_pipeline
        self._clock = clock
        self._holding = False
        self._lease_now: Callable[[], float] = clock
        self._seen_versions: dict[str, int] = {}
        self._cursors: dict[tuple[int, int], int] = {}
        self._attempted: set[tuple[int, int]] = set()
        self._bad_crons: set[tuple[int, str]] = set()
        self._started: list[str] = []

    # -- the lease ----------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        """Whether this scheduler held the lease at its last pass."""
        return self._holding

    def _renew(self) -> bool:
        held = self.store.acquire_lock(
            LOCK_NAME, self.owner, self.lease_seconds, now=self._lease_now()
        )
        if held != self._holding:
            logger.info(
                "scheduler %s %s the lease", self.owner, "took" if held else "lost or waits for"
            )
        self._holding = held
        return held

    def _ensure_lease(self) -> None:
        if not self._renew():
            raise LeaseLost

    def close(self) -> None:
        """Give the lease up so that a standby scheduler takes over at once."""
        if self._holding:
            self.store.release_lock(LOCK_NAME, self.owner)
            self._holding = False

    # -- one pass -----------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[str]:
        """Run one pass: renew the lease and, if held, fire what is due.

        Parameters
        ----------
        now : float, optional
            Epoch seconds to evaluate schedules (and the lease) at; the clock by default.

        Returns
        -------
        list of str
            Ids of the pipeline runs started in this pass.
        """
        if now is None:
            now = self._clock()
            self._lease_now = self._clock
        else:
            fixed = now
            self._lease_now = lambda: fixed
        if not self._renew():
            return []
        self._started = []
        try:
            self._fire_schedules(now)
            triggers = [t for t in self.store.list_triggers() if t.enabled]
            self._record_dataset_events(triggers)
            self._fire_triggers(triggers)
        except LeaseLost:
            logger.warning("scheduler %s lost the lease during a pass; it stops", self.owner)
        return list(self._started)

    def _start(self, ref: str, params: dict[str, Any], trigger: str) -> str | None:
        try:
            run_id = self._run(ref, dict(params), trigger)
        except (Exception, SystemExit):
            logger.exception("pipeline %s (%s) failed", ref, trigger)
            return None
        self._started.append(run_id)
        return run_id

    # -- schedules ----------------------------------------------------------------------
    def _fire_schedules(self, now: float) -> None:
        for schedule in self.store.list_schedules():
            if schedule.enabled:
                self._fire_schedule(schedule, now)

    def _fire_schedule(self, schedule: Schedule, now: float) -> None:
        start_ms = schedule.last_fire_time or schedule.created_time
        try:
            cron = validate_cron(schedule.cron)
            times, skipped = due_fire_times(cron, start_ms / 1000, now, catchup=schedule.catchup)
        except InvalidInput as exc:
            if (schedule.id, schedule.cron) not in self._bad_crons:
                self._bad_crons.add((schedule.id, schedule.cron))
                logger.error("schedule %r never fires: %s", schedule.name, exc.message)
            return
        if skipped:
            logger.warning(
                "schedule %r skips %s missed run(s) after %s (catchup is off); it runs for %s",
                schedule.name,
                f"{skipped}+" if skipped >= MAX_SKIP_COUNT else skipped,
                iso_utc(start_ms / 1000),
                iso_utc(times[0]),
            )
        for moment in times:
            fire_ms = int(moment * 1000)
            self._ensure_lease()
            if not self.store.claim_schedule_fire(schedule.id, fire_ms, self.owner):
                continue
            logger.info("schedule %r fires for %s", schedule.name, iso_utc(moment))
            run_id = self._start(
                schedule.pipeline_ref,
                schedule.params,
                f"schedule:{schedule.name}@{iso_utc(moment)}",
            )
            if run_id is not None:
                self.store.set_schedule_fire_run(schedule.id, fire_ms, run_id)

    # -- new dataset versions -----------------------------------------------------------
    def _record_dataset_events(self, triggers: list[Trigger]) -> None:
        """Record a ``new_dataset`` event per version registered after a watching trigger."""
        watch_all: int | None = None
        watched: dict[str, int] = {}
        for trigger in triggers:
            if trigger.event_kind != NEW_DATASET:
                continue
            name = trigger.match.get("dataset")
            if isinstance(name, str):
                watched[name] = min(watched.get(name, trigger.created_time), trigger.created_time)
            else:
                watch_all = (
                    trigger.created_time
                    if watch_all is None
                    else min(watch_all, trigger.created_time)
                )
        if not watched and watch_all is None:
            return
        payloads: list[dict[str, Any]] = []
        latest: dict[str, int] = {}
        for dataset in self.datasets.list_datasets():
            since = min(
                (t for t in (watched.get(dataset.name), watch_all) if t is not None), default=None
            )
            seen = self._seen_versions.get(dataset.name, 0)
            if since is None or dataset.latest_version is None or dataset.latest_version <= seen:
                continue
            latest[dataset.name] = dataset.latest_version
            payloads += [
                {"dataset": v.name, "version": v.version, "uri": v.uri, "digest": v.digest}
                for v in self._versions(dataset.name)
                if v.version > seen and v.created_time >= since
            ]
        if payloads:
            try:
                added = self.store.add_unique_events(
                    NEW_DATASET,
                    payloads,
                    ("dataset", "version"),
                    lease=(LOCK_NAME, self.owner),
                    now=self._lease_now(),
                )
            except Conflict as exc:
                raise LeaseLost from exc
            for event in added:
                logger.info("new dataset version %s (event %d)", event.payload["uri"], event.id)
        self._seen_versions.update(latest)

    def _versions(self, name: str) -> list[DatasetVersion]:
        try:
            return list(self.datasets.list_dataset_versions(name))
        except NotFound:  # deleted since it was listed
            return []

    # -- triggers -----------------------------------------------------------------------
    def _fire_triggers(self, triggers: list[Trigger]) -> None:
        settled_before = int(time.time() * 1000) - EVENT_SETTLE_MS
        for trigger in triggers:
            key = (trigger.id, trigger.created_time)
            cursor = self._cursors.get(key, trigger.last_event_id)
            events = self.store.list_events(
                after_id=cursor,
                kind=trigger.event_kind,
                limit=_EVENT_BATCH,
                since_time=trigger.created_time,
            )
            advancing = True
            for event in events:
                attempt = (trigger.id, event.id)
                if attempt not in self._attempted and matches(trigger.match, event.payload):
                    self._ensure_lease()
                    self._attempted.add(attempt)
                    if self.store.claim_trigger_fire(trigger.id, event.id, self.owner):
                        logger.info("trigger %r fires on event %d", trigger.name, event.id)
                        run_id = self._start(
                            trigger.pipeline_ref, trigger.params, f"event:{event.kind}#{event.id}"
                        )
                        if run_id is not None:
                            self.store.set_trigger_fire_run(trigger.id, event.id, run_id)
                advancing = advancing and event.created_time < settled_before
                if advancing:
                    cursor = event.id
            self._cursors[key] = cursor
            self._attempted = {a for a in self._attempted if a[0] != trigger.id or a[1] > cursor}

    # -- the loop -----------------------------------------------------------------------
    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Pass every ``poll_interval`` seconds until ``stop`` is set, SIGTERM or SIGINT.

        Store outages and pipeline failures are logged and retried at the next pass; the
        lease is released on the way out.
        """
        stop = stop or threading.Event()
        with _stop_on_signals(stop):
            logger.info("scheduler %s started (poll every %ss)", self.owner, self.poll_interval)
            try:
                while not stop.is_set():
                    try:
                        self.tick()
                    except LoopmlError as exc:  # e.g. the database is down: no traceback
                        logger.warning("scheduler pass failed, retrying: %s", exc.message)
                    except Exception:
                        logger.exception("scheduler pass failed; retrying")
                    stop.wait(self.poll_interval)
            finally:
                try:
                    self.close()
                except Exception:
                    logger.exception("could not release the scheduler lease")
                logger.info("scheduler %s stopped", self.owner)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT while inside (main thread only).

    A second SIGINT interrupts at once (``KeyboardInterrupt``), e.g. a long pipeline run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [signal.SIGINT, signal.SIGTERM]
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def _handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logger.info("received %s; stopping after the current pass", signal.Signals(signum).name)
        stop.set()

    for sig in signals:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
