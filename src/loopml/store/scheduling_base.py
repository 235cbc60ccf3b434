"""The store interface of schedules, triggers, events and the scheduler's lease.

Exactly-once firing rests on three guarantees every backend gives:

* :meth:`SchedulingStore.claim_schedule_fire` and :meth:`SchedulingStore.claim_trigger_fire`
  insert a row under a unique key, so of several callers claiming the same firing exactly one
  gets ``True``;
* :meth:`SchedulingStore.acquire_lock` is an atomic compare-and-set on a named lease, so at
  most one scheduler is active at a time;
* :meth:`SchedulingStore.add_unique_events` checks the lease and deduplicates in the same
  transaction, so derived events (a new dataset version) are recorded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from loopml.entities.pipelines import Event, Schedule, Trigger


@runtime_checkable
class SchedulingStore(Protocol):
    """Persists schedules, triggers, events, their firings and named leases."""

    # -- schedules ----------------------------------------------------------------------
    def create_schedule(
        self,
        name: str,
        pipeline_ref: str,
        cron: str,
        params: dict[str, Any],
        catchup: bool,
        *,
        created_time: int | None = None,
    ) -> Schedule:
        """Record a schedule; :class:`Conflict` if the name is taken."""
        ...

    def list_schedules(self) -> list[Schedule]:
        """Return every schedule, by name."""
        ...

    def get_schedule(self, name: str) -> Schedule:
        """Return a schedule or raise :class:`NotFound`."""
        ...

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule and its firings; :class:`NotFound` if it does not exist."""
        ...

    def set_schedule_enabled(self, name: str, enabled: bool) -> Schedule:
        """Enable or disable a schedule and return it."""
        ...

    def claim_schedule_fire(self, schedule_id: int, fire_time: int, owner: str) -> bool:
        """Claim the firing of a schedule at ``fire_time`` (epoch ms); False if taken."""
        ...

    def set_schedule_fire_run(self, schedule_id: int, fire_time: int, pipeline_run_id: str) -> None:
        """Record which pipeline run a schedule firing started."""
        ...

    def list_schedule_fires(self, schedule_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Return a schedule's firings, newest first."""
        ...

    # -- triggers and events ------------------------------------------------------------
    def create_trigger(
        self,
        name: str,
        pipeline_ref: str,
        event_kind: str,
        match: dict[str, Any],
        params: dict[str, Any],
    ) -> Trigger:
        """Record a trigger; :class:`Conflict` if the name is taken."""
        ...

    def list_triggers(self) -> list[Trigger]:
        """Return every trigger, by name."""
        ...

    def get_trigger(self, name: str) -> Trigger:
        """Return a trigger or raise :class:`NotFound`."""
        ...

    def delete_trigger(self, name: str) -> None:
        """Delete a trigger and its firings; :class:`NotFound` if it does not exist."""
        ...

    def add_event(self, kind: str, payload: dict[str, Any]) -> Event:
        """Record an event and return it with its id."""
        ...

    def add_unique_events(
        self,
        kind: str,
        payloads: Sequence[dict[str, Any]],
        unique_on: Sequence[str],
        *,
        lease: tuple[str, str],
        now: float | None = None,
    ) -> list[Event]:
        """Record the payloads no stored event of ``kind`` matches on ``unique_on``.

        Raises :class:`Conflict` when ``lease`` (name, owner) is not held at ``now``
        (epoch seconds).
        """
        ...

    def list_events(
        self,
        after_id: int = 0,
        kind: str | None = None,
        limit: int = 1000,
        *,
        since_time: int | None = None,
    ) -> list[Event]:
        """Return events with an id above ``after_id``, oldest first."""
        ...

    def claim_trigger_fire(self, trigger_id: int, event_id: int, owner: str) -> bool:
        """Claim a trigger's reaction to an event; False if taken."""
        ...

    def set_trigger_fire_run(self, trigger_id: int, event_id: int, pipeline_run_id: str) -> None:
        """Record which pipeline run a trigger firing started."""
        ...

    def list_trigger_fires(self, trigger_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Return a trigger's firings, newest first."""
        ...

    # -- leases -------------------------------------------------------------------------
    def acquire_lock(
        self, name: str, owner: str, ttl_seconds: float, *, now: float | None = None
    ) -> bool:
        """Take or renew a lease: True if it was free, expired or already ``owner``'s."""
        ...

    def release_lock(self, name: str, owner: str) -> None:
        """Give a lease up if ``owner`` holds it."""
        ...
