"""SQL implementation of the dataset store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from loopml.entities.data import (
    ColumnInfo,
    Dataset,
    DatasetVersion,
    LineageEdge,
    ValidationRecord,
)
from loopml.errors import Conflict, NotFound
from loopml.store.sql._base import SqlStoreBase, now_ms
from loopml.store.sql._upsert import upsert
from loopml.store.sql.models import (
    ArtifactRow,
    DatasetRow,
    DatasetVersionRow,
    DatasetVersionTagRow,
    LineageRow,
    ValidationResultRow,
)

_INSERT_ATTEMPTS = 5


class SqlDatasetStore(SqlStoreBase):
    """Datasets, versions, tags, lineage and validation results in SQL."""

    # -- versions -----------------------------------------------------------------------
    def add_dataset_version(
        self, version: DatasetVersion, profile_json: str | None, description: str = ""
    ) -> tuple[DatasetVersion, bool]:
        """Record a version, numbering it; existing content returns the existing version."""
        for _ in range(_INSERT_ATTEMPTS):
            existing = self._find_digest(version.name, version.digest)
            if existing is not None:
                return existing, False
            try:
                return self._insert_version(version, profile_json, description), True
            except IntegrityError:
                # Another writer registered the same content or took the version number.
                continue
        raise Conflict(
            f"could not register dataset {version.name!r}: concurrent writers kept colliding",
            field="name",
        )

    def _insert_version(
        self, version: DatasetVersion, profile_json: str | None, description: str
    ) -> DatasetVersion:
        now = now_ms()
        with self._write() as conn:
            exists = conn.execute(
                select(DatasetRow.name).where(DatasetRow.name == version.name)
            ).scalar()
            if exists is None:
                conn.execute(
                    insert(DatasetRow).values(
                        name=version.name,
                        description=description,
                        schema_yaml=None,
                        created_time=now,
                        last_update_time=now,
                    )
                )
            else:
                values: dict[str, Any] = {"last_update_time": now}
                if description:
                    values["description"] = description
                conn.execute(
                    update(DatasetRow).where(DatasetRow.name == version.name).values(**values)
                )
            number = (
                conn.execute(
                    select(func.max(DatasetVersionRow.version)).where(
                        DatasetVersionRow.name == version.name
                    )
                ).scalar()
                or 0
            ) + 1
            stored = replace(version, version=number, created_time=now)
            version_id = conn.execute(
                insert(DatasetVersionRow)
                .values(
                    name=stored.name,
                    version=number,
                    digest=stored.digest,
                    blob_sha256=stored.blob_sha256,
                    num_rows=stored.num_rows,
                    num_columns=stored.num_columns,
                    size_bytes=stored.size_bytes,
                    columns_json=json.dumps([[c.name, c.type] for c in stored.columns]),
                    profile_json=profile_json,
                    source=stored.source,
                    run_id=stored.run_id,
                    created_time=now,
                )
                .returning(DatasetVersionRow.id)
            ).scalar_one()
            if stored.tags:
                conn.execute(
                    insert(DatasetVersionTagRow),
                    [
                        {"version_id": version_id, "key": k, "value": v}
                        for k, v in stored.tags.items()
                    ],
                )
        return stored

    def _find_digest(self, name: str, digest: str) -> DatasetVersion | None:
        with self._read() as conn:
            row = conn.execute(
                select(DatasetVersionRow).where(
                    DatasetVersionRow.name == name, DatasetVersionRow.digest == digest
                )
            ).first()
            return None if row is None else self._versions(conn, [row])[0]

    @staticmethod
    def _versions(conn: Connection, rows: list[Any]) -> list[DatasetVersion]:
        ids = [row.id for row in rows]
        tags: dict[int, dict[str, str]] = {i: {} for i in ids}
        for start in range(0, len(ids), 500):
            for tag in conn.execute(
                select(DatasetVersionTagRow).where(
                    DatasetVersionTagRow.version_id.in_(ids[start : start + 500])
                )
            ):
                tags[tag.version_id][tag.key] = tag.value
        return [
            DatasetVersion(
                name=row.name,
                version=row.version,
                digest=row.digest,
                blob_sha256=row.blob_sha256,
                num_rows=row.num_rows,
                num_columns=row.num_columns,
                size_bytes=row.size_bytes,
                columns=tuple(ColumnInfo(n, t) for n, t in json.loads(row.columns_json)),
                created_time=row.created_time,
                source=row.source,
                run_id=row.run_id,
                tags=tags[row.id],
            )
            for row in rows
        ]

    def _version_id(self, conn: Connection, name: str, version: int) -> int:
        version_id = conn.execute(
            select(DatasetVersionRow.id).where(
                DatasetVersionRow.name == name, DatasetVersionRow.version == version
            )
        ).scalar()
        if version_id is None:
            self._require_dataset(conn, name)
            raise NotFound(f"dataset {name!r} has no version {version}", field="version")
        return int(version_id)

    @staticmethod
    def _require_dataset(conn: Connection, name: str) -> Any:
        row = conn.execute(select(DatasetRow).where(DatasetRow.name == name)).first()
        if row is None:
            raise NotFound(f"dataset {name!r} does not exist", field="name")
        return row

    def get_dataset(self, name: str) -> Dataset:
        """Return a dataset or raise :class:`NotFound`."""
        with self._read() as conn:
            row = self._require_dataset(conn, name)
            latest = conn.execute(
                select(func.max(DatasetVersionRow.version)).where(DatasetVersionRow.name == name)
            ).scalar()
        return Dataset(
            row.name,
            row.description,
            row.created_time,
            row.last_update_time,
            latest,
            row.schema_yaml is not None,
        )

    def list_datasets(self) -> list[Dataset]:
        """Return every dataset, by name."""
        latest = (
            select(DatasetVersionRow.name, func.max(DatasetVersionRow.version).label("latest"))
            .group_by(DatasetVersionRow.name)
            .subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(DatasetRow, latest.c.latest)
                .outerjoin(latest, latest.c.name == DatasetRow.name)
                .order_by(DatasetRow.name)
            ).all()
        return [
            Dataset(
                r.name,
                r.description,
                r.created_time,
                r.last_update_time,
                r.latest,
                r.schema_yaml is not None,
            )
            for r in rows
        ]

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """Return a dataset's versions, oldest first."""
        with self._read() as conn:
            self._require_dataset(conn, name)
            rows = conn.execute(
                select(DatasetVersionRow)
                .where(DatasetVersionRow.name == name)
                .order_by(DatasetVersionRow.version)
            ).all()
            return self._versions(conn, list(rows))

    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """Return version N, or the latest when ``version`` is None."""
        query = select(DatasetVersionRow).where(DatasetVersionRow.name == name)
        if version is None:
            query = query.order_by(DatasetVersionRow.version.desc()).limit(1)
        else:
            query = query.where(DatasetVersionRow.version == version)
        with self._read() as conn:
            row = conn.execute(query).first()
            if row is None:
                self._require_dataset(conn, name)
                raise NotFound(f"dataset {name!r} has no version {version}", field="version")
            return self._versions(conn, [row])[0]

    def find_dataset_versions_by_digest(
        self, name: str, digest_prefix: str
    ) -> list[DatasetVersion]:
        """Return the dataset's versions whose digest starts with the prefix."""
        with self._read() as conn:
            self._require_dataset(conn, name)
            rows = conn.execute(
                select(DatasetVersionRow).where(
                    DatasetVersionRow.name == name,
                    DatasetVersionRow.digest.like(digest_prefix.replace("%", "") + "%"),
                )
            ).all()
            return self._versions(conn, list(rows))

    def get_dataset_profile(self, name: str, version: int) -> str | None:
        """Return the stored profile JSON of a version."""
        with self._read() as conn:
            version_id = self._version_id(conn, name, version)
            return conn.execute(
                select(DatasetVersionRow.profile_json).where(DatasetVersionRow.id == version_id)
            ).scalar()

    def set_dataset_profile(self, name: str, version: int, profile_json: str) -> None:
        """Store (or replace) a version's profile JSON."""
        with self._write() as conn:
            version_id = self._version_id(conn, name, version)
            conn.execute(
                update(DatasetVersionRow)
                .where(DatasetVersionRow.id == version_id)
                .values(profile_json=profile_json)
            )

    def set_dataset_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Tag a dataset version."""
        with self._write() as conn:
            version_id = self._version_id(conn, name, version)
            upsert(
                conn,
                DatasetVersionTagRow,
                [{"version_id": version_id, "key": key, "value": value}],
                keys=["version_id", "key"],
                update=["value"],
            )

    def set_dataset_schema(self, name: str, schema_yaml: str | None) -> None:
        """Attach a schema to a dataset name (None detaches it)."""
        with self._write() as conn:
            self._require_dataset(conn, name)
            conn.execute(
                update(DatasetRow)
                .where(DatasetRow.name == name)
                .values(schema_yaml=schema_yaml, last_update_time=now_ms())
            )

    def get_dataset_schema(self, name: str) -> str | None:
        """Return the attached schema YAML, or None."""
        with self._read() as conn:
            return self._require_dataset(conn, name).schema_yaml  # type: ignore[no-any-return]

    def delete_dataset_version(self, name: str, version: int) -> DatasetVersion:
        """Delete one version, and the dataset once its last version is gone."""
        with self._write() as conn:
            version_id = self._version_id(conn, name, version)
            row = conn.execute(
                select(DatasetVersionRow).where(DatasetVersionRow.id == version_id)
            ).one()
            deleted = self._versions(conn, [row])[0]
            conn.execute(
                delete(DatasetVersionTagRow).where(DatasetVersionTagRow.version_id == version_id)
            )
            conn.execute(
                delete(ValidationResultRow).where(ValidationResultRow.version_id == version_id)
            )
            conn.execute(
                delete(LineageRow).where(
                    LineageRow.source_kind == "dataset_version", LineageRow.source_id == deleted.uri
                )
            )
            conn.execute(delete(DatasetVersionRow).where(DatasetVersionRow.id == version_id))
            remaining = conn.execute(
                select(func.count()).where(DatasetVersionRow.name == name)
            ).scalar()
            if not remaining:
                conn.execute(delete(DatasetRow).where(DatasetRow.name == name))
        return deleted

    def blob_in_use(self, sha256: str) -> bool:
        """Whether any dataset version or run artifact still points at a blob."""
        with self._read() as conn:
            in_datasets = conn.execute(
                select(DatasetVersionRow.id).where(DatasetVersionRow.blob_sha256 == sha256).limit(1)
            ).first()
            in_artifacts = conn.execute(
                select(ArtifactRow.run_id).where(ArtifactRow.sha256 == sha256).limit(1)
            ).first()
        return in_datasets is not None or in_artifacts is not None

    # -- lineage ------------------------------------------------------------------------
    def add_lineage(
        self, source_kind: str, source_id: str, target_kind: str, target_id: str, role: str
    ) -> None:
        """Record an edge (idempotent)."""
        row = {
            "source_kind": source_kind,
            "source_id": source_id,
            "target_kind": target_kind,
            "target_id": target_id,
            "role": role,
            "created_time": now_ms(),
        }
        with self._write() as conn:
            exists = conn.execute(
                select(LineageRow.id).where(
                    LineageRow.source_kind == source_kind,
                    LineageRow.source_id == source_id,
                    LineageRow.target_kind == target_kind,
                    LineageRow.target_id == target_id,
                    LineageRow.role == role,
                )
            ).first()
            if exists is None:
                conn.execute(insert(LineageRow).values(**row))

    def list_lineage(
        self, source: tuple[str, str] | None = None, target: tuple[str, str] | None = None
    ) -> list[LineageEdge]:
        """Return edges from a source and/or to a target, oldest first."""
        query = select(LineageRow).order_by(LineageRow.id)
        if source is not None:
            query = query.where(
                LineageRow.source_kind == source[0], LineageRow.source_id == source[1]
            )
        if target is not None:
            query = query.where(
                LineageRow.target_kind == target[0], LineageRow.target_id == target[1]
            )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            LineageEdge(
                r.source_kind, r.source_id, r.target_kind, r.target_id, r.role, r.created_time
            )
            for r in rows
        ]

    # -- validation results -------------------------------------------------------------
    def add_validation_result(
        self, name: str, version: int, passed: bool, result_json: str, reference: str | None
    ) -> ValidationRecord:
        """Store a validation result of a version."""
        now = now_ms()
        with self._write() as conn:
            version_id = self._version_id(conn, name, version)
            record_id = conn.execute(
                insert(ValidationResultRow)
                .values(
                    version_id=version_id,
                    passed=passed,
                    reference=reference,
                    result_json=result_json,
                    created_time=now,
                )
                .returning(ValidationResultRow.id)
            ).scalar_one()
        return ValidationRecord(
            record_id, name, version, passed, now, json.loads(result_json), reference
        )

    def list_validation_results(
        self, name: str, version: int | None = None
    ) -> list[ValidationRecord]:
        """Return validation results of a dataset (or one version), newest first."""
        query = (
            select(ValidationResultRow, DatasetVersionRow.name, DatasetVersionRow.version)
            .join(DatasetVersionRow, DatasetVersionRow.id == ValidationResultRow.version_id)
            .where(DatasetVersionRow.name == name)
            .order_by(ValidationResultRow.id.desc())
        )
        if version is not None:
            query = query.where(DatasetVersionRow.version == version)
        with self._read() as conn:
            self._require_dataset(conn, name)
            rows = conn.execute(query).all()
        return [
            ValidationRecord(
                r.id,
                r.name,
                r.version,
                bool(r.passed),
                r.created_time,
                json.loads(r.result_json),
                r.reference,
            )
            for r in rows
        ]
