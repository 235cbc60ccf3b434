"""``/api/v1/pipelines``: pipelines, their runs, a run's step tree and a step's logs.

Read-only routes over :class:`~loopml.pipelines.service.PipelineService` (so a ``reader``
token is enough). Run ids may be given as unique prefixes of 8 or more characters, as the
CLI shows them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from loopml.server.deps import Pipelines

router = APIRouter(prefix="/api/v1/pipelines", tags=["pipelines"])


class PipelineSummaryOut(BaseModel):
    """A pipeline that has runs, with its last run."""

    pipeline_name: str
    runs: int
    last_run_id: str
    last_status: str
    last_start_time: int
    pipeline_version: str


class PipelineListOut(BaseModel):
    """Pipelines that have runs, by name."""

    pipelines: list[PipelineSummaryOut]


class PipelineRunOut(BaseModel):
    """One run of a pipeline."""

    id: str
    pipeline_name: str
    pipeline_version: str
    status: str = Field(description="RUNNING, COMPLETED or FAILED.")
    start_time: int
    end_time: int | None
    duration_ms: int | None
    executor: str
    host: str
    params: dict[str, Any]
    run_id: str | None = Field(description="The tracking run that holds the run's metrics.")
    trigger: str
    error: str | None


class PipelineRunListOut(BaseModel):
    """One page of pipeline runs, newest first; ``next_offset`` is null on the last page."""

    runs: list[PipelineRunOut]
    next_offset: int | None


class OutputRefOut(BaseModel):
    """A stored step output."""

    name: str
    sha256: str
    size: int
    materializer: str
    type_name: str


class StepExecutionOut(BaseModel):
    """One step of a run: what ran (or came from the cache), how long, and why."""

    id: str
    pipeline_run_id: str
    step_name: str
    step_version: str
    cache_key: str
    status: str = Field(description="PENDING, RUNNING, COMPLETED, CACHED, FAILED or SKIPPED.")
    start_time: int | None
    end_time: int | None
    duration_ms: int | None
    attempts: int
    executor: str
    host: str
    params: dict[str, Any]
    inputs: dict[str, str] = Field(description="Input name to the sha256 of its blob.")
    outputs: list[OutputRefOut]
    upstream: list[str] = Field(description="Steps this one reads from.")
    logs_sha256: str | None
    has_logs: bool
    error: str | None
    traceback: str | None
    cache_hit: bool
    cache_reason: str = Field(description="Why the step was (or was not) taken from the cache.")
    run_id: str | None = Field(description="The tracking run of the step's metrics.")


class StepSummaryOut(BaseModel):
    """Step counts of a run."""

    steps: int
    cache_hits: int
    by_status: dict[str, int]


class PipelineRunTreeOut(BaseModel):
    """A run with its steps, upstream steps first (each names its ``upstream``)."""

    run: PipelineRunOut
    steps: list[StepExecutionOut]
    summary: StepSummaryOut


@router.get("", response_model=PipelineListOut)
def list_pipelines(pipelines: Pipelines) -> dict[str, Any]:
    """Pipelines that have runs, by name, each with its last run."""
    return {"pipelines": pipelines.list_pipelines()}


@router.get("/runs", response_model=PipelineRunListOut)
def list_pipeline_runs(
    pipelines: Pipelines,
    pipeline: Annotated[str | None, Query(description="Only runs of this pipeline.")] = None,
    max_results: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Pipeline runs, newest first; page with ``offset`` and ``next_offset``."""
    runs = pipelines.list_runs(pipeline, limit=max_results + 1, offset=offset)
    more = len(runs) > max_results
    return {
        "runs": [r.to_dict() for r in runs[:max_results]],
        "next_offset": offset + max_results if more else None,
    }


@router.get("/runs/{run_id}", response_model=PipelineRunTreeOut)
def get_pipeline_run(run_id: str, pipelines: Pipelines) -> dict[str, Any]:
    """A run and its steps: status, duration, cache hits and their reasons, errors."""
    return pipelines.tree(run_id)


@router.get(
    "/runs/{run_id}/steps/{step}/logs",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "What the step printed."}},
)
def get_step_logs(run_id: str, step: str, pipelines: Pipelines) -> PlainTextResponse:
    """What a step printed (stdout and stderr, with the traceback of a failure)."""
    return PlainTextResponse(pipelines.step_logs(run_id, step))
