"""The tracking server: :func:`create_app` builds the FastAPI application.

The app is a thin HTTP shell over :class:`~loopml.tracking.service.TrackingService`, which
owns validation and the use cases; the routers only translate. Around the routers sit, from
the outside in: a last-resort JSON 500, the Host/Origin guard, the body size limits, then
the per-request auth dependency (when auth is on).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from starlette.middleware import Middleware

from loopml import __version__
from loopml.auth import AuthService
from loopml.config import Settings, load_settings
from loopml.errors import InvalidInput
from loopml.pipelines.service import PipelineService
from loopml.registry.service import RegistryService
from loopml.server import ui
from loopml.server.auth import authorize, public
from loopml.server.errors import CatchAllMiddleware, install_error_handlers
from loopml.server.routers import (
    artifacts,
    datasets,
    deployments,
    experiments,
    loop,
    models,
    monitoring,
    monitors,
    pipelines,
    runs,
)
from loopml.server.routers import auth as tokens
from loopml.server.schemas import ErrorOut, HealthOut
from loopml.server.security import BodyLimitMiddleware, BrowserGuardMiddleware, HostPolicy
from loopml.store.registry import (
    open_pipeline_stores,
    open_registry_stores,
    open_tracking_stores,
)
from loopml.tracking.service import TrackingService

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

_DESCRIPTION = """\
The loopml tracking API: experiments, runs, params, metrics, tags and artifacts; pipeline
runs; the model registry (models, versions, aliases, audit trail, model cards).

Errors are JSON: `{"error": code, "message": text, "field": name}`. Metric values that JSON
cannot carry travel as the strings `"nan"`, `"inf"` and `"-inf"`. On a server started with
auth, send `Authorization: Bearer <token>`: `reader` tokens may GET, `writer` tokens may
also change tracking data, `admin` tokens may also manage tokens and move the `champion`
model alias.
"""
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 500)
}


@public
def health() -> dict[str, Any]:
    """Liveness probe; never needs a token."""
    return {"status": "ok", "version": __version__}


def create_app(
    settings: Settings | None = None,
    *,
    auth: bool = False,
    allowed_hosts: list[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_upload_bytes: int | None = None,
) -> FastAPI:
    """Build the tracking server application.

    Parameters
    ----------
    settings : Settings, optional
        Where the metadata and artifacts live; default :func:`~loopml.config.load_settings`.
    auth : bool, default False
        Require a bearer token on every route except ``/health`` and the API docs.
    allowed_hosts : list of str, optional
        ``Host`` names accepted besides ``127.0.0.1``, ``localhost``, ``::1`` and
        ``testserver``; ``"*"`` accepts any, ``"*.example.com"`` any subdomain.
    max_body_bytes : int, default 32 MiB
        Largest JSON request body; larger ones get 413.
    max_upload_bytes : int, optional
        Largest artifact upload; default the ``max_upload_bytes`` setting when there is
        one, else 2 GiB.

    Returns
    -------
    FastAPI
        The application; serve it with uvicorn (see :func:`loopml.server.run.serve`).

    Raises
    ------
    InvalidInput
        When the settings name a tracking URI (the server would forward every request to
        a server, possibly itself), or auth is asked for without a token store.
    """
    settings = settings if settings is not None else load_settings()
    if settings.tracking_uri:
        raise InvalidInput(
            f"the server stores data itself and cannot use a tracking URI "
            f"({settings.tracking_uri}); unset LOOPML_TRACKING_URI to start it",
            field="tracking_uri",
        )
    stores = open_tracking_stores(settings)
    tracking = TrackingService(
        stores.experiments,
        stores.runs,
        stores.artifacts,
        heartbeat_timeout=settings.run_heartbeat_timeout,
    )
    pipeline_stores = open_pipeline_stores(settings)
    registry_stores = open_registry_stores(settings)
    auth_service = AuthService(stores.auth) if stores.auth is not None else None
    if auth and auth_service is None:
        raise InvalidInput("auth needs a metadata store that keeps tokens", field="auth")
    if max_upload_bytes is None:
        max_upload_bytes = settings.max_upload_bytes

    app = FastAPI(
        title="loopml",
        version=__version__,
        description=_DESCRIPTION,
        dependencies=[Depends(authorize)],
        responses=_ERRORS,
        middleware=[
            Middleware(CatchAllMiddleware),
            Middleware(BrowserGuardMiddleware, policy=HostPolicy(allowed_hosts)),
            Middleware(
                BodyLimitMiddleware,
                max_body_bytes=max_body_bytes,
                max_upload_bytes=max_upload_bytes,
                upload_pattern=artifacts.UPLOAD_PATTERN,
            ),
        ],
    )
    app.state.tracking = tracking
    app.state.auth = auth_service
    app.state.pipelines = PipelineService(pipeline_stores.pipelines, pipeline_stores.blobs)
    app.state.registry = RegistryService(
        registry_stores.registry, tracking, registry_stores.lineage
    )
    app.state.auth_enabled = auth
    app.state.settings = settings
    install_error_handlers(app)
    app.add_api_route("/health", health, methods=["GET"], response_model=HealthOut, tags=["health"])
    routers = (
        experiments.router,
        runs.router,
        artifacts.router,
        pipelines.router,
        models.router,
        monitoring.router,
        tokens.router,
    )
    for router in routers:
        app.include_router(router)
    monitors.install(app, settings)
    loop.install(app, settings)
    datasets.install(app, settings)
    deployments.install(app, settings)
    ui.install(app)
    return app
