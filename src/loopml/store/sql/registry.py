"""SQL model registry store: each change commits together with its audit row."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.entities.registry import AuditEntry, ModelVersion, RegisteredModel
from loopml.errors import Conflict, NotFound
from loopml.store.sql._base import SqlStoreBase, now_ms
from loopml.store.sql._upsert import upsert
from loopml.store.sql.models import (
    AuditRow,
    ModelAliasRow,
    ModelTagRow,
    ModelVersionRow,
    RegisteredModelRow,
)

_ATTEMPTS = 5


class SqlRegistryStore(SqlStoreBase):
    """Registered models, versions, aliases, tags and the audit trail in SQL."""

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _audit(
        conn: Connection,
        name: str,
        version: int | None,
        action: str,
        from_value: str | None,
        to_value: str | None,
        reason: str,
        user: str,
    ) -> None:
        conn.execute(
            insert(AuditRow).values(
                model_name=name,
                version=version,
                action=action,
                from_value=from_value,
                to_value=to_value,
                reason=reason,
                user=user,
                time=now_ms(),
            )
        )

    @staticmethod
    def _require_model(conn: Connection, name: str) -> Any:
        row = conn.execute(
            select(RegisteredModelRow).where(RegisteredModelRow.name == name)
        ).first()
        if row is None:
            raise NotFound(f"registered model {name!r} does not exist", field="name")
        return row

    def _require_version(self, conn: Connection, name: str, version: int) -> Any:
        row = conn.execute(
            select(ModelVersionRow).where(
                ModelVersionRow.name == name, ModelVersionRow.version == version
            )
        ).first()
        if row is None:
            self._require_model(conn, name)
            raise NotFound(f"model {name!r} has no version {version}", field="version")
        return row

    @staticmethod
    def _model(conn: Connection, row: Any) -> RegisteredModel:
        aliases = dict(
            conn.execute(
                select(ModelAliasRow.alias, ModelAliasRow.version).where(
                    ModelAliasRow.name == row.name
                )
            )
            .tuples()
            .all()
        )
        tags = dict(
            conn.execute(
                select(ModelTagRow.key, ModelTagRow.value).where(
                    ModelTagRow.name == row.name, ModelTagRow.version == 0
                )
            )
            .tuples()
            .all()
        )
        latest = conn.execute(
            select(func.max(ModelVersionRow.version)).where(ModelVersionRow.name == row.name)
        ).scalar()
        return RegisteredModel(
            row.name, row.description, row.created_time, row.last_update_time, aliases, tags, latest
        )

    @staticmethod
    def _version(conn: Connection, row: Any) -> ModelVersion:
        tags = dict(
            conn.execute(
                select(ModelTagRow.key, ModelTagRow.value).where(
                    ModelTagRow.name == row.name, ModelTagRow.version == row.version
                )
            )
            .tuples()
            .all()
        )
        aliases = tuple(
            sorted(
                conn.execute(
                    select(ModelAliasRow.alias).where(
                        ModelAliasRow.name == row.name, ModelAliasRow.version == row.version
                    )
                ).scalars()
            )
        )
        return ModelVersion(
            name=row.name,
            version=row.version,
            run_id=row.run_id,
            artifact_path=row.artifact_path,
            status=row.status,
            created_time=row.created_time,
            last_update_time=row.last_update_time,
            description=row.description,
            flavor=row.flavor,
            signature=json.loads(row.signature_json) if row.signature_json else None,
            metrics=json.loads(row.metrics_json),
            datasets=tuple(json.loads(row.datasets_json)),
            code_version=row.code_version,
            user=row.user,
            tags=tags,
            aliases=aliases,
            evaluation=json.loads(row.evaluation_json) if row.evaluation_json else None,
            gate=json.loads(row.gate_json) if row.gate_json else None,
        )

    # -- models -------------------------------------------------------------------------
    def create_registered_model(
        self, name: str, description: str = "", user: str = "", tags: dict[str, str] | None = None
    ) -> RegisteredModel:
        """Create a registered model; :class:`Conflict` if the name is taken."""
        now = now_ms()
        try:
            with self._write() as conn:
                conn.execute(
                    insert(RegisteredModelRow).values(
                        name=name, description=description, created_time=now, last_update_time=now
                    )
                )
                for key, value in (tags or {}).items():
                    conn.execute(
                        insert(ModelTagRow).values(name=name, version=0, key=key, value=value)
                    )
                self._audit(conn, name, None, "create_model", None, name, description, user)
        except IntegrityError as exc:
            raise Conflict(f"registered model {name!r} already exists", field="name") from exc
        return self.get_registered_model(name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        """Return a registered model or raise :class:`NotFound`."""
        with self._read() as conn:
            return self._model(conn, self._require_model(conn, name))

    def list_registered_models(self) -> list[RegisteredModel]:
        """Return every registered model, by name."""
        with self._read() as conn:
            rows = conn.execute(select(RegisteredModelRow).order_by(RegisteredModelRow.name)).all()
            return [self._model(conn, row) for row in rows]

    # -- versions -----------------------------------------------------------------------
    def create_model_version(self, version: ModelVersion) -> ModelVersion:
        """Record a new version (numbered here), creating the registered model if needed."""
        for _ in range(_ATTEMPTS):
            try:
                return self._insert_version(version)
            except IntegrityError:
                continue  # another writer took the number (or created the model): retry
        raise Conflict(
            f"could not register a version of {version.name!r}: concurrent writers", field="name"
        )

    def _insert_version(self, version: ModelVersion) -> ModelVersion:
        now = now_ms()
        with self._write() as conn:
            exists = conn.execute(
                select(RegisteredModelRow.name).where(RegisteredModelRow.name == version.name)
            ).scalar()
            if exists is None:
                conn.execute(
                    insert(RegisteredModelRow).values(
                        name=version.name, description="", created_time=now, last_update_time=now
                    )
                )
                self._audit(
                    conn, version.name, None, "create_model", None, version.name, "", version.user
                )
            number = (
                conn.execute(
                    select(func.max(ModelVersionRow.version)).where(
                        ModelVersionRow.name == version.name
                    )
                ).scalar()
                or 0
            ) + 1
            conn.execute(
                insert(ModelVersionRow).values(
                    name=version.name,
                    version=number,
                    run_id=version.run_id,
                    artifact_path=version.artifact_path,
                    status=version.status,
                    description=version.description,
                    flavor=version.flavor,
                    signature_json=json.dumps(version.signature) if version.signature else None,
                    metrics_json=json.dumps(version.metrics),
                    datasets_json=json.dumps(list(version.datasets)),
                    code_version=version.code_version,
                    user=version.user,
                    evaluation_json=None,
                    gate_json=None,
                    created_time=now,
                    last_update_time=now,
                )
            )
            for key, value in version.tags.items():
                conn.execute(
                    insert(ModelTagRow).values(
                        name=version.name, version=number, key=key, value=value
                    )
                )
            conn.execute(
                update(RegisteredModelRow)
                .where(RegisteredModelRow.name == version.name)
                .values(last_update_time=now)
            )
            self._audit(
                conn,
                version.name,
                number,
                "create_version",
                None,
                version.source,
                version.description,
                version.user,
            )
        return self.get_model_version(version.name, number)

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """Return one version or raise :class:`NotFound`."""
        with self._read() as conn:
            return self._version(conn, self._require_version(conn, name, version))

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        """Return a model's versions, oldest first."""
        with self._read() as conn:
            self._require_model(conn, name)
            rows = conn.execute(
                select(ModelVersionRow)
                .where(ModelVersionRow.name == name)
                .order_by(ModelVersionRow.version)
            ).all()
            return [self._version(conn, row) for row in rows]

    def set_version_status(
        self, name: str, version: int, status: str, reason: str, user: str
    ) -> None:
        """Change a version's status (``READY``, ``ARCHIVED``), audited."""
        with self._write() as conn:
            row = self._require_version(conn, name, version)
            conn.execute(
                update(ModelVersionRow)
                .where(ModelVersionRow.name == name, ModelVersionRow.version == version)
                .values(status=status, last_update_time=now_ms())
            )
            self._audit(conn, name, version, "set_status", row.status, status, reason, user)

    def set_version_field(
        self, name: str, version: int, field: str, value: dict[str, Any], user: str
    ) -> None:
        """Store a version's ``evaluation`` or ``gate`` result, audited."""
        column = {"evaluation": "evaluation_json", "gate": "gate_json"}[field]
        with self._write() as conn:
            self._require_version(conn, name, version)
            conn.execute(
                update(ModelVersionRow)
                .where(ModelVersionRow.name == name, ModelVersionRow.version == version)
                .values(**{column: json.dumps(value, default=str), "last_update_time": now_ms()})
            )
            summary = str(value.get("passed")) if field == "gate" else None
            self._audit(conn, name, version, f"set_{field}", None, summary, "", user)

    def set_tag(self, name: str, version: int, key: str, value: str, user: str) -> None:
        """Tag a model (``version`` 0) or one version, audited."""
        with self._write() as conn:
            if version:
                self._require_version(conn, name, version)
            else:
                self._require_model(conn, name)
            upsert(
                conn,
                ModelTagRow,
                [{"name": name, "version": version, "key": key, "value": value}],
                keys=["name", "version", "key"],
                update=["value"],
            )
            self._audit(conn, name, version or None, "set_tag", None, f"{key}={value}", "", user)

    # -- aliases ------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, reason: str, user: str) -> int | None:
        """Point an alias at a version; return the version it pointed at before."""
        with self._write() as conn:
            self._require_version(conn, name, version)
            previous = conn.execute(
                select(ModelAliasRow.version).where(
                    ModelAliasRow.name == name, ModelAliasRow.alias == alias
                )
            ).scalar()
            upsert(
                conn,
                ModelAliasRow,
                [{"name": name, "alias": alias, "version": version}],
                keys=["name", "alias"],
                update=["version"],
            )
            conn.execute(
                update(RegisteredModelRow)
                .where(RegisteredModelRow.name == name)
                .values(last_update_time=now_ms())
            )
            self._audit(
                conn,
                name,
                version,
                f"set_alias:{alias}",
                None if previous is None else str(previous),
                str(version),
                reason,
                user,
            )
        return None if previous is None else int(previous)

    def delete_alias(self, name: str, alias: str, reason: str, user: str) -> int:
        """Remove an alias; return the version it pointed at."""
        with self._write() as conn:
            self._require_model(conn, name)
            previous = conn.execute(
                select(ModelAliasRow.version).where(
                    ModelAliasRow.name == name, ModelAliasRow.alias == alias
                )
            ).scalar()
            if previous is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}", field="alias")
            conn.execute(
                delete(ModelAliasRow).where(
                    ModelAliasRow.name == name, ModelAliasRow.alias == alias
                )
            )
            self._audit(
                conn,
                name,
                int(previous),
                f"delete_alias:{alias}",
                str(previous),
                None,
                reason,
                user,
            )
        return int(previous)

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """Return the version an alias points at."""
        with self._read() as conn:
            self._require_model(conn, name)
            version = conn.execute(
                select(ModelAliasRow.version).where(
                    ModelAliasRow.name == name, ModelAliasRow.alias == alias
                )
            ).scalar()
            if version is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}", field="alias")
            return self._version(conn, self._require_version(conn, name, int(version)))

    def list_audit(self, name: str) -> list[AuditEntry]:
        """The model's audit trail, oldest first."""
        with self._read() as conn:
            self._require_model(conn, name)
            rows = conn.execute(
                select(AuditRow).where(AuditRow.model_name == name).order_by(AuditRow.id)
            ).all()
        return [
            AuditEntry(
                r.id,
                r.model_name,
                r.version,
                r.action,
                r.from_value,
                r.to_value,
                r.reason,
                r.user,
                r.time,
            )
            for r in rows
        ]
