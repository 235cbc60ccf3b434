"""SQL implementation of the pipeline store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, insert, select, update

from loopml.entities.pipelines import (
    OutputRef,
    PipelineRun,
    PipelineStatus,
    StepExecution,
    StepStatus,
)
from loopml.errors import NotFound
from loopml.store.sql._base import SqlStoreBase
from loopml.store.sql._upsert import upsert
from loopml.store.sql.models import PipelineRunRow, StepExecutionRow

_STEP_COLUMNS = [c.name for c in StepExecutionRow.__table__.columns if c.name != "id"]


class SqlPipelineStore(SqlStoreBase):
    """Pipeline runs and step executions in SQL."""

    def create_pipeline_run(self, run: PipelineRun) -> None:
        """Record a new pipeline run."""
        with self._write() as conn:
            conn.execute(
                insert(PipelineRunRow).values(
                    id=run.id,
                    pipeline_name=run.pipeline_name,
                    pipeline_version=run.pipeline_version,
                    status=run.status.value,
                    start_time=run.start_time,
                    end_time=run.end_time,
                    executor=run.executor,
                    host=run.host,
                    params_json=json.dumps(run.params, default=str),
                    run_id=run.run_id,
                    trigger=run.trigger,
                    error=run.error,
                )
            )

    def finish_pipeline_run(
        self, run_id: str, status: PipelineStatus, end_time: int, error: str | None = None
    ) -> None:
        """Record how a pipeline run ended."""
        with self._write() as conn:
            result = conn.execute(
                update(PipelineRunRow)
                .where(PipelineRunRow.id == run_id)
                .values(status=status.value, end_time=end_time, error=error)
            )
            if result.rowcount == 0:
                raise NotFound(f"pipeline run {run_id!r} does not exist", field="run_id")

    @staticmethod
    def _run(row: Any) -> PipelineRun:
        return PipelineRun(
            id=row.id,
            pipeline_name=row.pipeline_name,
            pipeline_version=row.pipeline_version,
            status=PipelineStatus(row.status),
            start_time=row.start_time,
            end_time=row.end_time,
            executor=row.executor,
            host=row.host,
            params=json.loads(row.params_json),
            run_id=row.run_id,
            trigger=row.trigger,
            error=row.error,
        )

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        """Return a pipeline run or raise :class:`NotFound`."""
        with self._read() as conn:
            row = conn.execute(select(PipelineRunRow).where(PipelineRunRow.id == run_id)).first()
        if row is None:
            raise NotFound(f"pipeline run {run_id!r} does not exist", field="run_id")
        return self._run(row)

    def list_pipeline_runs(
        self, pipeline_name: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[PipelineRun]:
        """Return pipeline runs, newest first."""
        query = (
            select(PipelineRunRow)
            .order_by(PipelineRunRow.start_time.desc(), PipelineRunRow.id)
            .limit(limit)
            .offset(offset)
        )
        if pipeline_name is not None:
            query = query.where(PipelineRunRow.pipeline_name == pipeline_name)
        with self._read() as conn:
            return [self._run(row) for row in conn.execute(query)]

    def list_pipelines(self) -> list[dict[str, Any]]:
        """One summary per pipeline name, by name."""
        latest = (
            select(
                PipelineRunRow.pipeline_name,
                func.max(PipelineRunRow.start_time).label("t"),
                func.count().label("runs"),
            )
            .group_by(PipelineRunRow.pipeline_name)
            .subquery()
        )
        query = (
            select(PipelineRunRow, latest.c.runs)
            .join(
                latest,
                (latest.c.pipeline_name == PipelineRunRow.pipeline_name)
                & (latest.c.t == PipelineRunRow.start_time),
            )
            .order_by(PipelineRunRow.pipeline_name)
        )
        summaries: dict[str, dict[str, Any]] = {}
        with self._read() as conn:
            for row in conn.execute(query):
                summaries.setdefault(
                    row.pipeline_name,
                    {
                        "pipeline_name": row.pipeline_name,
                        "runs": row.runs,
                        "last_run_id": row.id,
                        "last_status": row.status,
                        "last_start_time": row.start_time,
                        "pipeline_version": row.pipeline_version,
                    },
                )
        return list(summaries.values())

    def save_step_execution(self, execution: StepExecution) -> None:
        """Insert or replace a step execution."""
        row = {
            "id": execution.id,
            "pipeline_run_id": execution.pipeline_run_id,
            "step_name": execution.step_name,
            "step_version": execution.step_version,
            "cache_key": execution.cache_key,
            "status": execution.status.value,
            "start_time": execution.start_time,
            "end_time": execution.end_time,
            "attempts": execution.attempts,
            "executor": execution.executor,
            "host": execution.host,
            "params_json": json.dumps(execution.params, default=str),
            "inputs_json": json.dumps(execution.inputs),
            "outputs_json": json.dumps([o.to_dict() for o in execution.outputs]),
            "upstream_json": json.dumps(list(execution.upstream)),
            "logs_sha256": execution.logs_sha256,
            "error": execution.error,
            "traceback": execution.traceback,
            "cache_reason": execution.cache_reason,
            "run_id": execution.run_id,
        }
        with self._write() as conn:
            upsert(conn, StepExecutionRow, [row], keys=["id"], update=_STEP_COLUMNS)

    @staticmethod
    def _step(row: Any) -> StepExecution:
        return StepExecution(
            id=row.id,
            pipeline_run_id=row.pipeline_run_id,
            step_name=row.step_name,
            step_version=row.step_version,
            cache_key=row.cache_key,
            status=StepStatus(row.status),
            start_time=row.start_time,
            end_time=row.end_time,
            attempts=row.attempts,
            executor=row.executor,
            host=row.host,
            params=json.loads(row.params_json),
            inputs=json.loads(row.inputs_json),
            outputs=tuple(OutputRef.from_dict(o) for o in json.loads(row.outputs_json)),
            upstream=tuple(json.loads(row.upstream_json)),
            logs_sha256=row.logs_sha256,
            error=row.error,
            traceback=row.traceback,
            cache_reason=row.cache_reason,
            run_id=row.run_id,
        )

    def list_step_executions(self, pipeline_run_id: str) -> list[StepExecution]:
        """Return a pipeline run's step executions, in start order."""
        with self._read() as conn:
            rows = conn.execute(
                select(StepExecutionRow)
                .where(StepExecutionRow.pipeline_run_id == pipeline_run_id)
                .order_by(
                    StepExecutionRow.start_time.is_(None),
                    StepExecutionRow.start_time,
                    StepExecutionRow.step_name,
                )
            ).all()
        return [self._step(row) for row in rows]

    def find_cached_execution(self, step_name: str, cache_key: str) -> StepExecution | None:
        """The latest COMPLETED execution of a step with this cache key, or None."""
        with self._read() as conn:
            row = conn.execute(
                select(StepExecutionRow)
                .where(
                    StepExecutionRow.cache_key == cache_key,
                    StepExecutionRow.step_name == step_name,
                    StepExecutionRow.status == StepStatus.COMPLETED.value,
                )
                .order_by(StepExecutionRow.end_time.desc())
                .limit(1)
            ).first()
        return None if row is None else self._step(row)

    def previous_step_execution(
        self, pipeline_name: str, step_name: str, before_run_id: str
    ) -> StepExecution | None:
        """The latest successful execution of the step in another run of the pipeline."""
        with self._read() as conn:
            row = conn.execute(
                select(StepExecutionRow)
                .join(PipelineRunRow, PipelineRunRow.id == StepExecutionRow.pipeline_run_id)
                .where(
                    PipelineRunRow.pipeline_name == pipeline_name,
                    PipelineRunRow.id != before_run_id,
                    StepExecutionRow.step_name == step_name,
                    StepExecutionRow.status.in_(
                        [StepStatus.COMPLETED.value, StepStatus.CACHED.value]
                    ),
                )
                .order_by(StepExecutionRow.end_time.desc())
                .limit(1)
            ).first()
        return None if row is None else self._step(row)
