"""SQL store of continuous-training policies, loop events, trigger claims and loop state.

A policy version is stored only when its definition differs from the latest one, so
applying the same policy twice is a no-op. Claims are plain inserts under a primary key: of
several controllers claiming one trigger occurrence exactly one gets ``True``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.errors import Conflict, NotFound
from loopml.store.loop_base import LoopEvent, LoopPolicyRecord
from loopml.store.sql._base import SqlStoreBase, from_row, now_ms
from loopml.store.sql.models import LoopClaimRow, LoopEventRow, LoopPolicyRow, LoopStateRow

_ATTEMPTS = 5


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class SqlLoopStore(SqlStoreBase):
    """Policies, loop events, claims and controller state in SQL (SQLite or PostgreSQL)."""

    # -- policies -----------------------------------------------------------------------
    def put_loop_policy(
        self, name: str, definition: dict[str, Any], *, time: int | None = None
    ) -> tuple[LoopPolicyRecord, bool]:
        """Store ``definition`` as the next version unless it equals the latest.

        Returns
        -------
        (LoopPolicyRecord, bool)
            The latest version and whether it was stored now.

        Raises
        ------
        Conflict
            When concurrent writers keep taking the next version number.
        """
        text = _dumps(definition)
        created = now_ms() if time is None else time
        unchanged, number = self._put_next_version(
            LoopPolicyRow, {"name": name}, text, created, what=f"policy {name!r}"
        )
        if unchanged is not None:
            return from_row(LoopPolicyRecord, unchanged), False
        return LoopPolicyRecord(name, number, json.loads(text), created), True

    def get_loop_policy(self, name: str, version: int | None = None) -> LoopPolicyRecord:
        """Return one version of a policy (the latest by default) or raise :class:`NotFound`."""
        query = select(LoopPolicyRow).where(LoopPolicyRow.name == name)
        if version is None:
            query = query.order_by(LoopPolicyRow.version.desc()).limit(1)
        else:
            query = query.where(LoopPolicyRow.version == version)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            if version is not None:
                self.get_loop_policy(name)
                raise NotFound(f"policy {name!r} has no version {version}", field="version")
            raise NotFound(f"loop policy {name!r} does not exist", field="name")
        return from_row(LoopPolicyRecord, row)

    def list_loop_policies(self) -> list[LoopPolicyRecord]:
        """Return the latest version of every policy, by name."""
        latest = (
            select(LoopPolicyRow.name, func.max(LoopPolicyRow.version).label("version"))
            .group_by(LoopPolicyRow.name)
            .subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(LoopPolicyRow)
                .join(
                    latest,
                    (LoopPolicyRow.name == latest.c.name)
                    & (LoopPolicyRow.version == latest.c.version),
                )
                .order_by(LoopPolicyRow.name)
            ).all()
        return [from_row(LoopPolicyRecord, row) for row in rows]

    def list_loop_policy_versions(self, name: str) -> list[LoopPolicyRecord]:
        """Return every version of a policy, oldest first (:class:`NotFound` if none)."""
        with self._read() as conn:
            rows = conn.execute(
                select(LoopPolicyRow)
                .where(LoopPolicyRow.name == name)
                .order_by(LoopPolicyRow.version)
            ).all()
        if not rows:
            raise NotFound(f"loop policy {name!r} does not exist", field="name")
        return [from_row(LoopPolicyRecord, row) for row in rows]

    def delete_loop_policy(self, name: str) -> None:
        """Delete a policy's versions, state and claims; its events stay as history."""
        with self._write() as conn:
            found = conn.execute(delete(LoopPolicyRow).where(LoopPolicyRow.name == name)).rowcount
            if not found:
                raise NotFound(f"loop policy {name!r} does not exist", field="name")
            conn.execute(delete(LoopStateRow).where(LoopStateRow.policy == name))
            conn.execute(delete(LoopClaimRow).where(LoopClaimRow.policy == name))

    # -- events -------------------------------------------------------------------------
    def add_loop_event(self, event: LoopEvent) -> LoopEvent:
        """Record an event; a zero ``time`` means now. Returns it with its id and time."""
        stamped = replace(event, time=event.time or now_ms(), id=None)
        with self._write() as conn:
            result = conn.execute(
                insert(LoopEventRow).values(
                    policy=stamped.policy,
                    policy_version=stamped.policy_version,
                    time=stamped.time,
                    kind=stamped.kind,
                    retrain=stamped.retrain,
                    evidence_json=_dumps(stamped.evidence),
                )
            )
            key = result.inserted_primary_key
        return replace(stamped, id=int(key[0]) if key else None)

    def list_loop_events(
        self,
        policy: str | None = None,
        *,
        limit: int = 50,
        kinds: Sequence[str] | None = None,
        retrain: str | None = None,
    ) -> list[LoopEvent]:
        """Return the last ``limit`` matching events, oldest first."""
        query = select(LoopEventRow).order_by(LoopEventRow.id.desc()).limit(limit)
        if policy is not None:
            query = query.where(LoopEventRow.policy == policy)
        if kinds:
            query = query.where(LoopEventRow.kind.in_(list(kinds)))
        if retrain is not None:
            query = query.where(LoopEventRow.retrain == retrain)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [from_row(LoopEvent, row) for row in reversed(rows)]

    # -- claims and state ---------------------------------------------------------------
    def claim_loop_trigger(self, policy: str, key: str, owner: str, time: int) -> bool:
        """Claim the reaction to one trigger occurrence; False if it was claimed before."""
        try:
            with self._write() as conn:
                conn.execute(
                    insert(LoopClaimRow).values(policy=policy, key=key, owner=owner, time=time)
                )
        except IntegrityError:
            return False
        return True

    def get_loop_state(self, policy: str) -> dict[str, Any]:
        """Return the controller's saved state of a policy ({} when none)."""
        with self._read() as conn:
            text = conn.execute(
                select(LoopStateRow.state_json).where(LoopStateRow.policy == policy)
            ).scalar()
        result: dict[str, Any] = json.loads(text) if text else {}
        return result

    def set_loop_state(self, policy: str, state: dict[str, Any], *, time: int) -> None:
        """Save the controller's state of a policy (insert or replace)."""
        text = _dumps(state)
        for _ in range(_ATTEMPTS):
            try:
                with self._write() as conn:
                    changed = conn.execute(
                        update(LoopStateRow)
                        .where(LoopStateRow.policy == policy)
                        .values(state_json=text, updated_time=time)
                    ).rowcount
                    if not changed:
                        conn.execute(
                            insert(LoopStateRow).values(
                                policy=policy, state_json=text, updated_time=time
                            )
                        )
                return
            except IntegrityError:
                continue  # inserted concurrently: update it instead
        raise Conflict(f"could not save the state of policy {policy!r}", field="policy")
