"""SQL store of feature-store definitions (entities, feature views, feature services).

A definition version is stored only when it differs from the latest one, so applying the
same definitions twice is a no-op.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, func, insert, select

from loopml.errors import NotFound
from loopml.store.features_base import FeatureDefinitionRecord, FeatureWatermark
from loopml.store.sql._base import SqlStoreBase, now_ms
from loopml.store.sql.models import FeatureDefinitionRow, FeatureWatermarkRow


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _record(row: Any) -> FeatureDefinitionRecord:
    return FeatureDefinitionRecord(
        kind=row.kind,
        name=row.name,
        version=row.version,
        definition=json.loads(row.definition_json),
        created_time=row.created_time,
    )


class SqlFeatureStore(SqlStoreBase):
    """Feature-store definitions in SQL (SQLite or PostgreSQL)."""

    def put_feature_definition(
        self, kind: str, name: str, definition: dict[str, Any]
    ) -> tuple[FeatureDefinitionRecord, bool]:
        """Store ``definition`` as the next version unless it equals the latest.

        Raises
        ------
        Conflict
            When concurrent writers keep taking the next version number.
        """
        text = _dumps(definition)
        created = now_ms()
        unchanged, number = self._put_next_version(
            FeatureDefinitionRow,
            {"kind": kind, "name": name},
            text,
            created,
            what=f"{kind} {name!r}",
        )
        if unchanged is not None:
            return _record(unchanged), False
        return FeatureDefinitionRecord(kind, name, number, json.loads(text), created), True

    def get_feature_definition(
        self, kind: str, name: str, version: int | None = None
    ) -> FeatureDefinitionRecord:
        """Return one version (the latest by default) or raise :class:`NotFound`."""
        query = (
            select(FeatureDefinitionRow)
            .where(FeatureDefinitionRow.kind == kind)
            .where(FeatureDefinitionRow.name == name)
        )
        if version is None:
            query = query.order_by(FeatureDefinitionRow.version.desc()).limit(1)
        else:
            query = query.where(FeatureDefinitionRow.version == version)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            label = kind.replace("_", " ")
            if version is not None:
                raise NotFound(f"{label} {name!r} has no version {version}", field="version")
            raise NotFound(f"{label} {name!r} does not exist", field="name")
        return _record(row)

    def list_feature_definitions(self, kind: str | None = None) -> list[FeatureDefinitionRecord]:
        """Return the latest version of every definition, by kind and name."""
        latest = (
            select(
                FeatureDefinitionRow.kind,
                FeatureDefinitionRow.name,
                func.max(FeatureDefinitionRow.version).label("version"),
            )
            .group_by(FeatureDefinitionRow.kind, FeatureDefinitionRow.name)
            .subquery()
        )
        query = select(FeatureDefinitionRow).join(
            latest,
            (FeatureDefinitionRow.kind == latest.c.kind)
            & (FeatureDefinitionRow.name == latest.c.name)
            & (FeatureDefinitionRow.version == latest.c.version),
        )
        if kind is not None:
            query = query.where(FeatureDefinitionRow.kind == kind)
        with self._read() as conn:
            rows = conn.execute(
                query.order_by(FeatureDefinitionRow.kind, FeatureDefinitionRow.name)
            ).all()
        return [_record(row) for row in rows]

    def list_feature_definition_versions(
        self, kind: str, name: str
    ) -> list[FeatureDefinitionRecord]:
        """Return every version of one definition, oldest first (:class:`NotFound` if none)."""
        with self._read() as conn:
            rows = conn.execute(
                select(FeatureDefinitionRow)
                .where(FeatureDefinitionRow.kind == kind)
                .where(FeatureDefinitionRow.name == name)
                .order_by(FeatureDefinitionRow.version)
            ).all()
        if not rows:
            raise NotFound(f"{kind.replace('_', ' ')} {name!r} does not exist", field="name")
        return [_record(row) for row in rows]

    def get_feature_watermark(self, view: str, target: str) -> FeatureWatermark | None:
        """Return the committed watermark, ``None`` when the view was never materialized."""
        with self._read() as conn:
            row = conn.execute(
                select(FeatureWatermarkRow)
                .where(FeatureWatermarkRow.view == view)
                .where(FeatureWatermarkRow.target == target)
            ).first()
        if row is None:
            return None
        return FeatureWatermark(
            row.view, row.target, row.view_version, row.watermark, row.updated_time
        )

    def set_feature_watermark(
        self, view: str, target: str, view_version: int, watermark: int
    ) -> FeatureWatermark:
        """Store (insert or replace) the watermark of ``view`` in ``target``, atomically."""
        updated = now_ms()
        # Delete then insert in one transaction: portable across SQLite and PostgreSQL.
        with self._write() as conn:
            conn.execute(
                delete(FeatureWatermarkRow)
                .where(FeatureWatermarkRow.view == view)
                .where(FeatureWatermarkRow.target == target)
            )
            conn.execute(
                insert(FeatureWatermarkRow).values(
                    view=view,
                    target=target,
                    view_version=view_version,
                    watermark=watermark,
                    updated_time=updated,
                )
            )
        return FeatureWatermark(view, target, view_version, watermark, updated)
