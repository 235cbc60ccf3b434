"""The serving app: ``POST /predict`` for one registered model, with health and metrics.

The request body is checked by a pydantic model generated from the model's signature, so a
bad body is a 422 naming the field before any prediction runs; concurrent requests are
coalesced by the :class:`~loopml.serving.batcher.MicroBatcher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from starlette.middleware import Middleware

from loopml.errors import InvalidInput
from loopml.models import signature as signatures
from loopml.models.storage import LoadedModel
from loopml.server.errors import CatchAllMiddleware, error_response, install_error_handlers
from loopml.server.security import BodyLimitMiddleware
from loopml.serving.batcher import MicroBatcher, Overloaded
from loopml.serving.metrics import MetricsMiddleware, ServingMetrics

logger = logging.getLogger("loopml.serving")

#: Default request body limit (1 MiB).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
ROUTES = frozenset({"/predict", "/health", "/ready", "/metadata", "/metrics"})
_NEVER = re.compile(r"(?!)")

ExtraFields = Literal["reject", "ignore"]
ModelLoader = Callable[[str], LoadedModel]

_FIELD_TYPES: dict[str, Any] = {
    "integer": Annotated[int, Field(strict=True)],
    "double": Annotated[float, Field(strict=True, allow_inf_nan=False)],
    "boolean": Annotated[bool, Field(strict=True)],
    "string": Annotated[str, Field(strict=True)],
    "datetime": datetime,
}


def build_request_model(
    signature: dict[str, Any] | None, extra_fields: ExtraFields = "reject"
) -> type[BaseModel]:
    """Generate the pydantic model of a ``/predict`` body from a model signature.

    Parameters
    ----------
    signature : dict or None
        ``{"inputs": [{"name", "type"}...]}``; without one, records are free-form objects.
    extra_fields : {"reject", "ignore"}
        Whether a field the signature does not name is an error or dropped.

    Returns
    -------
    type of BaseModel
        A model with ``inputs`` (a non-empty list of records) or ``columns`` (equal-length
        lists per field); exactly one of the two must be given.
    """
    extra: Literal["forbid", "ignore", "allow"] = "forbid" if extra_fields == "reject" else "ignore"
    columns = (signature or {}).get("inputs") or []
    record_fields: dict[str, Any] = {}
    column_fields: dict[str, Any] = {}
    for index, column in enumerate(columns):
        python_type = _FIELD_TYPES.get(column["type"], Any)
        record_fields[f"f{index}"] = (python_type, Field(alias=column["name"]))
        column_fields[f"f{index}"] = (
            list[python_type],  # type: ignore[valid-type]
            Field(alias=column["name"]),
        )
    config = ConfigDict(extra=extra if columns else "allow", allow_inf_nan=False)
    record: type[BaseModel] = create_model("Record", __config__=config, **record_fields)
    columns_model: type[BaseModel] = create_model("Columns", __config__=config, **column_fields)

    class PredictRequest(BaseModel):
        """The body of ``POST /predict``."""

        model_config = ConfigDict(extra="forbid")

        inputs: list[record] | None = Field(default=None, min_length=1)  # type: ignore[valid-type]
        columns: columns_model | None = None  # type: ignore[valid-type]

        @model_validator(mode="after")
        def _one_layout(self) -> PredictRequest:
            if (self.inputs is None) == (self.columns is None):
                raise ValueError("give exactly one of 'inputs' (records) or 'columns'")
            if self.columns is not None:
                lengths = {len(v) for v in self.columns.model_dump(by_alias=True).values()}
                if len(lengths) > 1:
                    raise ValueError("every list in 'columns' must have the same length")
                if lengths == {0} or not lengths:
                    raise ValueError("'columns' holds no rows")
            return self

    return PredictRequest


def request_frame(body: BaseModel) -> pd.DataFrame:
    """Turn a validated request body into a DataFrame in signature order."""
    inputs = getattr(body, "inputs", None)
    if inputs is not None:
        return pd.DataFrame.from_records([r.model_dump(by_alias=True) for r in inputs])
    columns = getattr(body, "columns")  # noqa: B009 - dynamic model
    return pd.DataFrame(columns.model_dump(by_alias=True))


def _jsonable(values: Any) -> list[Any]:
    return list(np.asarray(values).tolist())


@dataclass
class _Served:
    model: LoadedModel
    name: str
    version: int | None
    has_proba: bool
    batcher: MicroBatcher
    request_model: type[BaseModel]


def _default_loader(spec: str) -> LoadedModel:
    from loopml.models import load

    return load(spec)


def _default_resolver(spec: str) -> tuple[str, int | None]:
    from loopml.registry import resolve

    version = resolve(spec)
    return version.name, version.version


def _validation_failure(exc: ValidationError) -> Response:
    errors = exc.errors()
    if errors and errors[0]["type"] == "json_invalid":
        first = errors[0]
        detail = (first.get("ctx") or {}).get("error", "JSON decode error")
        return error_response(
            400, "invalid_input", f"the request body is not valid JSON: {detail}", field="body"
        )
    located: list[dict[str, Any]] = []
    for error in errors:
        item: dict[str, Any] = dict(error.items())
        item["loc"] = ("body", *error.get("loc", ()))
        located.append(item)
    raise RequestValidationError(located)


def create_serving_app(
    spec: str,
    *,
    max_batch_size: int = 32,
    max_wait_ms: float = 2.0,
    extra_fields: ExtraFields = "reject",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_queue: int = 1024,
    loader: ModelLoader | None = None,
    reload_interval: float | None = None,
    resolver: Callable[[str], tuple[str, int | None]] | None = None,
) -> FastAPI:
    """Build the serving app of one model.

    The model is loaded and warmed (a prediction on its input example) in the app's
    lifespan; ``/ready`` answers 200 only after that.

    Parameters
    ----------
    spec : str
        ``name@alias``, ``name/3``, ``models:/...`` or ``runs:/<id>/<path>``.
    max_batch_size : int
        Rows per coalesced ``predict`` call.
    max_wait_ms : float
        The longest a request waits for others to share its batch.
    extra_fields : {"reject", "ignore"}
        What to do with record fields the signature does not name.
    max_body_bytes : int
        Larger request bodies get 413.
    max_queue : int
        Requests that may wait for a batch; more get 503.
    loader : callable, optional
        Loads the model from ``spec``; ``loopml.models.load`` by default.
    reload_interval : float, optional
        Seconds between registry checks of ``spec`` (an alias); when it names a new version,
        that version is loaded and warmed beside the current one, then served in its place.
        Requests already queued finish on the old model. Off by default.
    resolver : callable, optional
        ``spec -> (name, version)``; ``loopml.registry.resolve`` by default.

    Returns
    -------
    FastAPI
        The app, ready for uvicorn.
    """
    metrics = ServingMetrics()
    load = loader or _default_loader
    state: dict[str, Any] = {}

    async def prepare(model_spec: str) -> _Served:
        """Load and warm a model, and start its batcher."""
        model = await asyncio.to_thread(load, model_spec)
        name, version = model.registered if model.registered else (model_spec, None)
        has_proba = True
        if model.input_example is not None:
            example = signatures.enforce(model.input_example, model.signature)
            await asyncio.to_thread(model.predict, example)
            try:
                await asyncio.to_thread(model.predict_proba, example)
            except InvalidInput:
                has_proba = False
        else:
            has_proba = hasattr(model.model, "predict_proba")

        def predict(frame: pd.DataFrame) -> tuple[Sequence[Any], Sequence[Sequence[float]] | None]:
            # Each request's frame was checked against the signature in the handler; call the
            # inner model so a batch is not validated again (twice, with probabilities).
            inner = model.model
            predictions = _jsonable(inner.predict(frame))
            probabilities = _jsonable(inner.predict_proba(frame)) if has_proba else None
            return predictions, probabilities

        batcher = MicroBatcher(
            predict,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            on_batch=metrics.batch_size.observe,
        )
        await batcher.start()
        return _Served(
            model,
            name,
            version,
            has_proba,
            batcher,
            build_request_model(model.signature, extra_fields),
        )

    def activate(current: _Served) -> None:
        state["served"] = current
        metrics.set_model(current.name, "" if current.version is None else str(current.version))

    async def watch(interval: float) -> None:
        """Poll the registry; serve a new version once it is loaded and warmed."""
        check = resolver or _default_resolver
        while True:
            await asyncio.sleep(interval)
            try:
                name, version = await asyncio.to_thread(check, spec)
                old: _Served = state["served"]
                if (name, version) == (old.name, old.version):
                    continue
                new = await prepare(f"{name}/{version}")
                activate(new)  # atomic: every later request uses the new model
                logger.info("now serving %s version %s (was %s)", name, version, old.version)
                await old.batcher.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not switch to a new version of %s", spec)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        activate(await prepare(spec))
        watcher = (
            asyncio.create_task(watch(reload_interval), name="loopml-model-watch")
            if reload_interval
            else None
        )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            current: _Served | None = state.pop("served", None)
            if current is not None:
                await current.batcher.stop()

    app = FastAPI(
        title="loopml model server",
        lifespan=lifespan,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics, routes=ROUTES),
            Middleware(CatchAllMiddleware),
            Middleware(
                BodyLimitMiddleware,
                max_body_bytes=max_body_bytes,
                max_upload_bytes=max_body_bytes,
                upload_pattern=_NEVER,
            ),
        ],
    )
    install_error_handlers(app)
    app.state.metrics = metrics

    def served() -> _Served:
        current: _Served | None = state.get("served")
        if current is None:
            raise Overloaded("the model is not loaded yet")
        return current

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """Predict for records (``inputs``) or columns (``columns``)."""
        served()
        raw = await request.body()
        # No await between taking the current model and queueing on its batcher, so a
        # hot swap never strands a request on a batcher that is draining.
        current = served()
        try:
            body = current.request_model.model_validate_json(raw)
        except ValidationError as exc:
            return _validation_failure(exc)
        frame = signatures.enforce(request_frame(body), current.model.signature)
        result = await current.batcher.submit(frame)
        request_id = request.headers.get("x-request-id", "")[:100] or uuid.uuid4().hex
        return JSONResponse(
            {
                "predictions": result.predictions,
                "probabilities": result.probabilities,
                "model": current.name,
                "version": current.version,
                "request_id": request_id,
            },
            headers={"X-Request-ID": request_id},
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        """200 once the model is loaded and warmed, 503 before."""
        if "served" not in state:
            return error_response(503, "not_ready", "the model is not loaded yet")
        return JSONResponse({"status": "ready"})

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        """The model served, its version, flavor and signature."""
        current = served()
        return {
            "model": current.name,
            "version": current.version,
            "flavor": current.model.flavor,
            "signature": current.model.signature,
            "probabilities": current.has_proba,
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus metrics."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


def app_from_env() -> FastAPI:
    """Build the app from ``LOOPML_SERVE_*`` variables (for uvicorn ``--workers``)."""
    extra = os.environ.get("LOOPML_SERVE_EXTRA_FIELDS", "reject")
    return create_serving_app(
        os.environ["LOOPML_SERVE_SPEC"],
        max_batch_size=int(os.environ.get("LOOPML_SERVE_MAX_BATCH_SIZE", "32")),
        max_wait_ms=float(os.environ.get("LOOPML_SERVE_MAX_WAIT_MS", "2.0")),
        extra_fields="ignore" if extra == "ignore" else "reject",
        max_body_bytes=int(
            os.environ.get("LOOPML_SERVE_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))
        ),
        reload_interval=float(os.environ.get("LOOPML_SERVE_RELOAD_INTERVAL", "0")) or None,
    )
