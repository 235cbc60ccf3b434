"""``/api/v1/deployments``: deployment configurations, their traffic shares and decisions.

Deployments are applied and served elsewhere (``loopml deploy apply``, ``loopml deploy
serve``, the loop controller); these routes read back the stored revisions and events.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse

from loopml.config import Settings
from loopml.entities._json import jsonable
from loopml.errors import LoopmlError
from loopml.registry.service import RegistryService
from loopml.serving.deployment import canary_state, parse_deployment
from loopml.store.base import DeploymentStore
from loopml.store.registry import open_deployment_store

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])

__all__ = ["install", "router"]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the deployment routes to ``app``, over the settings' store."""
    app.state.deployments = open_deployment_store(settings)
    app.include_router(router)


def get_deployments(request: Request) -> DeploymentStore:
    """Return the app's :class:`DeploymentStore`."""
    store: DeploymentStore = request.app.state.deployments
    return store


Deployments = Annotated[DeploymentStore, Depends(get_deployments)]


def _resolved_version(registry: RegistryService, spec: str) -> int | None:
    try:
        return registry.resolve(spec).version
    except LoopmlError:
        # The alias was deleted or the version archived since the revision was applied.
        return None


@router.get("")
def list_deployments(store: Deployments) -> JSONResponse:
    """Every deployment's latest revision, by name."""
    records = [d.summary() for d in store.list_deployments()]
    return JSONResponse(jsonable({"deployments": records}))


@router.get("/{name}")
def get_deployment(
    request: Request,
    store: Deployments,
    name: Annotated[str, Path(min_length=1, max_length=250)],
    events: Annotated[int, Query(ge=1, le=10_000, description="Most recent events.")] = 100,
) -> JSONResponse:
    """A deployment: latest config, its revisions, each variant's version and share, events."""
    stored = store.get_deployment(name)
    config = parse_deployment(stored.config, source=f"deployment {name!r}")
    history = store.list_deployment_events(name)
    shares, canary = canary_state(config, history, stored.revision)
    registry: RegistryService = request.app.state.registry
    variants = [
        {
            "name": plan.name,
            "role": plan.role,
            "model": plan.spec,
            "version": _resolved_version(registry, plan.spec),
            "weight": plan.weight,
            "share": shares[plan.name],
        }
        for plan in config.plans()
    ]
    revisions = [
        {"revision": r.revision, "applied_at": r.applied_at, "user": r.user}
        for r in store.list_deployment_revisions(name)
    ]
    body = {
        "name": stored.name,
        "revision": stored.revision,
        "model": config.model,
        "applied_at": stored.applied_at,
        "user": stored.user,
        "config": stored.config,
        "variants": variants,
        "shares": shares,
        "canary": canary,
        "revisions": revisions,
        "events": [e.to_dict() for e in history[-events:]],
    }
    return JSONResponse(jsonable(body))
