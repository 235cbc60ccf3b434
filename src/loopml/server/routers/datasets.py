"""``/api/v1/datasets`` (catalogue, versions, profiles, validations) and run lineage.

Datasets are registered and validated elsewhere (the SDK, ``loopml data``, pipeline steps);
these routes read back what the dataset store records. ``{version}`` takes what the SDK
takes: a number (``3`` or ``v3``), ``latest``, or a digest prefix.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse

from loopml.config import Settings
from loopml.data.datasets import DatasetService
from loopml.entities._json import jsonable
from loopml.server.deps import Tracking, checked_run_id
from loopml.store.registry import open_data_stores

router = APIRouter(prefix="/api/v1", tags=["datasets"])

__all__ = ["install", "router"]

DatasetName = Annotated[str, Path(min_length=1, max_length=250, description="Dataset name.")]
VersionSpec = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="A version number (3 or v3), 'latest', or a digest prefix.",
    ),
]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the dataset routes to ``app``, over the settings' stores."""
    stores = open_data_stores(settings)
    app.state.datasets = DatasetService(stores.datasets, stores.blobs)
    app.include_router(router)


def get_datasets(request: Request) -> DatasetService:
    """Return the app's :class:`DatasetService`."""
    service: DatasetService = request.app.state.datasets
    return service


Datasets = Annotated[DatasetService, Depends(get_datasets)]


def _version_out(data: dict[str, Any], uri: str) -> dict[str, Any]:
    return {**data, "uri": uri}


@router.get("/datasets")
def list_datasets(datasets: Datasets) -> JSONResponse:
    """Every dataset by name, with its latest version and last update time."""
    return JSONResponse(
        jsonable(
            {
                "datasets": [
                    {**d.to_dict(), "updated": d.last_update_time} for d in datasets.list_datasets()
                ]
            }
        )
    )


@router.get("/datasets/{name}/versions")
def list_versions(name: DatasetName, datasets: Datasets) -> JSONResponse:
    """A dataset's versions, oldest first (404 for an unknown dataset)."""
    versions = [_version_out(v.to_dict(), v.uri) for v in datasets.list_versions(name)]
    return JSONResponse(jsonable({"name": name, "versions": versions}))


@router.get("/datasets/{name}/versions/{version}")
def get_version(name: DatasetName, version: VersionSpec, datasets: Datasets) -> JSONResponse:
    """A version's metadata: digest, rows, columns, source, run, tags, and the dataset schema."""
    resolved = datasets.resolve(name, version)
    schema = datasets.store.get_dataset_schema(resolved.name)
    return JSONResponse(
        jsonable({**_version_out(resolved.to_dict(), resolved.uri), "schema": schema})
    )


@router.get("/datasets/{name}/versions/{version}/profile")
def get_profile(name: DatasetName, version: VersionSpec, datasets: Datasets) -> JSONResponse:
    """The version's profile: per-column statistics, quantiles, top values and histogram bins.

    A version registered without a profile is profiled now, once; the result is stored.
    """
    resolved = datasets.resolve(name, version)
    profile = datasets.profile(resolved.name, resolved.version)
    return JSONResponse(jsonable({"uri": resolved.uri, **profile.to_dict()}))


@router.get("/datasets/{name}/versions/{version}/validations")
def list_validations(name: DatasetName, version: VersionSpec, datasets: Datasets) -> JSONResponse:
    """The stored validation results of the version (checks and anomalies), newest first."""
    resolved = datasets.resolve(name, version)
    records = datasets.store.list_validation_results(resolved.name, resolved.version)
    return JSONResponse(
        jsonable({"uri": resolved.uri, "validations": [r.to_dict() for r in records]})
    )


@router.get("/runs/{run_id}/lineage")
def get_run_lineage(run_id: str, tracking: Tracking, datasets: Datasets) -> JSONResponse:
    """Dataset versions the run read or wrote and model versions registered from it.

    Each dataset entry's ``context`` is ``input`` or ``output``; both lists are empty when
    nothing was recorded.
    """
    run = tracking.get_run(checked_run_id(run_id))
    return JSONResponse(jsonable(datasets.run_lineage(run.run_id)))
