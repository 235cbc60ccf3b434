"""SQL deployment store: configuration revisions and the events of each deployment.

A new revision and its ``applied`` event commit together, so the history never shows a
revision nobody applied, nor an event for a revision that was not stored.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from loopml.errors import Conflict, NotFound
from loopml.store.base import DeploymentEvent, DeploymentRevision
from loopml.store.sql._base import SqlStoreBase, from_row, now_ms
from loopml.store.sql.models import DeploymentEventRow, DeploymentRow

_ATTEMPTS = 5


class SqlDeploymentStore(SqlStoreBase):
    """Deployment revisions and events in SQL (SQLite or PostgreSQL)."""

    def apply_deployment(self, name: str, config: dict[str, Any], user: str) -> DeploymentRevision:
        """Store ``config`` as the next revision of ``name``, with an ``applied`` event.

        Parameters
        ----------
        name : str
            The deployment name.
        config : dict
            The validated configuration, as JSON-able data.
        user : str
            Who applied it.

        Returns
        -------
        DeploymentRevision
            The stored revision.

        Raises
        ------
        Conflict
            When concurrent writers keep taking the next revision number.
        """
        for _ in range(_ATTEMPTS):
            try:
                return self._insert_revision(name, config, user)
            except IntegrityError:
                continue  # another writer took this revision number: number again
        raise Conflict(f"could not apply deployment {name!r}: concurrent writers", field="name")

    def _insert_revision(self, name: str, config: dict[str, Any], user: str) -> DeploymentRevision:
        now = now_ms()
        with self._write() as conn:
            number = (
                conn.execute(
                    select(func.max(DeploymentRow.revision)).where(DeploymentRow.name == name)
                ).scalar()
                or 0
            ) + 1
            conn.execute(
                insert(DeploymentRow).values(
                    name=name,
                    revision=number,
                    config_json=json.dumps(config, sort_keys=True),
                    user=user,
                    applied_at=now,
                )
            )
            self._insert_event(
                conn,
                DeploymentEvent(
                    deployment=name,
                    revision=number,
                    kind="applied",
                    evidence={"user": user},
                    time=now,
                ),
            )
        return DeploymentRevision(name, number, config, user, now)

    def get_deployment(self, name: str, revision: int | None = None) -> DeploymentRevision:
        """Return one revision of a deployment (the latest by default).

        Raises
        ------
        NotFound
            When the deployment, or that revision of it, does not exist.
        """
        with self._read() as conn:
            query = select(DeploymentRow).where(DeploymentRow.name == name)
            if revision is None:
                query = query.order_by(DeploymentRow.revision.desc()).limit(1)
            else:
                query = query.where(DeploymentRow.revision == revision)
            row = conn.execute(query).first()
            if row is None:
                if revision is not None and self._exists(conn, name):
                    raise NotFound(
                        f"deployment {name!r} has no revision {revision}", field="revision"
                    )
                raise NotFound(f"deployment {name!r} does not exist", field="name")
            return from_row(DeploymentRevision, row)

    @staticmethod
    def _exists(conn: Connection, name: str) -> bool:
        found = conn.execute(
            select(DeploymentRow.name).where(DeploymentRow.name == name).limit(1)
        ).first()
        return found is not None

    def list_deployments(self) -> list[DeploymentRevision]:
        """Return the latest revision of every deployment, by name."""
        latest = (
            select(DeploymentRow.name, func.max(DeploymentRow.revision).label("revision"))
            .group_by(DeploymentRow.name)
            .subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(DeploymentRow)
                .join(
                    latest,
                    (DeploymentRow.name == latest.c.name)
                    & (DeploymentRow.revision == latest.c.revision),
                )
                .order_by(DeploymentRow.name)
            ).all()
        return [from_row(DeploymentRevision, row) for row in rows]

    def list_deployment_revisions(self, name: str) -> list[DeploymentRevision]:
        """Return every revision of a deployment, oldest first (:class:`NotFound` if none)."""
        with self._read() as conn:
            rows = conn.execute(
                select(DeploymentRow)
                .where(DeploymentRow.name == name)
                .order_by(DeploymentRow.revision)
            ).all()
        if not rows:
            raise NotFound(f"deployment {name!r} does not exist", field="name")
        return [from_row(DeploymentRevision, row) for row in rows]

    @staticmethod
    def _insert_event(conn: Connection, event: DeploymentEvent) -> int:
        result = conn.execute(
            insert(DeploymentEventRow).values(
                deployment=event.deployment,
                revision=event.revision,
                time=event.time,
                kind=event.kind,
                variant=event.variant,
                from_version=event.from_version,
                to_version=event.to_version,
                evidence_json=json.dumps(event.evidence, sort_keys=True, default=str),
            )
        )
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def add_deployment_event(self, event: DeploymentEvent) -> DeploymentEvent:
        """Record an event; a zero ``time`` means now. Returns it with its id and time."""
        stamped = replace(event, time=event.time or now_ms(), id=None)
        with self._write() as conn:
            event_id = self._insert_event(conn, stamped)
        return replace(stamped, id=event_id)

    def list_deployment_events(self, name: str, limit: int | None = None) -> list[DeploymentEvent]:
        """Return a deployment's events oldest first; with ``limit`` only the newest ones."""
        query = (
            select(DeploymentEventRow)
            .where(DeploymentEventRow.deployment == name)
            .order_by(DeploymentEventRow.id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [from_row(DeploymentEvent, row) for row in reversed(rows)]
