"""``/api/v1/runs``: run lifecycle, logging, metric history, search and gc.

Routes map one to one onto :class:`~loopml.tracking.service.TrackingService`. The few store
operations the service does not wrap (``set_run_status`` with ``only_if_running``, a
heartbeat at a given time) are passed to its run store after the same id check.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from loopml.errors import InvalidInput
from loopml.server.deps import Tracking
from loopml.server.schemas import (
    GcIn,
    GcOut,
    HeartbeatIn,
    LogBatch,
    MetricHistory,
    MetricIn,
    ParamIn,
    RunCreate,
    RunEnd,
    RunOut,
    RunRename,
    RunSearchOut,
    RunStatusIn,
    RunStatusOut,
    TagIn,
)

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


def encode_page_token(offset: int) -> str:
    """Return the opaque token of a result page that starts at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str) -> int:
    """Return the offset a page token stands for, or raise :class:`InvalidInput`."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        offset = data["offset"]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError):
        raise InvalidInput(
            "page_token is not a token this server issued", field="page_token"
        ) from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput("page_token is not a token this server issued", field="page_token")
    return offset


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunOut)
def create_run(body: RunCreate, tracking: Tracking) -> dict[str, Any]:
    """Start a RUNNING run in an active experiment."""
    run = tracking.create_run(
        experiment_id=body.experiment_id,
        run_name=body.run_name,
        tags=body.tags,
        parent_run_id=body.parent_run_id,
        user=body.user,
        start_time=body.start_time,
        host=body.host,
        pid=body.pid,
    )
    return run.to_dict()


# Declared before /{run_id} so "search" is never read as a run id.
@router.get("/search", response_model=RunSearchOut)
def search_runs(
    tracking: Tracking,
    experiment_ids: Annotated[list[str] | None, Query()] = None,
    filter_string: str | None = None,
    order_by: Annotated[list[str] | None, Query()] = None,
    max_results: int = 1000,
    offset: int | None = None,
    page_token: str | None = None,
    include_deleted: bool = False,
) -> dict[str, Any]:
    """Search runs with the filter syntax, e.g. ``metrics.acc > 0.9 and params.m = 'rf'``.

    Without ``experiment_ids`` every active experiment is searched. Page with ``offset``
    or with the ``next_page_token`` of the previous page.
    """
    if page_token is not None and offset is not None:
        raise InvalidInput("pass offset or page_token, not both", field="page_token")
    start = decode_page_token(page_token) if page_token is not None else (offset or 0)
    page = tracking.search_runs(
        experiment_ids, filter_string, order_by, max_results, start, include_deleted
    )
    following = page.next_offset
    return {
        "runs": [r.to_dict() for r in page.runs],
        "next_offset": following,
        "next_page_token": None if following is None else encode_page_token(following),
    }


@router.post("/gc", response_model=GcOut)
def gc_runs(tracking: Tracking, body: GcIn | None = None) -> dict[str, Any]:
    """Mark RUNNING runs whose process is gone (or silent for ``timeout`` s) KILLED."""
    return {"killed": tracking.gc_runs(body.timeout if body else None)}


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: str, tracking: Tracking) -> dict[str, Any]:
    """Return a run with its latest metrics, params and tags."""
    return tracking.get_run(run_id).to_dict()


@router.patch("/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
def rename_run(run_id: str, body: RunRename, tracking: Tracking) -> None:
    """Rename a run."""
    tracking.rename_run(run_id, body.run_name)


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_run(run_id: str, tracking: Tracking) -> None:
    """Soft-delete a run."""
    tracking.delete_run(run_id)


@router.post("/{run_id}/restore", status_code=status.HTTP_204_NO_CONTENT)
def restore_run(run_id: str, tracking: Tracking) -> None:
    """Undo a delete."""
    tracking.restore_run(run_id)


@router.post("/{run_id}/end", response_model=RunOut)
def end_run(run_id: str, tracking: Tracking, body: RunEnd | None = None) -> dict[str, Any]:
    """End a run as FINISHED (default), FAILED or KILLED and return it."""
    body = body or RunEnd()
    return tracking.end_run(run_id, body.status, body.end_time).to_dict()


@router.post("/{run_id}/status", response_model=RunStatusOut)
def set_run_status(run_id: str, body: RunStatusIn, tracking: Tracking) -> dict[str, Any]:
    """Set a run's status; says whether anything changed (see ``only_if_running``)."""
    changed = tracking.set_run_status(
        run_id, body.status, body.end_time, only_if_running=body.only_if_running
    )
    return {"changed": changed}


@router.post("/{run_id}/heartbeat", status_code=status.HTTP_204_NO_CONTENT)
def heartbeat(run_id: str, tracking: Tracking, body: HeartbeatIn | None = None) -> None:
    """Record that the process owning the run is alive."""
    tracking.heartbeat(run_id, None if body is None else body.time_ms)


@router.post("/{run_id}/log-batch", status_code=status.HTTP_204_NO_CONTENT)
def log_batch(run_id: str, body: LogBatch, tracking: Tracking) -> None:
    """Write metrics, params and tags atomically (409 when a param would change)."""
    tracking.log_batch(run_id, [m.model_dump() for m in body.metrics], body.params, body.tags)


@router.post("/{run_id}/metrics", status_code=status.HTTP_204_NO_CONTENT)
def log_metric(run_id: str, body: MetricIn, tracking: Tracking) -> None:
    """Log one metric value."""
    tracking.log_metric(run_id, body.key, body.value, body.step, body.timestamp)


@router.get("/{run_id}/metrics/{key:path}", response_model=MetricHistory)
def get_metric_history(run_id: str, key: str, tracking: Tracking) -> dict[str, Any]:
    """Every value of one metric, by step then timestamp."""
    return {"metrics": [m.to_dict() for m in tracking.get_metric_history(run_id, key)]}


@router.post("/{run_id}/params", status_code=status.HTTP_204_NO_CONTENT)
def log_param(run_id: str, body: ParamIn, tracking: Tracking) -> None:
    """Log one write-once param."""
    tracking.log_param(run_id, body.key, body.value)


@router.post("/{run_id}/tags", status_code=status.HTTP_204_NO_CONTENT)
def set_tag(run_id: str, body: TagIn, tracking: Tracking) -> None:
    """Set one tag."""
    tracking.set_tag(run_id, body.key, body.value)


@router.delete("/{run_id}/tags/{key:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_tag(run_id: str, key: str, tracking: Tracking) -> None:
    """Remove one tag (404 if the run has no such tag)."""
    tracking.delete_tag(run_id, key)
