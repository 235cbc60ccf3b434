"""SQL implementation of the experiment and run stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from loopml.entities.search import NUMERIC_ATTRIBUTES, Clause, FieldKind, OrderBy
from loopml.entities.tracking import (
    ArtifactEntry,
    Experiment,
    LifecycleStage,
    Metric,
    Run,
    RunStatus,
)
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.store.base import RunPage, TokenInfo
from loopml.store.sql._base import SqlStoreBase, now_ms
from loopml.store.sql._upsert import upsert
from loopml.store.sql.models import (
    ArtifactRow,
    ExperimentRow,
    ExperimentTagRow,
    LatestMetricRow,
    MetricRow,
    ParamRow,
    RunRow,
    TagRow,
    TokenRow,
)

_ACTIVE = LifecycleStage.ACTIVE.value
_DELETED = LifecycleStage.DELETED.value


def _db_float(value: float) -> float | None:
    return None if math.isnan(value) else value


def _py_float(value: float | None) -> float:
    return math.nan if value is None else value


class SqlTrackingStore(SqlStoreBase):
    """Experiments, runs, metrics, params, tags, artifact index and tokens in SQL.

    Parameters
    ----------
    uri : str
        A SQLAlchemy URL: ``sqlite:///file.db`` or ``postgresql+psycopg://...``. The schema is
        created or upgraded on first use.
    """

    # -- experiments --------------------------------------------------------------------
    def create_experiment(self, name: str, tags: dict[str, str] | None = None) -> str:
        """Create an experiment; :class:`Conflict` if the name is taken."""
        now = now_ms()
        try:
            with self._write() as conn:
                experiment_id = conn.execute(
                    insert(ExperimentRow)
                    .values(
                        name=name, lifecycle_stage=_ACTIVE, creation_time=now, last_update_time=now
                    )
                    .returning(ExperimentRow.experiment_id)
                ).scalar_one()
                if tags:
                    conn.execute(
                        insert(ExperimentTagRow),
                        [
                            {"experiment_id": experiment_id, "key": k, "value": v}
                            for k, v in tags.items()
                        ],
                    )
        except IntegrityError as exc:
            raise Conflict(f"experiment {name!r} already exists", field="name") from exc
        return str(experiment_id)

    def _experiment_from_row(self, conn: Connection, row: ExperimentRow | Any) -> Experiment:
        tags = dict(
            conn.execute(
                select(ExperimentTagRow.key, ExperimentTagRow.value).where(
                    ExperimentTagRow.experiment_id == row.experiment_id
                )
            )
            .tuples()
            .all()
        )
        return Experiment(
            experiment_id=str(row.experiment_id),
            name=row.name,
            lifecycle_stage=LifecycleStage(row.lifecycle_stage),
            creation_time=row.creation_time,
            last_update_time=row.last_update_time,
            tags=tags,
        )

    @staticmethod
    def _experiment_pk(experiment_id: str) -> int:
        try:
            pk = int(experiment_id)
        except (TypeError, ValueError):
            pk = -1
        # Ids are 64-bit integers: a larger number would overflow the driver, not miss.
        if not 0 <= pk < 2**63:
            raise NotFound(f"experiment {experiment_id!r} does not exist", field="experiment_id")
        return pk

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return the experiment or raise :class:`NotFound`."""
        pk = self._experiment_pk(experiment_id)
        with self._read() as conn:
            row = conn.execute(
                select(ExperimentRow).where(ExperimentRow.experiment_id == pk)
            ).first()
            if row is None:
                raise NotFound(
                    f"experiment {experiment_id!r} does not exist", field="experiment_id"
                )
            return self._experiment_from_row(conn, row)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return the experiment with this name, or None."""
        with self._read() as conn:
            row = conn.execute(select(ExperimentRow).where(ExperimentRow.name == name)).first()
            return None if row is None else self._experiment_from_row(conn, row)

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """Return experiments ordered by id."""
        query = select(ExperimentRow).order_by(ExperimentRow.experiment_id)
        if not include_deleted:
            query = query.where(ExperimentRow.lifecycle_stage == _ACTIVE)
        with self._read() as conn:
            rows = conn.execute(query).all()
            tag_rows = conn.execute(select(ExperimentTagRow)).all()
        tags: dict[int, dict[str, str]] = {}
        for tag in tag_rows:
            tags.setdefault(tag.experiment_id, {})[tag.key] = tag.value
        return [
            Experiment(
                experiment_id=str(row.experiment_id),
                name=row.name,
                lifecycle_stage=LifecycleStage(row.lifecycle_stage),
                creation_time=row.creation_time,
                last_update_time=row.last_update_time,
                tags=tags.get(row.experiment_id, {}),
            )
            for row in rows
        ]

    def _set_experiment_stage(self, experiment_id: str, stage: str) -> None:
        pk = self._experiment_pk(experiment_id)
        with self._write() as conn:
            result = conn.execute(
                update(ExperimentRow)
                .where(ExperimentRow.experiment_id == pk)
                .values(lifecycle_stage=stage, last_update_time=now_ms())
            )
            if result.rowcount == 0:
                raise NotFound(
                    f"experiment {experiment_id!r} does not exist", field="experiment_id"
                )

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark the experiment deleted."""
        self._set_experiment_stage(experiment_id, _DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        """Undo :meth:`delete_experiment`."""
        self._set_experiment_stage(experiment_id, _ACTIVE)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set a tag on an active experiment."""
        pk = self._experiment_pk(experiment_id)
        with self._write() as conn:
            self._require_active_experiment(conn, pk, experiment_id)
            upsert(
                conn,
                ExperimentTagRow,
                [{"experiment_id": pk, "key": key, "value": value}],
                keys=["experiment_id", "key"],
                update=["value"],
            )

    @staticmethod
    def _require_active_experiment(conn: Connection, pk: int, experiment_id: str) -> None:
        stage = conn.execute(
            select(ExperimentRow.lifecycle_stage).where(ExperimentRow.experiment_id == pk)
        ).scalar()
        if stage is None:
            raise NotFound(f"experiment {experiment_id!r} does not exist", field="experiment_id")
        if stage != _ACTIVE:
            raise InvalidInput(
                f"experiment {experiment_id!r} is deleted; restore it first",
                field="experiment_id",
            )

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        run_name: str,
        user: str,
        start_time: int,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        host: str = "",
        pid: int | None = None,
    ) -> Run:
        """Create a RUNNING run in an active experiment."""
        pk = self._experiment_pk(experiment_id)
        run_id = uuid.uuid4().hex
        with self._write() as conn:
            self._require_active_experiment(conn, pk, experiment_id)
            if parent_run_id is not None:
                self._require_run(conn, parent_run_id, field="parent_run_id")
            conn.execute(
                insert(RunRow).values(
                    run_id=run_id,
                    experiment_id=pk,
                    run_name=run_name,
                    status=RunStatus.RUNNING.value,
                    start_time=start_time,
                    end_time=None,
                    lifecycle_stage=_ACTIVE,
                    user=user,
                    parent_run_id=parent_run_id,
                    host=host,
                    pid=pid,
                    heartbeat_time=start_time,
                )
            )
            if tags:
                conn.execute(
                    insert(TagRow),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                )
        return self.get_run(run_id)

    @staticmethod
    def _require_run(conn: Connection, run_id: str, field: str = "run_id") -> Any:
        row = conn.execute(
            select(RunRow.lifecycle_stage, RunRow.status).where(RunRow.run_id == run_id)
        ).first()
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist", field=field)
        return row

    def _require_active_run(self, conn: Connection, run_id: str) -> None:
        if self._require_run(conn, run_id).lifecycle_stage != _ACTIVE:
            raise InvalidInput(f"run {run_id!r} is deleted; restore it first", field="run_id")

    def get_run(self, run_id: str) -> Run:
        """Return the run or raise :class:`NotFound`."""
        with self._read() as conn:
            row = conn.execute(select(RunRow).where(RunRow.run_id == run_id)).first()
            if row is None:
                raise NotFound(f"run {run_id!r} does not exist", field="run_id")
            return self._load_runs(conn, [row])[0]

    def _load_runs(self, conn: Connection, rows: Sequence[Any]) -> list[Run]:
        ids = [row.run_id for row in rows]
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        # Chunk the IN lists: SQLite caps bound parameters per statement.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for m in conn.execute(
                select(LatestMetricRow.run_id, LatestMetricRow.key, LatestMetricRow.value).where(
                    LatestMetricRow.run_id.in_(chunk)
                )
            ):
                metrics[m.run_id][m.key] = _py_float(m.value)
            for p in conn.execute(
                select(ParamRow.run_id, ParamRow.key, ParamRow.value).where(
                    ParamRow.run_id.in_(chunk)
                )
            ):
                params[p.run_id][p.key] = p.value
            for t in conn.execute(
                select(TagRow.run_id, TagRow.key, TagRow.value).where(TagRow.run_id.in_(chunk))
            ):
                tags[t.run_id][t.key] = t.value
        return [
            Run(
                run_id=row.run_id,
                experiment_id=str(row.experiment_id),
                run_name=row.run_name,
                status=RunStatus(row.status),
                start_time=row.start_time,
                end_time=row.end_time,
                lifecycle_stage=LifecycleStage(row.lifecycle_stage),
                user=row.user,
                parent_run_id=row.parent_run_id,
                host=row.host,
                pid=row.pid,
                heartbeat_time=row.heartbeat_time,
                metrics=metrics[row.run_id],
                params=params[row.run_id],
                tags=tags[row.run_id],
            )
            for row in rows
        ]

    def set_run_status(
        self, run_id: str, status: RunStatus, end_time: int | None, only_if_running: bool = False
    ) -> bool:
        """Set a run's status; return whether it changed."""
        with self._write() as conn:
            self._require_run(conn, run_id)
            query = update(RunRow).where(RunRow.run_id == run_id)
            if only_if_running:
                query = query.where(RunRow.status == RunStatus.RUNNING.value)
            result = conn.execute(query.values(status=status.value, end_time=end_time))
            return bool(result.rowcount)

    def set_run_name(self, run_id: str, run_name: str) -> None:
        """Rename a run."""
        with self._write() as conn:
            self._require_active_run(conn, run_id)
            conn.execute(update(RunRow).where(RunRow.run_id == run_id).values(run_name=run_name))

    def heartbeat(self, run_id: str, time_ms: int) -> None:
        """Record that the process owning the run is alive."""
        with self._write() as conn:
            conn.execute(
                update(RunRow).where(RunRow.run_id == run_id).values(heartbeat_time=time_ms)
            )

    def _set_run_stage(self, run_id: str, stage: str) -> None:
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                update(RunRow).where(RunRow.run_id == run_id).values(lifecycle_stage=stage)
            )

    def delete_run(self, run_id: str) -> None:
        """Soft-delete a run."""
        self._set_run_stage(run_id, _DELETED)

    def restore_run(self, run_id: str) -> None:
        """Undo :meth:`delete_run`."""
        self._set_run_stage(run_id, _ACTIVE)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Write metrics, params and tags in one transaction: all of them or none."""
        with self._write() as conn:
            self._require_active_run(conn, run_id)
            if params:
                existing = dict(
                    conn.execute(
                        select(ParamRow.key, ParamRow.value).where(
                            ParamRow.run_id == run_id, ParamRow.key.in_(list(params))
                        )
                    )
                    .tuples()
                    .all()
                )
                for key, value in params.items():
                    if key in existing and existing[key] != value:
                        raise Conflict(
                            f"param {key!r} of run {run_id} is already {existing[key]!r}; "
                            f"params are write-once and cannot become {value!r}",
                            field=f"params.{key}",
                        )
                new = [
                    {"run_id": run_id, "key": k, "value": v}
                    for k, v in params.items()
                    if k not in existing
                ]
                if new:
                    conn.execute(insert(ParamRow), new)
            if tags:
                upsert(
                    conn,
                    TagRow,
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                    keys=["run_id", "key"],
                    update=["value"],
                )
            if metrics:
                self._insert_metrics(conn, run_id, metrics)

    @staticmethod
    def _insert_metrics(conn: Connection, run_id: str, metrics: Sequence[Metric]) -> None:
        if conn.dialect.name == "sqlite":
            # The DBAPI's executemany directly: SQLAlchemy's per-row parameter processing
            # costs more than SQLite's insert itself for large batches.
            conn.exec_driver_sql(
                "INSERT INTO metrics (run_id, key, value, timestamp, step) VALUES (?, ?, ?, ?, ?)",
                [(run_id, m.key, _db_float(m.value), m.timestamp, m.step) for m in metrics],
            )
        else:
            conn.execute(
                insert(MetricRow),
                [
                    {
                        "run_id": run_id,
                        "key": m.key,
                        "value": _db_float(m.value),
                        "timestamp": m.timestamp,
                        "step": m.step,
                    }
                    for m in metrics
                ],
            )
        latest: dict[str, Metric] = {}
        for m in metrics:
            seen = latest.get(m.key)
            if seen is None or (m.step, m.timestamp) >= (seen.step, seen.timestamp):
                latest[m.key] = m
        upsert(
            conn,
            LatestMetricRow,
            [
                {
                    "run_id": run_id,
                    "key": m.key,
                    "value": _db_float(m.value),
                    "timestamp": m.timestamp,
                    "step": m.step,
                }
                for m in latest.values()
            ],
            keys=["run_id", "key"],
            update=["value", "timestamp", "step"],
            where=_is_newer_metric,
        )

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag from a run."""
        with self._write() as conn:
            self._require_active_run(conn, run_id)
            result = conn.execute(delete(TagRow).where(TagRow.run_id == run_id, TagRow.key == key))
            if result.rowcount == 0:
                raise NotFound(f"run {run_id} has no tag {key!r}", field="key")

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Return every value of one metric, ordered by step then timestamp."""
        with self._read() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                select(MetricRow.value, MetricRow.timestamp, MetricRow.step)
                .where(MetricRow.run_id == run_id, MetricRow.key == key)
                .order_by(MetricRow.step, MetricRow.timestamp, MetricRow.id)
            ).all()
        return [
            Metric(key=key, value=_py_float(r.value), timestamp=r.timestamp, step=r.step)
            for r in rows
        ]

    # -- search -------------------------------------------------------------------------
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 1000,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> RunPage:
        """Return runs matching every clause, sorted, one page at a time."""
        pks = []
        for experiment_id in experiment_ids:
            try:
                pks.append(self._experiment_pk(experiment_id))
            except NotFound:
                continue
        query = select(RunRow).where(RunRow.experiment_id.in_(pks))
        if not include_deleted:
            query = query.where(RunRow.lifecycle_stage == _ACTIVE)
        for clause in clauses:
            query = query.where(_clause_condition(clause))
        sort_columns: list[Any] = []
        for index, order in enumerate(order_by):
            column = _order_column(order, index)
            if isinstance(column, tuple):
                joined, column = column
                query = query.outerjoin(
                    joined, and_(joined.run_id == RunRow.run_id, joined.key == order.key)
                )
            expr = column.asc() if order.ascending else column.desc()
            sort_columns.append(expr.nulls_last())
        sort_columns += [RunRow.start_time.desc(), RunRow.run_id]
        query = query.order_by(*sort_columns).limit(max_results + 1).offset(offset)
        with self._read() as conn:
            rows = conn.execute(query).all()
            has_more = len(rows) > max_results
            runs = self._load_runs(conn, rows[:max_results])
        return RunPage(runs=runs, next_offset=offset + max_results if has_more else None)

    def experiment_keys(self, experiment_id: str) -> dict[str, list[str]]:
        """Distinct metric, param and tag keys of the experiment's active runs, sorted.

        One statement: a ``UNION ALL`` of the three ``DISTINCT`` key lists, each walking
        the runs of the experiment and the ``(run_id, key)`` primary key of its table.
        """
        pk = self._experiment_pk(experiment_id)
        runs = select(RunRow.run_id).where(
            RunRow.experiment_id == pk, RunRow.lifecycle_stage == _ACTIVE
        )
        parts = [
            select(literal(kind).label("kind"), table.key.label("key"))
            .where(table.run_id.in_(runs))
            .distinct()
            for kind, table in (
                ("metrics", LatestMetricRow),
                ("params", ParamRow),
                ("tags", TagRow),
            )
        ]
        keys: dict[str, list[str]] = {"metrics": [], "params": [], "tags": []}
        with self._read() as conn:
            exists = conn.execute(
                select(ExperimentRow.experiment_id).where(ExperimentRow.experiment_id == pk)
            ).first()
            if exists is None:
                raise NotFound(
                    f"experiment {experiment_id!r} does not exist", field="experiment_id"
                )
            for kind, key in conn.execute(union_all(*parts)):
                keys[kind].append(key)
        return {kind: sorted(values) for kind, values in keys.items()}

    # -- artifact index -----------------------------------------------------------------
    def add_artifact(self, run_id: str, entry: ArtifactEntry) -> None:
        """Point ``entry.path`` of the run at a stored blob."""
        with self._write() as conn:
            self._require_active_run(conn, run_id)
            upsert(
                conn,
                ArtifactRow,
                [
                    {
                        "run_id": run_id,
                        "path": entry.path,
                        "sha256": entry.sha256,
                        "size": entry.size,
                    }
                ],
                keys=["run_id", "path"],
                update=["sha256", "size"],
            )

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        """Return the run's artifact entries under a path prefix, sorted by path."""
        query = select(ArtifactRow.path, ArtifactRow.sha256, ArtifactRow.size).where(
            ArtifactRow.run_id == run_id
        )
        if prefix:
            base = prefix.rstrip("/")
            query = query.where(
                or_(
                    ArtifactRow.path == base,
                    func.substr(ArtifactRow.path, 1, len(base) + 1) == base + "/",
                )
            )
        with self._read() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(query.order_by(ArtifactRow.path)).all()
        return [ArtifactEntry(path=r.path, sha256=r.sha256, size=r.size) for r in rows]

    def get_artifact(self, run_id: str, path: str) -> ArtifactEntry:
        """Return one artifact entry or raise :class:`NotFound`."""
        with self._read() as conn:
            self._require_run(conn, run_id)
            row = conn.execute(
                select(ArtifactRow.path, ArtifactRow.sha256, ArtifactRow.size).where(
                    ArtifactRow.run_id == run_id, ArtifactRow.path == path
                )
            ).first()
        if row is None:
            raise NotFound(f"run {run_id} has no artifact {path!r}", field="path")
        return ArtifactEntry(path=row.path, sha256=row.sha256, size=row.size)

    # -- tokens -------------------------------------------------------------------------
    def create_token(self, name: str, role: str, token_hash: str) -> TokenInfo:
        """Store a new token; :class:`Conflict` if the name is taken."""
        info = TokenInfo(name=name, role=role, token_hash=token_hash, created_time=now_ms())
        try:
            with self._write() as conn:
                conn.execute(
                    insert(TokenRow).values(
                        name=name, role=role, token_hash=token_hash, created_time=info.created_time
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"token {name!r} already exists", field="name") from exc
        return info

    def get_token_by_hash(self, token_hash: str) -> TokenInfo | None:
        """Return the token with this hash, or None."""
        with self._read() as conn:
            row = conn.execute(select(TokenRow).where(TokenRow.token_hash == token_hash)).first()
        return (
            None if row is None else TokenInfo(row.name, row.role, row.token_hash, row.created_time)
        )

    def list_tokens(self) -> list[TokenInfo]:
        """Return every token."""
        with self._read() as conn:
            rows = conn.execute(select(TokenRow).order_by(TokenRow.name)).all()
        return [TokenInfo(r.name, r.role, r.token_hash, r.created_time) for r in rows]

    def delete_token(self, name: str) -> None:
        """Revoke a token or raise :class:`NotFound`."""
        with self._write() as conn:
            if conn.execute(delete(TokenRow).where(TokenRow.name == name)).rowcount == 0:
                raise NotFound(f"token {name!r} does not exist", field="name")


def _is_newer_metric(current: Any, new: Any) -> ColumnElement[bool]:
    """A metric value replaces the latest one at a higher step, or a later time at the same."""
    return or_(
        new.step > current.step, and_(new.step == current.step, new.timestamp >= current.timestamp)
    )


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "LIKE":
        return column.like(value)  # type: ignore[no-any-return]
    if op == "ILIKE":
        return func.lower(column).like(func.lower(value))
    operations: dict[str, Any] = {
        "<": column.__lt__,
        "<=": column.__le__,
        "=": column.__eq__,
        "!=": column.__ne__,
        ">=": column.__ge__,
        ">": column.__gt__,
    }
    return operations[op](value)  # type: ignore[no-any-return]


def _clause_condition(clause: Clause) -> ColumnElement[bool]:
    if clause.kind is FieldKind.ATTRIBUTE:
        column = getattr(RunRow, clause.key)
        value: Any = clause.value
        if clause.key == "experiment_id":
            value = int(value) if str(value).isdigit() and int(value) < 2**63 else -1
        elif clause.key in NUMERIC_ATTRIBUTES:
            value = float(value)
        return _compare(column, clause.op, value)
    table: Any = {
        FieldKind.METRIC: LatestMetricRow,
        FieldKind.PARAM: ParamRow,
        FieldKind.TAG: TagRow,
    }[clause.kind]
    matching = select(table.run_id).where(
        table.key == clause.key, _compare(table.value, clause.op, clause.value)
    )
    return RunRow.run_id.in_(matching)


def _order_column(order: OrderBy, index: int) -> Any:
    if order.kind is FieldKind.ATTRIBUTE:
        return getattr(RunRow, order.key)
    table: Any = {
        FieldKind.METRIC: LatestMetricRow,
        FieldKind.PARAM: ParamRow,
        FieldKind.TAG: TagRow,
    }[order.kind]
    joined = aliased(table, name=f"order_{index}")
    return joined, joined.value
