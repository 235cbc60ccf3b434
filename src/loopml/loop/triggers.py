"""Trigger occurrences: which cron times, dataset versions and events fire a policy.

Each occurrence has a key unique to it (``cron:<expr>@<time>``, ``data:<name>@vN``,
``event:<id>``) under which the controller claims it, so it is acted on exactly once. Only
what happens after the policy's first version counts; ``drift`` and ``degradation`` events
count when they come from a monitor of the policy's model and pass the trigger's threshold.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import InvalidInput, NotFound
from loopml.loop.service import MANUAL_EVENT
from loopml.store.scheduling_base import SchedulingStore

__all__ = ["Occurrence", "monitor_match", "pending"]

#: Events younger than this (ms) are read again next pass (late commits on PostgreSQL).
_EVENT_SETTLE_MS = 10_000
_EVENT_BATCH = 1000
_MONITOR_KINDS = ("drift", "degradation")


@dataclass(frozen=True)
class Occurrence:
    """One reason to retrain: a trigger of the policy that fired, and when."""

    key: str
    trigger: dict[str, Any]
    time: float
    details: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        """The trigger as loop events show it."""
        return {"trigger": {**self.trigger, **self.details, "key": self.key}}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def monitor_match(trigger: dict[str, Any], model: str, payload: dict[str, Any]) -> bool:
    """Whether a ``drift`` or ``degradation`` event payload fires a policy trigger."""
    if payload.get("model") != model or payload.get("status", "firing") != "firing":
        return False
    if trigger.get("monitor") and payload.get("monitor") != trigger["monitor"]:
        return False
    if trigger["type"] == "drift":
        check = payload.get("check")
        share = _number(payload.get("share"))
        if share is None and check in ("drift_share", "dataset_drift"):
            share = _number(payload.get("value"))
        return share is None or share >= trigger["share"]
    metric = trigger["metric"]
    if metric not in (payload.get("check"), payload.get("rule"), payload.get("metric")):
        return False
    drop = _number(payload.get("drop"))
    if drop is None:
        value, baseline = _number(payload.get("value")), _number(payload.get("baseline"))
        if value is None or baseline is None:
            return True  # the monitor's rule fired without a baseline: that is the signal
        from loopml.training.gate import higher_is_better

        try:
            higher = higher_is_better(metric)
        except InvalidInput:
            higher = True
        drop = baseline - value if higher else value - baseline
    return bool(drop >= float(trigger["drop"]))


def pending(
    events: SchedulingStore,
    name: str,
    definition: dict[str, Any],
    state: dict[str, Any],
    now: float,
) -> tuple[list[Occurrence], dict[str, Any]]:
    """The occurrences of a policy's triggers since its state was saved, oldest first.

    Parameters
    ----------
    events : SchedulingStore
        Where trigger events are read.
    name, definition : str, dict
        The policy.
    state : dict
        The controller's state of the policy (``since``, ``cursor``, ``cron``, ``data``).
    now : float
        The controller's clock (epoch seconds).

    Returns
    -------
    (list of Occurrence, dict)
        The occurrences, and the cursors to save once they are all handled.
    """
    progress: dict[str, Any] = {"cursor": state["cursor"], "cron": {}, "data": {}}
    found: list[Occurrence] = []
    for trigger in definition["triggers"]:
        if trigger["type"] == "cron":
            found += _cron(trigger, state, now, progress)
        elif trigger["type"] == "new_data":
            found += _new_data(trigger, definition["data"], state, progress)
    found += _events(events, name, definition, state, progress)
    return sorted(found, key=lambda o: o.time), progress


def _cron(
    trigger: dict[str, Any], state: dict[str, Any], now: float, progress: dict[str, Any]
) -> list[Occurrence]:
    from loopml.pipelines.triggers import due_fire_times, iso_utc

    expression = trigger["cron"]
    # From the policy's creation on; a controller clock set in the past (a replay) starts
    # from its own now instead.
    last = float(state["cron"].get(expression, min(state["since"] / 1000, now)))
    times, skipped = due_fire_times(expression, last, now, catchup=False)
    progress["cron"][expression] = max(last, now)
    return [
        Occurrence(
            f"cron:{expression}@{iso_utc(moment)}",
            trigger,
            moment,
            {"fire_time": iso_utc(moment), "missed": skipped},
        )
        for moment in times
    ]


def _new_data(
    trigger: dict[str, Any],
    default: str,
    state: dict[str, Any],
    progress: dict[str, Any],
) -> list[Occurrence]:
    from loopml import datasets

    name = trigger.get("dataset") or default
    try:
        versions = datasets.get_service().list_versions(name)
    except NotFound:
        return []
    seen = state["data"].get(name)
    if seen is None:
        # Versions registered before the policy existed are not news.
        old = [v.version for v in versions if v.created_time <= state["since"]]
        seen = max(old, default=0)
    fresh = [v for v in versions if v.version > seen]
    progress["data"][name] = max([seen, *(v.version for v in fresh)])
    return [
        Occurrence(
            f"data:{v.uri}",
            trigger,
            v.created_time / 1000,
            {"dataset": v.uri, "rows": v.num_rows},
        )
        for v in fresh
    ]


def _events(
    store: SchedulingStore,
    name: str,
    definition: dict[str, Any],
    state: dict[str, Any],
    progress: dict[str, Any],
) -> list[Occurrence]:
    monitors = [t for t in definition["triggers"] if t["type"] in _MONITOR_KINDS]
    manual = next((t for t in definition["triggers"] if t["type"] == "manual"), None)
    if not monitors and manual is None:
        return []
    settled_before = int(time.time() * 1000) - _EVENT_SETTLE_MS
    cursor, advancing = int(state["cursor"]), True
    found: list[Occurrence] = []
    for event in store.list_events(
        after_id=cursor, limit=_EVENT_BATCH, since_time=int(state["since"])
    ):
        details = {"event_id": event.id, "event_kind": event.kind}
        if event.kind == MANUAL_EVENT and manual is not None:
            if event.payload.get("policy") == name:
                details.update(reason=event.payload.get("reason"), force=event.payload.get("force"))
                found.append(
                    Occurrence(f"event:{event.id}", manual, event.created_time / 1000, details)
                )
        elif event.kind in _MONITOR_KINDS:
            for trigger in monitors:
                if trigger["type"] == event.kind and monitor_match(
                    trigger, definition["model"], event.payload
                ):
                    payload = {
                        k: event.payload.get(k)
                        for k in (
                            "monitor",
                            "check",
                            "value",
                            "baseline",
                            "threshold",
                            "message",
                        )
                        if event.payload.get(k) is not None
                    }
                    found.append(
                        Occurrence(
                            f"event:{event.id}",
                            trigger,
                            event.created_time / 1000,
                            {**details, **payload},
                        )
                    )
                    break
        advancing = advancing and event.created_time < settled_before
        if advancing:
            cursor = event.id
    progress["cursor"] = cursor
    return found
