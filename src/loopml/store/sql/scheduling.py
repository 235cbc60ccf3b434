"""SQL implementation of the scheduling store (SQLite and PostgreSQL).

Claims are plain inserts under a primary key, so the database decides which of several
schedulers fires: the loser gets an :class:`~sqlalchemy.exc.IntegrityError` and ``False``.
Leases and fenced event inserts read the lock row ``FOR UPDATE`` (PostgreSQL); on SQLite every
write transaction is ``BEGIN IMMEDIATE`` and therefore serialized already.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.entities.pipelines import Event, Schedule, Trigger
from loopml.errors import Conflict, NotFound
from loopml.store.sql._base import SqlStoreBase, now_ms
from loopml.store.sql.models import (
    EventRow,
    LockRow,
    ScheduleFireRow,
    ScheduleRow,
    TriggerFireRow,
    TriggerRow,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _key(payload: dict[str, Any], fields: Sequence[str]) -> str:
    return _dumps([payload.get(f) for f in fields])


class SqlSchedulingStore(SqlStoreBase):
    """Schedules, triggers, events, their firings and named leases in SQL."""

    def _insert_named(self, model: Any, what: str, values: dict[str, Any]) -> None:
        try:
            with self._write() as conn:
                conn.execute(insert(model).values(enabled=True, **values))
        except IntegrityError as exc:
            raise Conflict(f"{what} {values['name']!r} already exists", field="name") from exc

    def _set_run(self, fire_key: Any, key: Any, value: int, second: int, run_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(fire_key.table)
                .where(fire_key == value, key == second)
                .values(pipeline_run_id=run_id)
            )

    def _fires(self, fire_key: Any, order: Any, value: int, limit: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                select(fire_key.table).where(fire_key == value).order_by(order.desc()).limit(limit)
            ).all()
        return [dict(r._mapping) for r in rows]

    def _delete(self, model: Any, fire_key: Any, name: str, what: str) -> None:
        with self._write() as conn:
            row_id = conn.execute(select(model.id).where(model.name == name)).scalar()
            if row_id is None:
                raise NotFound(f"{what} {name!r} does not exist", field="name")
            # Firings go too (the foreign keys cascade as well, where they are enforced).
            conn.execute(delete(fire_key.table).where(fire_key == row_id))
            conn.execute(delete(model).where(model.id == row_id))

    # -- schedules ----------------------------------------------------------------------
    @staticmethod
    def _schedule(row: Any) -> Schedule:
        return Schedule(
            id=row.id,
            name=row.name,
            pipeline_ref=row.pipeline_ref,
            cron=row.cron,
            params=json.loads(row.params_json),
            catchup=bool(row.catchup),
            enabled=bool(row.enabled),
            created_time=row.created_time,
            last_fire_time=row.last_fire_time,
        )

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
        """Record an enabled schedule firing after ``created_time`` (epoch ms, now by default).

        Raises :class:`Conflict` if the name is taken.
        """
        values = {"name": name, "pipeline_ref": pipeline_ref, "cron": cron, "catchup": catchup}
        created = now_ms() if created_time is None else created_time
        self._insert_named(
            ScheduleRow,
            "schedule",
            {**values, "params_json": _dumps(params), "created_time": created},
        )
        return self.get_schedule(name)

    def list_schedules(self) -> list[Schedule]:
        """Return every schedule, by name."""
        with self._read() as conn:
            rows = conn.execute(select(ScheduleRow).order_by(ScheduleRow.name)).all()
        return [self._schedule(r) for r in rows]

    def get_schedule(self, name: str) -> Schedule:
        """Return a schedule or raise :class:`NotFound`."""
        with self._read() as conn:
            row = conn.execute(select(ScheduleRow).where(ScheduleRow.name == name)).first()
        if row is None:
            raise NotFound(f"schedule {name!r} does not exist", field="name")
        return self._schedule(row)

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule and its firings; :class:`NotFound` if it does not exist."""
        self._delete(ScheduleRow, ScheduleFireRow.schedule_id, name, "schedule")

    def set_schedule_enabled(self, name: str, enabled: bool) -> Schedule:
        """Enable or disable a schedule and return it."""
        with self._write() as conn:
            result = conn.execute(
                update(ScheduleRow).where(ScheduleRow.name == name).values(enabled=enabled)
            )
        if result.rowcount == 0:
            raise NotFound(f"schedule {name!r} does not exist", field="name")
        return self.get_schedule(name)

    def claim_schedule_fire(self, schedule_id: int, fire_time: int, owner: str) -> bool:
        """Claim the firing of a schedule at ``fire_time`` (epoch ms) and make it the last.

        True for exactly one caller per (schedule, fire time); False when another caller
        claimed it, a later time was fired already, or the schedule is gone or disabled.
        """
        try:
            with self._write() as conn:
                row = conn.execute(
                    select(ScheduleRow.last_fire_time, ScheduleRow.enabled)
                    .where(ScheduleRow.id == schedule_id)
                    .with_for_update()
                ).first()
                if row is None or not row.enabled:
                    return False
                if row.last_fire_time is not None and fire_time <= row.last_fire_time:
                    return False
                conn.execute(
                    insert(ScheduleFireRow).values(
                        schedule_id=schedule_id,
                        fire_time=fire_time,
                        fired_at=now_ms(),
                        owner=owner,
                        pipeline_run_id=None,
                    )
                )
                conn.execute(
                    update(ScheduleRow)
                    .where(ScheduleRow.id == schedule_id)
                    .values(last_fire_time=fire_time)
                )
        except IntegrityError:
            return False
        return True

    def set_schedule_fire_run(self, schedule_id: int, fire_time: int, pipeline_run_id: str) -> None:
        """Record which pipeline run a schedule firing started."""
        keys = (ScheduleFireRow.schedule_id, ScheduleFireRow.fire_time)
        self._set_run(*keys, schedule_id, fire_time, pipeline_run_id)

    def list_schedule_fires(self, schedule_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Return a schedule's firings (fire time, fired at, owner, run id), newest first."""
        key = ScheduleFireRow.schedule_id
        return self._fires(key, ScheduleFireRow.fire_time, schedule_id, limit)

    # -- triggers -----------------------------------------------------------------------
    def create_trigger(
        self,
        name: str,
        pipeline_ref: str,
        event_kind: str,
        match: dict[str, Any],
        params: dict[str, Any],
    ) -> Trigger:
        """Record an enabled trigger; :class:`Conflict` if the name is taken."""
        values = {"name": name, "pipeline_ref": pipeline_ref, "event_kind": event_kind}
        jsons = {"match_json": _dumps(match), "params_json": _dumps(params)}
        self._insert_named(TriggerRow, "trigger", {**values, **jsons, "created_time": now_ms()})
        return self.get_trigger(name)

    @staticmethod
    def _trigger_query() -> Any:
        last = (
            select(TriggerFireRow.trigger_id, func.max(TriggerFireRow.event_id).label("last"))
            .group_by(TriggerFireRow.trigger_id)
            .subquery()
        )
        return select(TriggerRow, last.c.last).outerjoin(last, last.c.trigger_id == TriggerRow.id)

    @staticmethod
    def _trigger(row: Any) -> Trigger:
        return Trigger(
            id=row.id,
            name=row.name,
            pipeline_ref=row.pipeline_ref,
            event_kind=row.event_kind,
            match=json.loads(row.match_json),
            params=json.loads(row.params_json),
            enabled=bool(row.enabled),
            created_time=row.created_time,
            last_event_id=row.last or 0,
        )

    def list_triggers(self) -> list[Trigger]:
        """Return every trigger, by name; ``last_event_id`` is the last event it fired on."""
        with self._read() as conn:
            rows = conn.execute(self._trigger_query().order_by(TriggerRow.name)).all()
        return [self._trigger(r) for r in rows]

    def get_trigger(self, name: str) -> Trigger:
        """Return a trigger or raise :class:`NotFound`."""
        with self._read() as conn:
            row = conn.execute(self._trigger_query().where(TriggerRow.name == name)).first()
        if row is None:
            raise NotFound(f"trigger {name!r} does not exist", field="name")
        return self._trigger(row)

    def delete_trigger(self, name: str) -> None:
        """Delete a trigger and its firings; :class:`NotFound` if it does not exist."""
        self._delete(TriggerRow, TriggerFireRow.trigger_id, name, "trigger")

    def claim_trigger_fire(self, trigger_id: int, event_id: int, owner: str) -> bool:
        """Claim a trigger's reaction to an event: True for exactly one caller.

        False when another caller claimed it or the trigger is gone or disabled.
        """
        try:
            with self._write() as conn:
                enabled = conn.execute(
                    select(TriggerRow.enabled).where(TriggerRow.id == trigger_id)
                ).scalar()
                if not enabled:
                    return False
                conn.execute(
                    insert(TriggerFireRow).values(
                        trigger_id=trigger_id,
                        event_id=event_id,
                        fired_at=now_ms(),
                        owner=owner,
                        pipeline_run_id=None,
                    )
                )
        except IntegrityError:
            return False
        return True

    def set_trigger_fire_run(self, trigger_id: int, event_id: int, pipeline_run_id: str) -> None:
        """Record which pipeline run a trigger firing started."""
        keys = (TriggerFireRow.trigger_id, TriggerFireRow.event_id)
        self._set_run(*keys, trigger_id, event_id, pipeline_run_id)

    def list_trigger_fires(self, trigger_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Return a trigger's firings (event id, fired at, owner, run id), newest first."""
        key = TriggerFireRow.trigger_id
        return self._fires(key, TriggerFireRow.event_id, trigger_id, limit)

    # -- events -------------------------------------------------------------------------
    @staticmethod
    def _insert_event(conn: Connection, kind: str, payload: dict[str, Any]) -> Event:
        created = now_ms()
        event_id = conn.execute(
            insert(EventRow)
            .values(kind=kind, payload_json=_dumps(payload), created_time=created)
            .returning(EventRow.id)
        ).scalar_one()
        return Event(id=event_id, kind=kind, payload=payload, created_time=created)

    def add_event(self, kind: str, payload: dict[str, Any]) -> Event:
        """Record an event and return it with its id."""
        with self._write() as conn:
            return self._insert_event(conn, kind, payload)

    def add_unique_events(
        self,
        kind: str,
        payloads: Sequence[dict[str, Any]],
        unique_on: Sequence[str],
        *,
        lease: tuple[str, str],
        now: float | None = None,
    ) -> list[Event]:
        """Record the payloads that no stored event of ``kind`` matches on ``unique_on``.

        The lease (lock name, owner) is checked in the same transaction, so a scheduler
        that lost it records nothing: :class:`Conflict` when it is not held at ``now``
        (epoch seconds, the current time by default).
        """
        now_at = int((time.time() if now is None else now) * 1000)
        name, owner = lease
        with self._write() as conn:
            holder = conn.execute(
                select(LockRow.owner, LockRow.expires_time)
                .where(LockRow.name == name)
                .with_for_update()
            ).first()
            if holder is None or holder.owner != owner or holder.expires_time <= now_at:
                raise Conflict(f"lease {name!r} is not held by {owner!r}", field="owner")
            seen = {
                _key(json.loads(payload_json), unique_on)
                for payload_json in conn.execute(
                    select(EventRow.payload_json).where(EventRow.kind == kind)
                ).scalars()
            }
            added: list[Event] = []
            for payload in payloads:
                key = _key(payload, unique_on)
                if key not in seen:
                    seen.add(key)
                    added.append(self._insert_event(conn, kind, payload))
        return added

    def list_events(
        self,
        after_id: int = 0,
        kind: str | None = None,
        limit: int = 1000,
        *,
        since_time: int | None = None,
    ) -> list[Event]:
        """Return events with an id above ``after_id`` (created from ``since_time`` ms on)."""
        query = select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id).limit(limit)
        if kind is not None:
            query = query.where(EventRow.kind == kind)
        if since_time is not None:
            query = query.where(EventRow.created_time >= since_time)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [Event(r.id, r.kind, json.loads(r.payload_json), r.created_time) for r in rows]

    # -- leases -------------------------------------------------------------------------
    def acquire_lock(
        self, name: str, owner: str, ttl_seconds: float, *, now: float | None = None
    ) -> bool:
        """Take or renew the lease ``name`` until ``ttl_seconds`` after ``now`` (epoch s).

        True when it was free, expired or already ``owner``'s; False while another owner
        holds it.
        """
        now_at = int((time.time() if now is None else now) * 1000)
        expires = now_at + int(ttl_seconds * 1000)
        try:
            with self._write() as conn:
                row = conn.execute(
                    select(LockRow.owner, LockRow.expires_time)
                    .where(LockRow.name == name)
                    .with_for_update()
                ).first()
                if row is None:
                    conn.execute(
                        insert(LockRow).values(name=name, owner=owner, expires_time=expires)
                    )
                    return True
                if row.owner != owner and row.expires_time > now_at:
                    return False
                conn.execute(
                    update(LockRow)
                    .where(LockRow.name == name)
                    .values(owner=owner, expires_time=expires)
                )
        except IntegrityError:
            # Another process inserted the lock row first (PostgreSQL): it holds the lease.
            return False
        return True

    def release_lock(self, name: str, owner: str) -> None:
        """Give the lease ``name`` up if ``owner`` holds it."""
        with self._write() as conn:
            conn.execute(delete(LockRow).where(LockRow.name == name, LockRow.owner == owner))
