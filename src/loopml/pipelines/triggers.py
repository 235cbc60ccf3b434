"""Schedules, triggers and events: what makes ``loopml scheduler`` run a pipeline.

A *schedule* runs a pipeline on a cron expression (evaluated in UTC); a *trigger* runs one
when an event of a kind arrives whose payload contains the trigger's ``match`` items. Events
come from :func:`fire` (``lm.triggers.fire("drift", {"feature": "age"})``), from monitoring
and continuous training, and from the scheduler itself, which records a ``new_dataset`` event
``{"dataset": name, "version": N, "uri": "name@vN"}`` for every new version of a watched
dataset. Nothing runs until a scheduler process picks it up; see
:class:`loopml.pipelines.scheduler.Scheduler`.

Examples
--------
>>> import loopml as lm  # doctest: +SKIP
>>> lm.triggers.schedule("nightly", "flows.train:training", "0 3 * * *")  # doctest: +SKIP
>>> lm.triggers.on_new_dataset("retrain", "flows.train:training", "churn")  # doctest: +SKIP
>>> lm.triggers.fire("drift", {"model": "churn", "score": 0.31})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone
from typing import Any

from croniter import CroniterError, croniter

from loopml.config import load_settings
from loopml.entities.pipelines import Event, Schedule, Trigger
from loopml.errors import InvalidInput
from loopml.store.scheduling_base import SchedulingStore

__all__ = [
    "NEW_DATASET",
    "TriggerService",
    "delete_schedule",
    "delete_trigger",
    "disable_schedule",
    "due_fire_times",
    "enable_schedule",
    "fire",
    "get_service",
    "iso_utc",
    "list_events",
    "list_schedules",
    "list_triggers",
    "matches",
    "next_fire_time",
    "on_event",
    "on_new_dataset",
    "schedule",
    "validate_cron",
]

#: Kind of the events the scheduler records for new dataset versions.
NEW_DATASET = "new_dataset"
#: Largest event payload accepted, as JSON bytes.
MAX_PAYLOAD_BYTES = 64 * 1024
_KIND = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ATTR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_MAX_REF_LENGTH = 512
#: Most missed fire times of one schedule run in one pass with ``catchup=True``.
MAX_CATCHUP_PER_TICK = 100
#: Skipped fire times are counted up to this many.
MAX_SKIP_COUNT = 10_000


# -- validation ---------------------------------------------------------------------------
def validate_cron(cron: str) -> str:
    """Return the cron expression stripped, or raise :class:`InvalidInput` naming it.

    Five fields (minute hour day-of-month month day-of-week), ``@daily``-style aliases, and
    croniter's optional sixth field (seconds) are accepted; times are UTC.
    """
    text = cron.strip() if isinstance(cron, str) else ""
    try:
        if not text or len(text) > 128:
            raise ValueError("expected 5 fields: minute hour day-of-month month day-of-week")
        croniter(text).get_next(float)
    except (CroniterError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(
            f"invalid cron expression {cron!r}: {exc} (expected e.g. '0 3 * * *')", field="cron"
        ) from exc
    return text


def next_fire_time(cron: str, after: float) -> float:
    """Return the first fire time of ``cron`` strictly after ``after`` (epoch seconds, UTC)."""
    return float(croniter(cron, after).get_next(float))


def due_fire_times(
    cron: str, after: float, until: float, *, catchup: bool, limit: int = MAX_CATCHUP_PER_TICK
) -> tuple[list[float], int]:
    """Fire times of ``cron`` in ``(after, until]`` (epoch seconds, UTC) to run now.

    Parameters
    ----------
    catchup : bool
        Return every due time (oldest first, at most ``limit``), or only the most recent.

    Returns
    -------
    (list of float, int)
        The times to fire and how many earlier due times are skipped (0 with catchup).
    """
    if catchup:
        times: list[float] = []
        it = croniter(cron, after)
        while len(times) < limit:
            moment = float(it.get_next(float))
            if moment > until:
                break
            times.append(moment)
        return times, 0
    # Fire times are whole seconds: the latest one <= until is the latest < floor(until) + 1.
    latest = float(croniter(cron, float(int(until) + 1)).get_prev(float))
    if latest <= after:
        return [], 0
    skipped = 0
    it = croniter(cron, after)
    while skipped < MAX_SKIP_COUNT and float(it.get_next(float)) < latest:
        skipped += 1
    return [latest], skipped


def iso_utc(seconds: float) -> str:
    """Format epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validate_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"{what} name {name!r} must be 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
            field="name",
        )
    return name


