"""``/api/v1/monitors`` (list, status, history, HTML report) and the server's ``/metrics``.

Monitors run elsewhere (``loopml monitor run`` from cron, a pipeline step, the SDK) and
store their results; these routes read them back. ``/metrics`` exports, in the Prometheus
text format, this process's CPU, memory and garbage collector figures and the monitoring
gauges of :mod:`loopml.monitoring.metrics`, reloaded from the latest stored run of every
monitor at each scrape.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from loopml.config import Settings
from loopml.entities._json import jsonable
from loopml.monitoring.metrics import MonitorMetrics
from loopml.monitoring.service import MonitorService
from loopml.store.registry import open_monitor_store

router = APIRouter(prefix="/api/v1/monitors", tags=["monitors"])
metrics_router = APIRouter(tags=["metrics"])

__all__ = ["install", "metrics_router", "router"]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the monitor routes and ``/metrics`` to ``app``, over the settings' store."""
    store = open_monitor_store(settings)
    # A registry per app rather than prometheus_client's global one, so that several apps
    # in one process (tests) never register the same collector twice.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    app.state.monitors = MonitorService(store)
    app.state.monitor_metrics = MonitorMetrics()
    app.state.process_metrics = registry
    app.include_router(router)
    app.include_router(metrics_router)


def get_monitors(request: Request) -> MonitorService:
    """Return the app's :class:`MonitorService`."""
    service: MonitorService = request.app.state.monitors
    return service


Monitors = Annotated[MonitorService, Depends(get_monitors)]


@router.get("")
def list_monitors(monitors: Monitors) -> JSONResponse:
    """Every monitor, saved or only run, with its model, latest verdict and firing alerts."""
    return JSONResponse(jsonable({"monitors": monitors.overview()}))


@router.get("/{model}/status")
def get_status(model: str, monitors: Monitors) -> JSONResponse:
    """The latest verdict and run result of the model's monitor, and its firing alerts."""
    return JSONResponse(jsonable(monitors.status(model)))


@router.get("/{model}/history")
def get_history(
    model: str,
    monitors: Monitors,
    n: Annotated[int, Query(ge=1, le=1000, description="How many runs, newest first.")] = 20,
) -> JSONResponse:
    """The latest ``n`` run results of the model's monitor, newest first."""
    runs = [r.to_dict() for r in monitors.history(model, n)]
    return JSONResponse(jsonable({"model": model, "runs": runs}))


@router.get(
    "/{model}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "The HTML report."}},
)
def get_report(
    model: str,
    monitors: Monitors,
    n: Annotated[int, Query(ge=1, le=1000, description="Runs shown in the trends.")] = 50,
) -> HTMLResponse:
    """A self-contained HTML report: verdicts, distributions, drift and quality over time."""
    return HTMLResponse(monitors.render_report(model, n))


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."}},
)
def get_metrics(request: Request) -> Response:
    """Process metrics and the monitoring gauges, in the Prometheus text format."""
    gauges: MonitorMetrics = request.app.state.monitor_metrics
    monitors: MonitorService = request.app.state.monitors
    gauges.refresh(monitors.store)
    body = generate_latest(request.app.state.process_metrics) + generate_latest(gauges.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
