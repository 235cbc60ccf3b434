"""``/api/v1/experiments``: create, read, list, delete, restore and tag experiments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status

from loopml.server.deps import Tracking
from loopml.server.schemas import (
    ExperimentCreate,
    ExperimentCreated,
    ExperimentKeys,
    ExperimentList,
    ExperimentOut,
    TagIn,
)

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ExperimentCreated)
def create_experiment(body: ExperimentCreate, tracking: Tracking) -> dict[str, Any]:
    """Create an experiment (409 if the name is taken)."""
    return {"experiment_id": tracking.create_experiment(body.name, body.tags)}


@router.get("", response_model=ExperimentList)
def list_experiments(tracking: Tracking, include_deleted: bool = False) -> dict[str, Any]:
    """List experiments ordered by id; deleted ones only with ``include_deleted``."""
    experiments = tracking.list_experiments(include_deleted=include_deleted)
    return {"experiments": [e.to_dict() for e in experiments]}


# Declared before /{experiment_id} so "by-name" is never read as an id.
@router.get("/by-name", response_model=ExperimentOut)
def get_experiment_by_name(tracking: Tracking, name: str = Query(...)) -> dict[str, Any]:
    """Return the experiment with this name (404 if there is none)."""
    return tracking.get_experiment_by_name(name).to_dict()


@router.get("/{experiment_id}", response_model=ExperimentOut)
def get_experiment(experiment_id: str, tracking: Tracking) -> dict[str, Any]:
    """Return an experiment by id."""
    return tracking.get_experiment(experiment_id).to_dict()


@router.get("/{experiment_id}/keys", response_model=ExperimentKeys)
def get_experiment_keys(experiment_id: str, tracking: Tracking) -> dict[str, Any]:
    """The distinct metric, param and tag keys of the experiment's active runs, sorted."""
    return tracking.experiment_keys(experiment_id)


@router.delete("/{experiment_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_experiment(experiment_id: str, tracking: Tracking) -> None:
    """Soft-delete an experiment (its runs are hidden from searches)."""
    tracking.delete_experiment(experiment_id)


@router.post("/{experiment_id}/restore", status_code=status.HTTP_204_NO_CONTENT)
def restore_experiment(experiment_id: str, tracking: Tracking) -> None:
    """Undo a delete."""
    tracking.restore_experiment(experiment_id)


@router.post("/{experiment_id}/tags", status_code=status.HTTP_204_NO_CONTENT)
def set_experiment_tag(experiment_id: str, body: TagIn, tracking: Tracking) -> None:
    """Set one tag on an active experiment."""
    tracking.set_experiment_tag(experiment_id, body.key, body.value)