def _validate_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidInput(
            f"event kind {kind!r} must be an identifier of at most 64 characters "
            "(letters, digits, '_')",
            field="kind",
        )
    return kind


def _validate_ref(ref: str) -> str:
    target, sep, attr = ref.rpartition(":") if isinstance(ref, str) else ("", "", "")
    if not sep or not target.strip() or not _ATTR.fullmatch(attr) or len(ref) > _MAX_REF_LENGTH:
        raise InvalidInput(
            f"pipeline reference {ref!r} must look like 'package.module:pipeline' or "
            "'path/to/file.py:pipeline'",
            field="pipeline_ref",
        )
    return ref


def _json_dict(value: dict[str, Any] | None, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{field} must be a dict with string keys", field=field)
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} is not JSON-serializable: {exc}", field=field) from exc
    if len(text.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"{field} is larger than {MAX_PAYLOAD_BYTES} bytes", field=field)
    result: dict[str, Any] = json.loads(text)
    return result


def matches(match: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Whether every ``match`` item is in ``payload`` with an equal value (empty matches all)."""
    return all(key in payload and payload[key] == value for key, value in match.items())


# -- service ------------------------------------------------------------------------------
class TriggerService:
    """Creates, lists and deletes schedules and triggers, and records events.

    Parameters
    ----------
    store : SchedulingStore
        Where schedules, triggers and events live.
    """

    def __init__(self, store: SchedulingStore) -> None:
        self.store = store

    def schedule(
        self,
        name: str,
        pipeline_ref: str,
        cron: str,
        params: dict[str, Any] | None = None,
        catchup: bool = False,
    ) -> Schedule:
        """Run ``pipeline_ref`` on ``cron`` (UTC); see :func:`schedule`."""
        return self.store.create_schedule(
            _validate_name(name, "schedule"),
            _validate_ref(pipeline_ref),
            validate_cron(cron),
            _json_dict(params, "params"),
            bool(catchup),
        )

    def on_event(
        self,
        name: str,
        pipeline_ref: str,
        kind: str,
        match: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Trigger:
        """Run ``pipeline_ref`` on every event of ``kind`` whose payload contains ``match``."""
        return self.store.create_trigger(
            _validate_name(name, "trigger"),
            _validate_ref(pipeline_ref),
            _validate_kind(kind),
            _json_dict(match, "match"),
            _json_dict(params, "params"),
        )

    def on_new_dataset(
        self, name: str, pipeline_ref: str, dataset: str, params: dict[str, Any] | None = None
    ) -> Trigger:
        """Run ``pipeline_ref`` on every version of ``dataset`` registered from now on."""
        if not isinstance(dataset, str) or not dataset.strip():
            raise InvalidInput("the dataset name must not be empty", field="dataset")
        return self.on_event(name, pipeline_ref, NEW_DATASET, {"dataset": dataset}, params)

    def fire(self, kind: str, payload: dict[str, Any] | None = None) -> Event:
        """Record an event of ``kind``; see :func:`fire`."""
        return self.store.add_event(_validate_kind(kind), _json_dict(payload, "payload"))

    def set_schedule_enabled(self, name: str, enabled: bool) -> Schedule:
        """Enable or disable a schedule (a disabled schedule never fires)."""
        return self.store.set_schedule_enabled(name, enabled)


_lock = threading.Lock()
_service: TriggerService | None = None
_service_uri: str | None = None


def get_service() -> TriggerService:
    """The trigger service for the current settings' metadata store.

    Raises
    ------
    InvalidInput
        With only a tracking server configured: schedules and events are written to the
        metadata store directly, so ``LOOPML_STORE_URI`` must name it.
    """
    global _service, _service_uri
    settings = load_settings()
    if settings.tracking_uri:
        raise InvalidInput(
            "schedules and triggers are not served over the tracking server's REST API yet: "
            "set LOOPML_STORE_URI to the server's store instead of LOOPML_TRACKING_URI",
            field="tracking_uri",
        )
    uri = settings.resolved_store_uri
    with _lock:
        if _service is None or uri != _service_uri:
            from loopml.store.sql.scheduling import SqlSchedulingStore

            _service = TriggerService(SqlSchedulingStore(uri))
            _service_uri = uri
        return _service


# -- fluent API (``lm.triggers``) ----------------------------------------------------------
def fire(kind: str, payload: dict[str, Any] | None = None) -> Event:
    """Record an event; triggers on ``kind`` whose match it satisfies will run once.

    Parameters
    ----------
    kind : str
        An identifier of at most 64 characters: ``"drift"``, ``"degradation"``...
    payload : dict, optional
        JSON-able details (at most 64 KiB) that triggers match against.

    Returns
    -------
    Event
        The stored event, with its id.

    Raises
    ------
    InvalidInput
        For a bad kind or a payload that is not a JSON-able dict.
    """
    return get_service().fire(kind, payload)


def schedule(
    name: str,
    pipeline_ref: str,
    cron: str,
    params: dict[str, Any] | None = None,
    catchup: bool = False,
) -> Schedule:
    """Run a pipeline on a cron schedule (UTC).

    Parameters
    ----------
    name : str
        Unique schedule name.
    pipeline_ref : str
        ``"package.module:pipeline"`` or ``"path/to/file.py:pipeline"``.
    cron : str
        A cron expression such as ``"0 3 * * *"`` (03:00 UTC every day).
    params : dict, optional
        Parameters of every run.
    catchup : bool
        After downtime, run every missed fire time (True) or only the most recent one and
        skip the others (False, the default).

    Raises
    ------
    InvalidInput
        For a bad cron expression (naming it), name or pipeline reference.
    Conflict
        When a schedule of that name exists.
    """
    return get_service().schedule(name, pipeline_ref, cron, params, catchup)


def on_event(
    name: str,
    pipeline_ref: str,
    kind: str,
    match: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Trigger:
    """Run a pipeline once per event of ``kind`` whose payload contains every ``match`` item.

    Only events recorded after the trigger is created count.
    """
    return get_service().on_event(name, pipeline_ref, kind, match, params)


def on_new_dataset(
    name: str, pipeline_ref: str, dataset: str, params: dict[str, Any] | None = None
) -> Trigger:
    """Run a pipeline once per new version of ``dataset`` (a ``new_dataset`` event trigger)."""
    return get_service().on_new_dataset(name, pipeline_ref, dataset, params)


def list_schedules() -> list[Schedule]:
    """Return every schedule, by name."""
    return get_service().store.list_schedules()


def list_triggers() -> list[Trigger]:
    """Return every trigger, by name."""
    return get_service().store.list_triggers()


def list_events(kind: str | None = None, after_id: int = 0, limit: int = 100) -> list[Event]:
    """Return events, oldest first, optionally of one kind and after an event id."""
    return get_service().store.list_events(after_id=after_id, kind=kind, limit=limit)


def delete_schedule(name: str) -> None:
    """Delete a schedule and its history of firings."""
    get_service().store.delete_schedule(name)


def delete_trigger(name: str) -> None:
    """Delete a trigger and its history of firings."""
    get_service().store.delete_trigger(name)


def enable_schedule(name: str) -> Schedule:
    """Enable a schedule."""
    return get_service().set_schedule_enabled(name, True)


def disable_schedule(name: str) -> Schedule:
    """Disable a schedule: it does not fire until enabled again."""
    return get_service().set_schedule_enabled(name, False)
