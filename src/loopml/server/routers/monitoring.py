"""``/api/v1/feedback``, ``/api/v1/predictions`` and serving statistics of the prediction log.

Feedback is a write (``writer`` role on a server with auth); reading the log needs
``reader``. All go straight to :mod:`loopml.monitoring` with the server's own settings.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from loopml.config import Settings
from loopml.entities._json import jsonable
from loopml.monitoring.labels import feedback_payload_to_frame, log_labels
from loopml.monitoring.predictions import predictions
from loopml.monitoring.serving_stats import serving_stats

router = APIRouter(prefix="/api/v1", tags=["monitoring"])

#: Rows one ``GET /predictions`` returns at most.
MAX_PREDICTION_ROWS = 100_000


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


class FeedbackOut(BaseModel):
    """How many labels were stored."""

    accepted: int = Field(description="Labels stored (a row sent twice counts once).")


@router.post("/feedback", response_model=FeedbackOut)
def post_feedback(
    request: Request,
    payload: Annotated[
        dict[str, Any],
        Body(
            description=(
                'One request: {"request_id": "...", "label": 1} (optionally "row"), or one '
                'label per row: {"request_id": "...", "labels": [1, 0]}, or several: '
                '{"items": [...]}.'
            ),
            examples=[{"request_id": "3f2a9c", "label": 1}],
        ),
    ],
) -> FeedbackOut:
    """Store ground-truth labels for logged predictions (unknown requests are kept)."""
    frame = feedback_payload_to_frame(payload)
    return FeedbackOut(accepted=log_labels(frame, settings=_settings(request)))


@router.get("/predictions")
def get_predictions(
    request: Request,
    model: Annotated[str, Query(min_length=1, max_length=250, description="Model name.")],
    since: Annotated[str | None, Query(description="ISO 8601 time, inclusive.")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time, exclusive.")] = None,
    version: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PREDICTION_ROWS, description="The most recent rows kept.")
    ] = 1_000,
    with_labels: bool = True,
) -> JSONResponse:
    """Logged predictions as JSON records, oldest first, with their labels.

    Each record has ``request_id``, ``row``, ``timestamp``, ``model``, ``version``,
    ``variant``, ``latency_ms``, ``prediction``, ``probability``, ``label`` and the features.
    """
    frame = predictions(
        model,
        since,
        until,
        version=version,
        with_labels=with_labels,
        limit=limit,
        settings=_settings(request),
    )
    records: list[dict[str, Any]] = json.loads(
        frame.to_json(orient="records", date_format="iso", date_unit="us")
    )
    return JSONResponse({"model": model, "count": len(records), "records": records})


@router.get("/monitoring/{model}/serving-stats")
def get_serving_stats(
    request: Request,
    model: Annotated[str, Path(min_length=1, max_length=250, description="Model name.")],
    since: Annotated[
        str | None, Query(description="ISO 8601 time, inclusive; default a day before until.")
    ] = None,
    until: Annotated[
        str | None, Query(description="ISO 8601 time, exclusive; default now.")
    ] = None,
    bucket: Annotated[
        float | None,
        Query(gt=0, le=366 * 86_400, description="Seconds per bucket; default about 48 buckets."),
    ] = None,
    version: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> JSONResponse:
    """Requests, request rate and latency p50/p95/p99 per variant/version and per bucket.

    Computed from the prediction log, one sample per logged request; ``error_rate`` is
    null (see ``note``): the log records answered requests only.
    """
    stats = serving_stats(
        model, since, until, bucket=bucket, version=version, settings=_settings(request)
    )
    return JSONResponse(jsonable(stats))
