"""The serving app: ``POST /predict`` for one registered model or a deployment of variants.

The request body is checked by a pydantic model generated from the model's signature, so a
bad body is a 422 naming the field before any prediction runs; concurrent requests are
coalesced by each variant's :class:`~loopml.serving.batcher.MicroBatcher`. Which variant
answers, canaries and shadows are the business of :mod:`loopml.serving.traffic`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
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
from starlette.background import BackgroundTask
from starlette.middleware import Middleware

from loopml.errors import InvalidInput, LoopmlError
from loopml.models import signature as signatures
from loopml.models.storage import LoadedModel
from loopml.monitoring._segments import PredictionRecord as LoggedPrediction
from loopml.monitoring.predictions import PredictionLogger
from loopml.server.errors import CatchAllMiddleware, error_response, install_error_handlers
from loopml.server.security import BodyLimitMiddleware
from loopml.serving._features import FeatureEnricher
from loopml.serving._predict import make_predictor
from loopml.serving.batcher import BatchResult, MicroBatcher, Overloaded
from loopml.serving.deployment import DeploymentConfig, single_model
from loopml.serving.metrics import MetricsMiddleware, ServingMetrics
from loopml.serving.traffic import (
    DeploymentRuntime,
    PredictionRecord,
    RuntimeHooks,
    Variant,
    sticky_value,
)
from loopml.store.base import DeploymentEvent

logger = logging.getLogger("loopml.serving")
shadow_logger = logging.getLogger("loopml.serving.shadow")

#: Default request body limit (1 MiB).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
ROUTES = frozenset(
    {"/predict", "/explain", "/feedback", "/health", "/ready", "/metadata", "/metrics"}
)
_NEVER = re.compile(r"(?!)")

#: Shadow predictions written to the log per request.
_LOGGED_PREDICTIONS = 10

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


#: numpy dtypes of signature types whose values pydantic has already checked strictly.
_DTYPES = {"double": "float64", "integer": "int64", "boolean": "bool", "string": "object"}


def signature_frame(body: BaseModel, signature: dict[str, Any] | None) -> pd.DataFrame:
    """Turn a validated request body into the model's input frame, in signature order.

    The request model already checked every value's type strictly, so columns go straight
    into numpy arrays of the signature's dtypes; converting them again with
    :func:`~loopml.models.signature.enforce` costs more than the prediction of a small
    model. Signatures with other types take that general path.
    """
    columns = (signature or {}).get("inputs") or []
    if not columns or any(c["type"] not in _DTYPES and c["type"] != "datetime" for c in columns):
        return signatures.enforce(request_frame(body), signature)
    inputs = getattr(body, "inputs", None)
    layout = None if inputs is not None else getattr(body, "columns")  # noqa: B009
    data: dict[str, Any] = {}
    for index, column in enumerate(columns):
        key = f"f{index}"
        values = (
            [getattr(record, key) for record in inputs]
            if inputs is not None
            else getattr(layout, key)
        )
        kind = column["type"]
        data[column["name"]] = (
            pd.to_datetime(values)
            if kind == "datetime"
            else np.asarray(values, dtype=_DTYPES[kind])
        )
    return pd.DataFrame(data, copy=False)


@dataclass
class _Served:
    model: LoadedModel
    name: str
    version: int | None
    has_proba: bool
    batcher: MicroBatcher
    request_model: type[BaseModel]
    #: Requests holding this model across an await (feature lookup) before they queue.
    pending: int = 0


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


def _default_alias_setter(name: str, alias: str, version: int, reason: str) -> None:
    from loopml.registry import set_alias

    set_alias(name, alias, version, reason=reason)


def _store_event(event: DeploymentEvent) -> None:
    from loopml.config import load_settings
    from loopml.store.registry import open_deployment_store

    open_deployment_store(load_settings()).add_deployment_event(event)


def create_serving_app(
    spec: str | DeploymentConfig,
    *,
    max_batch_size: int = 32,
    max_wait_ms: float = 2.0,
    extra_fields: ExtraFields = "reject",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_queue: int = 1024,
    loader: ModelLoader | None = None,
    reload_interval: float | None = None,
    resolver: Callable[[str], tuple[str, int | None]] | None = None,
    revision: int = 0,
    on_prediction: Callable[[PredictionRecord], None] | None = None,
    quality_source: Callable[[str], float | None] | None = None,
    event_sink: Callable[[DeploymentEvent], None] | None = None,
    alias_setter: Callable[[str, str, int, str], None] | None = None,
    seed: int | None = None,
    prediction_logger: PredictionLogger | None = None,
    log_predictions: bool = False,
    log_sample_rate: float = 1.0,
    feature_service: str | None = None,
) -> FastAPI:
    """Build the serving app of one model, or of a deployment of several variants.

    Every variant is loaded and warmed (a prediction on its input example) in the app's
    lifespan, with its own micro-batcher; ``/ready`` answers 200 only after that.

    Parameters
    ----------
    spec : str or DeploymentConfig
        One model (``name@alias``, ``name/3``, ``models:/...`` or ``runs:/<id>/<path>``,
        served as the one variant ``primary``), or a deployment.
    max_batch_size : int
        Rows per coalesced ``predict`` call.
    max_wait_ms : float
        The longest a request waits for others to share its batch.
    extra_fields : {"reject", "ignore"}
        What to do with record fields the signature does not name.
    max_body_bytes : int
        Larger request bodies get 413.
    max_queue : int
        Requests that may wait for a batch, per variant; more get 503.
    loader : callable, optional
        Loads a model from a spec; ``loopml.models.load`` by default.
    reload_interval : float, optional
        Seconds between registry checks of the aliases served; when one names a new version,
        that version is loaded and warmed beside the current one, then served in its place
        (or canaried, with ``on_alias_move: canary``). Requests already queued finish on the
        old model. Off by default.
    resolver : callable, optional
        ``spec -> (name, version)``; ``loopml.registry.resolve`` by default.
    revision : int
        The stored revision of the deployment, recorded with its events.
    on_prediction : callable, optional
        Called off the response path with a :class:`~loopml.serving.traffic.PredictionRecord`
        for every prediction, shadow ones included; its failures are logged and ignored.
    quality_source : callable, optional
        ``variant -> float | None``: the live quality metric ``canary.min_quality`` checks.
    event_sink : callable, optional
        Records deployment events; the deployment store for a deployment by default, none
        for a single model.
    alias_setter : callable, optional
        ``(model, alias, version, reason)``: moves an alias on promotion or rollback;
        ``loopml.registry.set_alias`` by default.
    seed : int, optional
        Seeds the random assignment of requests without a sticky key.
    prediction_logger : PredictionLogger, optional
        Logs every answered request (shadow predictions too, under their variant) for
        monitoring, off the response path; the app closes it (flushing) on shutdown and
        exposes ``POST /feedback`` for ground-truth labels.
    log_predictions : bool
        Log predictions with a :class:`PredictionLogger` of the configured stores, created
        with the app (its counters on the app's ``/metrics``); ignored when
        ``prediction_logger`` is given.
    log_sample_rate : float
        Fraction of requests the created logger keeps (chosen by request id).
    feature_service : str, optional
        An applied feature service: request bodies then carry its entities' join keys (and
        any inputs that are not features), and each request's features are read from the
        online store and added as ``<view>__<feature>`` columns before predicting; the
        logged inputs are the join keys and the enriched frame.

    Returns
    -------
    FastAPI
        The app, ready for uvicorn.
    """
    metrics = ServingMetrics()
    enricher = FeatureEnricher(feature_service) if feature_service else None
    if prediction_logger is None and log_predictions:
        prediction_logger = PredictionLogger(sample_rate=log_sample_rate, registry=metrics.registry)
    load = loader or _default_loader
    sink: Callable[[DeploymentEvent], None] | None
    if isinstance(spec, DeploymentConfig):
        config: DeploymentConfig | None = spec
        plans = spec.plans()
        sink = event_sink or _store_event
        name, model_name = spec.name, spec.model
    else:
        config, plan = single_model(spec)
        plans = [plan]
        sink = event_sink
        name = model_name = config.model if config is not None else spec
        config = None  # a single model keeps the plain hot swap
    sticky = config.sticky_key if config is not None else None
    background: set[asyncio.Task[None]] = set()
    # /predict requests whose bodies are still being read: the batchers' cue to wait.
    reading = [0]

    async def prepare(model_spec: str) -> _Served:
        """Load and warm a model, and start its batcher."""
        model = await asyncio.to_thread(load, model_spec)
        name, version = model.registered if model.registered else (model_spec, None)
        has_proba = True
        example: pd.DataFrame | None = None
        if model.input_example is not None:
            example = signatures.enforce(model.input_example, model.signature)
            await asyncio.to_thread(model.predict, example)
            try:
                await asyncio.to_thread(model.predict_proba, example)
            except InvalidInput:
                has_proba = False
        else:
            has_proba = hasattr(model.model, "predict_proba")

        # Each request's frame was checked against the signature in the handler; the batch
        # calls the inner model so it is not validated again.
        predict = await asyncio.to_thread(make_predictor, model.model, has_proba, example)
        batcher = MicroBatcher(
            predict,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            on_batch=metrics.batch_size.observe,
            arriving=lambda: reading[0],
        )
        await batcher.start()
        return _Served(
            model,
            name,
            version,
            has_proba,
            batcher,
            build_request_model(
                enricher.request_signature(model.signature) if enricher else model.signature,
                extra_fields,
            ),
        )

    async def retire(served: _Served) -> None:
        # A request that chose this model before a swap and is still reading its features
        # must still find the batcher running when it queues.
        while served.pending:
            await asyncio.sleep(0.001)
        await served.batcher.drain()

    def publish() -> None:
        metrics.set_variants(
            (
                v.name,
                v.role,
                v.served.name,
                "" if v.served.version is None else str(v.served.version),
                v.share,
            )
            for v in runtime.variants
        )

    runtime: DeploymentRuntime[_Served] = DeploymentRuntime(
        name,
        model_name,
        plans,
        RuntimeHooks(
            prepare=prepare,
            retire=retire,
            resolve=resolver or _default_resolver,
            set_alias=alias_setter or _default_alias_setter,
            emit=sink,
            quality_source=quality_source,
            on_change=publish,
        ),
        config=config,
        revision=revision,
        seed=seed,
    )

    async def watch(interval: float) -> None:
        """Poll the registry; serve (or canary) a new version once it is loaded and warmed."""
        while True:
            await asyncio.sleep(interval)
            try:
                await runtime.check_aliases()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not follow the aliases of %s", name)

    async def control(interval: float) -> None:
        """Judge the running canary every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            try:
                await runtime.evaluate()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not judge the canary of %s", name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if prediction_logger is not None:
            await asyncio.to_thread(prediction_logger.prepare)
        await runtime.start()
        tasks = []
        if reload_interval:
            tasks.append(asyncio.create_task(watch(reload_interval), name="loopml-model-watch"))
        if config is not None and (
            config.on_alias_move == "canary" or any(p.role == "canary" for p in plans)
        ):
            tasks.append(
                asyncio.create_task(
                    control(config.canary.check_interval), name="loopml-canary-controller"
                )
            )
        try:
            yield
        finally:
            for task in [*tasks, *background]:
                task.cancel()
            for task in [*tasks, *background]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runtime.stop()
            if prediction_logger is not None:
                await asyncio.to_thread(prediction_logger.close)
            if enricher is not None:
                await asyncio.to_thread(enricher.close)

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
    app.state.runtime = runtime

    async def model_frames(body: BaseModel, served: _Served) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The model's input frame of a request, and the frame to log with its prediction."""
        if enricher is None:
            frame = signature_frame(body, served.model.signature)
            return frame, frame
        # One batched online-store read per request, off the event loop.
        return await asyncio.to_thread(enricher.enrich, request_frame(body), served.model.signature)

    def require_ready() -> None:
        if not runtime.ready:
            raise Overloaded("the model is not loaded yet")

    def notify(record: PredictionRecord) -> None:
        if prediction_logger is not None and (
            record.predictions is not None or record.error is not None
        ):
            # log() only queues (never blocks); the logger's thread writes the segments.
            prediction_logger.log(
                LoggedPrediction(
                    request_id=record.request_id,
                    model=record.model,
                    version=record.version,
                    inputs=record.inputs if record.inputs is not None else [],
                    predictions=record.predictions if record.predictions is not None else [],
                    probabilities=record.probabilities,
                    latency_ms=record.latency_ms,
                    variant=record.variant,
                    error=record.error,
                )
            )
        if on_prediction is None:
            return
        try:
            on_prediction(record)
        except Exception:  # the hook must never disturb serving
            logger.exception("the on_prediction hook failed")

    def record_of(
        variant: Variant[_Served],
        served: _Served,
        request_id: str,
        frame: pd.DataFrame | None,
        result: BatchResult | None,
        elapsed_ms: float,
        error: str | None = None,
    ) -> PredictionRecord:
        return PredictionRecord(
            deployment=name,
            variant=variant.name,
            role=variant.role,
            model=served.name,
            version=served.version,
            request_id=request_id,
            time=int(time.time() * 1000),
            inputs=frame,
            predictions=None if result is None else result.predictions,
            probabilities=None if result is None else result.probabilities,
            latency_ms=elapsed_ms,
            error=error,
        )

    async def shadow(
        variant: Variant[_Served], raw: bytes, request_id: str, answer: list[Any]
    ) -> None:
        """Predict with a shadow variant; record, never return, and never fail the request."""
        served = variant.served
        started = time.perf_counter()
        frame: pd.DataFrame | None = None
        try:
            body = served.request_model.model_validate_json(raw)
            inputs, frame = await model_frames(body, served)
            result = await served.batcher.submit(inputs)
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            metrics.shadow_predictions.labels(variant=variant.name, outcome="error").inc()
            shadow_logger.warning(
                "shadow %s (%s v%s) failed on request %s: %s",
                variant.name,
                served.name,
                served.version,
                request_id,
                exc,
            )
            error = f"{type(exc).__name__}: {exc}"
            notify(record_of(variant, served, request_id, frame, None, elapsed, error))
            return
        elapsed = (time.perf_counter() - started) * 1000
        metrics.shadow_predictions.labels(variant=variant.name, outcome="ok").inc()
        agreed = sum(1 for a, b in zip(result.predictions, answer, strict=False) if a == b)
        shadow_logger.info(
            "shadow %s (%s v%s) request %s: agreed on %d of %d rows; predictions %s",
            variant.name,
            served.name,
            served.version,
            request_id,
            agreed,
            len(answer),
            result.predictions[:_LOGGED_PREDICTIONS],
        )
        notify(record_of(variant, served, request_id, frame, result, elapsed))

    async def after_response(record: PredictionRecord, raw: bytes) -> None:
        """Runs once the response is sent: the hook, then the shadows as their own tasks."""
        notify(record)
        for variant in runtime.shadows():
            task = asyncio.create_task(
                shadow(variant, raw, record.request_id, record.predictions or []),
                name=f"loopml-shadow-{variant.name}",
            )
            background.add(task)
            task.add_done_callback(background.discard)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """Predict for records (``inputs``) or columns (``columns``)."""
        require_ready()
        reading[0] += 1
        try:
            raw = await request.body()
        finally:
            reading[0] -= 1
        # A hot swap or a canary decision must never strand a request on a batcher that is
        # draining: without a feature lookup nothing awaits before the request queues, and
        # with one, ``pending`` holds retire() back until it has.
        variant = runtime.choose(sticky_value(sticky, request.headers, raw))
        current = variant.served
        try:
            body = current.request_model.model_validate_json(raw)
        except ValidationError as exc:
            return _validation_failure(exc)
        current.pending += 1
        try:
            frame, logged = await model_frames(body, current)
            return await answer(request, variant, current, frame, logged, raw)
        finally:
            current.pending -= 1

    async def answer(
        request: Request,
        variant: Variant[_Served],
        current: _Served,
        frame: pd.DataFrame,
        logged: pd.DataFrame,
        raw: bytes,
    ) -> Response:
        """Queue the request's frame on the chosen model and answer with its predictions."""
        request_id = request.headers.get("x-request-id", "")[:100] or uuid.uuid4().hex
        headers = {"X-Request-ID": request_id, "X-Loopml-Variant": variant.name}
        started = time.perf_counter()
        try:
            result = await current.batcher.submit(frame)
        except Exception as exc:
            elapsed = time.perf_counter() - started
            runtime.record(variant, elapsed * 1000, ok=False)
            metrics.observe_variant(variant.name, elapsed, ok=False)
            # Failures are logged too, so that the log's error rate matches what clients saw.
            error = f"{type(exc).__name__}: {exc}"
            notify(record_of(variant, current, request_id, logged, None, elapsed * 1000, error))
            if isinstance(exc, LoopmlError):
                raise
            logger.exception("variant %s failed on request %s", variant.name, request_id)
            return error_response(
                500,
                "prediction_failed",
                f"variant {variant.name!r} failed to predict; the server log has the details",
                headers=headers,
            )
        elapsed = time.perf_counter() - started
        runtime.record(variant, elapsed * 1000, ok=True)
        metrics.observe_variant(variant.name, elapsed, ok=True)
        record = record_of(variant, current, request_id, logged, result, elapsed * 1000)
        return JSONResponse(
            {
                "predictions": result.predictions,
                "probabilities": result.probabilities,
                "model": current.name,
                "version": current.version,
                "variant": variant.name,
                "request_id": request_id,
            },
            headers=headers,
            background=BackgroundTask(after_response, record, raw),
        )

    @app.post("/explain")
    async def explain(request: Request) -> Response:
        """SHAP values of each row (same body as ``/predict``) for the variant that answers it."""
        from loopml.models.explain import explain as explain_rows

        require_ready()
        raw = await request.body()
        current = runtime.choose(sticky_value(sticky, request.headers, raw)).served
        try:
            body = current.request_model.model_validate_json(raw)
        except ValidationError as exc:
            return _validation_failure(exc)
        frame, _ = await model_frames(body, current)
        # SHAP takes milliseconds to seconds of CPU: off the event loop, like predictions.
        result = await asyncio.to_thread(explain_rows, current.model, frame)
        return JSONResponse({"model": current.name, "version": current.version, **result.to_dict()})

    @app.post("/feedback")
    async def feedback(request: Request) -> Response:
        """Ground truth for earlier predictions, joined to the prediction log by request id."""
        from loopml.monitoring.labels import feedback_payload_to_frame, log_labels

        if prediction_logger is None:
            return error_response(
                404, "not_found", "this server does not log predictions, so it takes no feedback"
            )
        try:
            payload = json.loads(await request.body())
        except ValueError as exc:
            raise InvalidInput(f"the request body is not valid JSON: {exc}", field="body") from exc
        frame = feedback_payload_to_frame(payload)
        accepted = await asyncio.to_thread(log_labels, frame)
        return JSONResponse({"accepted": accepted})

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        """200 once every variant is loaded and warmed, 503 before."""
        if not runtime.ready:
            return error_response(503, "not_ready", "the model is not loaded yet")
        return JSONResponse({"status": "ready"})

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        """The model served, its version, flavor and signature; every variant and its share."""
        require_ready()
        primary = next((v for v in runtime.variants if v.role == "primary"), runtime.variants[0])
        current = primary.served
        return {
            "model": current.name,
            "version": current.version,
            "flavor": current.model.flavor,
            "signature": current.model.signature,
            "probabilities": current.has_proba,
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "sticky_key": sticky,
            **runtime.describe(),
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
        log_predictions=os.environ.get("LOOPML_SERVE_LOG_PREDICTIONS", "1") == "1",
        log_sample_rate=float(os.environ.get("LOOPML_SERVE_LOG_SAMPLE_RATE", "1.0")),
        feature_service=os.environ.get("LOOPML_SERVE_FEATURE_SERVICE") or None,
    )
