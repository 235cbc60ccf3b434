"""FastAPI dependencies that hand the routers their services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from loopml.auth import AuthService
from loopml.errors import NotFound, PermissionDenied
from loopml.pipelines.service import PipelineService
from loopml.tracking.service import TrackingService


def get_tracking(request: Request) -> TrackingService:
    """Return the app's :class:`TrackingService`."""
    service: TrackingService = request.app.state.tracking
    return service


def get_pipelines(request: Request) -> PipelineService:
    """Return the app's :class:`PipelineService`."""
    service: PipelineService = request.app.state.pipelines
    return service


def get_auth_service(request: Request) -> AuthService:
    """Return the app's :class:`AuthService`, refusing when token management is off.

    Tokens are only managed over HTTP on a server started with auth: on an open server
    anyone could mint an admin token that would stay valid once auth is switched on.
    """
    service: AuthService | None = request.app.state.auth
    if service is None or not request.app.state.auth_enabled:
        raise PermissionDenied(
            "token management over HTTP needs a server started with --auth; "
            "use 'loopml server token' on the server machine instead"
        )
    return service


Tracking = Annotated[TrackingService, Depends(get_tracking)]
Auth = Annotated[AuthService, Depends(get_auth_service)]
Pipelines = Annotated[PipelineService, Depends(get_pipelines)]


def checked_run_id(run_id: str) -> str:
    """Refuse a malformed run id as unknown, as the tracking service does."""
    if not run_id or len(run_id) > 64 or not run_id.isalnum() or not run_id.isascii():
        raise NotFound(f"run {run_id!r:.80} does not exist", field="run_id")
    return run_id
