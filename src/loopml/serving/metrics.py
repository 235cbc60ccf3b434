"""Prometheus metrics of one serving app, kept in the app's own registry."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServingMetrics:
    """Request counts, latency, batch sizes, model versions, variants and in-flight requests.

    Each app owns its :class:`~prometheus_client.CollectorRegistry`, so several apps (and
    tests) in one process never share counters.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "loopml_serving_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "loopml_serving_request_latency_seconds",
            "Time to answer a request, by route.",
            ["route"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "loopml_serving_batch_size",
            "Rows in each predict call the micro-batcher made.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "loopml_serving_model_info",
            "The model being served (value 1).",
            ["name", "version"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "loopml_serving_in_flight_requests",
            "Requests being answered right now.",
            registry=self.registry,
        )

        self.variant_requests = Counter(
            "loopml_serving_variant_requests",
            "Predictions answered, by deployment variant and outcome (ok or error).",
            ["variant", "outcome"],
            registry=self.registry,
        )
        self.variant_latency = Histogram(
            "loopml_serving_variant_latency_seconds",
            "Time a variant took to predict, by deployment variant.",
            ["variant"],
            registry=self.registry,
        )
        self.variant_share = Gauge(
            "loopml_serving_variant_share",
            "Share of the traffic each variant answers (shadows 0).",
            ["variant", "role", "name", "version"],
            registry=self.registry,
        )
        self.shadow_predictions = Counter(
            "loopml_serving_shadow_predictions",
            "Requests copied to a shadow variant, by variant and outcome (ok or error).",
            ["variant", "outcome"],
            registry=self.registry,
        )

    def set_variants(self, variants: Iterable[tuple[str, str, str, str, float]]) -> None:
        """Record the variants served as ``(variant, role, name, version, share)``.

        ``loopml_serving_model_info`` then names every distinct model version loaded.
        """
        self.variant_share.clear()
        self.model_info.clear()
        for variant, role, name, version, share in variants:
            self.variant_share.labels(variant=variant, role=role, name=name, version=version).set(
                share
            )
            self.model_info.labels(name=name, version=version).set(1)

    def observe_variant(self, variant: str, seconds: float, ok: bool) -> None:
        """Count one prediction of a variant and its latency."""
        self.variant_requests.labels(variant=variant, outcome="ok" if ok else "error").inc()
        self.variant_latency.labels(variant=variant).observe(seconds)

    def set_model(self, name: str, version: str) -> None:
        """Record the model now served, dropping any previous one."""
        self.model_info.clear()
        self.model_info.labels(name=name, version=version).set(1)

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Count and time every HTTP request; unknown paths share the route label ``other``.

    Parameters
    ----------
    app : ASGIApp
        The wrapped application.
    metrics : ServingMetrics
        Where to record.
    routes : frozenset of str
        Paths reported under their own name.
    """

    def __init__(self, app: ASGIApp, metrics: ServingMetrics, routes: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app, recording status and latency."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else "other"
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(route=route, status=str(status)).inc()
