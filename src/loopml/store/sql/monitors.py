"""SQL store of monitors, their runs, reference sketches and alert state."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.errors import NotFound
from loopml.store.base import AlertRecord, MonitorRecord, MonitorRunRecord
from loopml.store.sql._base import SqlStoreBase, from_row, now_ms
from loopml.store.sql._upsert import upsert
from loopml.store.sql.models import (
    MonitorAlertRow,
    MonitorReferenceRow,
    MonitorRow,
    MonitorRunRow,
)

FIRING, RESOLVED = "firing", "resolved"


def _dumps(value: Any) -> str:
    # allow_nan keeps NaN metrics round-tripping; both databases store the text as is.
    return json.dumps(value, separators=(",", ":"), default=str)


def _alert(row: Any) -> AlertRecord:
    # ``check`` is a reserved word in SQL, hence the column's other name.
    return from_row(AlertRecord, row, check=row.check_name)


class SqlMonitorStore(SqlStoreBase):
    """Monitors, monitor runs, reference sketches and alerts in SQL."""

    # -- monitors -----------------------------------------------------------------------
    def save_monitor(self, name: str, model: str, spec: dict[str, Any]) -> MonitorRecord:
        """Create or replace a monitor (its creation time is kept on replace)."""
        now = now_ms()
        with self._write() as conn:
            upsert(
                conn,
                MonitorRow,
                [
                    {
                        "name": name,
                        "model": model,
                        "spec_json": _dumps(spec),
                        "created_time": now,
                        "last_update_time": now,
                    }
                ],
                keys=["name"],
                update=["model", "spec_json", "last_update_time"],
            )
            row = conn.execute(select(MonitorRow).where(MonitorRow.name == name)).one()
            return from_row(MonitorRecord, row)

    def get_monitor(self, name: str) -> MonitorRecord:
        """Return a monitor or raise :class:`NotFound`."""
        with self._read() as conn:
            row = conn.execute(select(MonitorRow).where(MonitorRow.name == name)).first()
        if row is None:
            raise NotFound(f"monitor {name!r} does not exist", field="monitor")
        return from_row(MonitorRecord, row)

    def list_monitors(self, model: str | None = None) -> list[MonitorRecord]:
        """Return every monitor, or those of one model, by name."""
        query = select(MonitorRow).order_by(MonitorRow.name)
        if model is not None:
            query = query.where(MonitorRow.model == model)
        with self._read() as conn:
            return [from_row(MonitorRecord, row) for row in conn.execute(query).all()]

    def delete_monitor(self, name: str) -> None:
        """Delete a monitor with its runs and alerts; :class:`NotFound` if it is unknown."""
        with self._write() as conn:
            gone = conn.execute(delete(MonitorRow).where(MonitorRow.name == name)).rowcount
            if not gone:
                raise NotFound(f"monitor {name!r} does not exist", field="monitor")
            conn.execute(delete(MonitorRunRow).where(MonitorRunRow.monitor == name))
            conn.execute(delete(MonitorAlertRow).where(MonitorAlertRow.monitor == name))

    # -- runs ---------------------------------------------------------------------------
    def add_monitor_run(
        self,
        monitor: str,
        model: str,
        version: int | None,
        time: int,
        verdict: str,
        result: dict[str, Any],
    ) -> int:
        """Store one run's result and return its id."""
        with self._write() as conn:
            inserted = conn.execute(
                insert(MonitorRunRow)
                .values(
                    monitor=monitor,
                    model=model,
                    version=version,
                    time=time,
                    verdict=verdict,
                    result_json=_dumps(result),
                )
                .returning(MonitorRunRow.id)
            ).scalar_one()
            return int(inserted)

    def list_monitor_runs(self, monitor: str, limit: int = 20) -> list[MonitorRunRecord]:
        """Return the monitor's latest ``limit`` runs, newest first."""
        query = (
            select(MonitorRunRow)
            .where(MonitorRunRow.monitor == monitor)
            .order_by(MonitorRunRow.time.desc(), MonitorRunRow.id.desc())
            .limit(max(1, int(limit)))
        )
        with self._read() as conn:
            return [from_row(MonitorRunRecord, row) for row in conn.execute(query).all()]

    def latest_monitor_runs(self) -> list[MonitorRunRecord]:
        """Return the latest run of every monitor that has run, by monitor name."""
        latest = (
            select(func.max(MonitorRunRow.id).label("id"))
            .group_by(MonitorRunRow.monitor)
            .subquery()
        )
        query = (
            select(MonitorRunRow)
            .join(latest, MonitorRunRow.id == latest.c.id)
            .order_by(MonitorRunRow.monitor)
        )
        with self._read() as conn:
            return [from_row(MonitorRunRecord, row) for row in conn.execute(query).all()]

    # -- reference sketches -------------------------------------------------------------
    def get_reference_sketch(self, key: str) -> dict[str, Any] | None:
        """Return the sketch stored under ``key``, or None."""
        with self._read() as conn:
            text = conn.execute(
                select(MonitorReferenceRow.sketch_json).where(MonitorReferenceRow.key == key)
            ).scalar()
        if text is None:
            return None
        sketch: dict[str, Any] = json.loads(text)
        return sketch

    def put_reference_sketch(
        self, key: str, reference: str, features: list[str], sketch: dict[str, Any]
    ) -> None:
        """Store a sketch; when two runs race, the first one stored is kept."""
        try:
            with self._write() as conn:
                exists = conn.execute(
                    select(MonitorReferenceRow.key).where(MonitorReferenceRow.key == key)
                ).scalar()
                if exists is None:
                    conn.execute(
                        insert(MonitorReferenceRow).values(
                            key=key,
                            reference=reference,
                            features_json=_dumps(features),
                            sketch_json=_dumps(sketch),
                            created_time=now_ms(),
                        )
                    )
        except IntegrityError:
            return  # another process stored the same key first: it computed the same sketch

    # -- alerts -------------------------------------------------------------------------
    @staticmethod
    def _firing(conn: Connection, monitor: str, check: str) -> Any:
        return conn.execute(
            select(MonitorAlertRow)
            .where(
                MonitorAlertRow.monitor == monitor,
                MonitorAlertRow.check_name == check,
                MonitorAlertRow.state == FIRING,
            )
            .order_by(MonitorAlertRow.id)
            .limit(1)
        ).first()

    def fire_alert(
        self, monitor: str, model: str, check: str, value: float | None, message: str, time: int
    ) -> tuple[AlertRecord, bool]:
        """Return the check's firing alert (its value refreshed), or open one.

        Returns
        -------
        (AlertRecord, bool)
            The alert, and True when it was opened by this call (a new incident).
        """
        with self._write() as conn:
            row = self._firing(conn, monitor, check)
            if row is not None:
                conn.execute(
                    update(MonitorAlertRow)
                    .where(MonitorAlertRow.id == row.id)
                    .values(value=value, message=message)
                )
                created = False
                alert_id = row.id
            else:
                alert_id = conn.execute(
                    insert(MonitorAlertRow)
                    .values(
                        monitor=monitor,
                        model=model,
                        check_name=check,
                        state=FIRING,
                        value=value,
                        message=message,
                        fired_time=time,
                        resolved_time=None,
                    )
                    .returning(MonitorAlertRow.id)
                ).scalar_one()
                created = True
            current = conn.execute(
                select(MonitorAlertRow).where(MonitorAlertRow.id == alert_id)
            ).one()
            return _alert(current), created

    def resolve_alert(self, alert_id: int, time: int) -> AlertRecord:
        """Mark an alert resolved at ``time`` (a resolved alert is returned unchanged)."""
        with self._write() as conn:
            conn.execute(
                update(MonitorAlertRow)
                .where(MonitorAlertRow.id == alert_id, MonitorAlertRow.state == FIRING)
                .values(state=RESOLVED, resolved_time=time)
            )
            row = conn.execute(
                select(MonitorAlertRow).where(MonitorAlertRow.id == alert_id)
            ).first()
        if row is None:
            raise NotFound(f"alert {alert_id} does not exist", field="alert")
        return _alert(row)

    def list_alerts(
        self, monitor: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[AlertRecord]:
        """Return alerts, newest first, optionally of one monitor and in one state."""
        query = select(MonitorAlertRow).order_by(MonitorAlertRow.id.desc()).limit(max(1, limit))
        if monitor is not None:
            query = query.where(MonitorAlertRow.monitor == monitor)
        if state is not None:
            query = query.where(MonitorAlertRow.state == state)
        with self._read() as conn:
            return [_alert(row) for row in conn.execute(query).all()]
