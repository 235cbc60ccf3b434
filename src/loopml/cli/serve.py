"""``loopml serve``: serve a registered model over HTTP.

Registered on the root app with ``app.command("serve")(serve.serve)``.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from loopml.cli._common import HostOption, PortOption
from loopml.errors import InvalidInput


def serve(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="The model to serve: churn@champion, churn/3 or runs:/<run_id>/model.",
        ),
    ],
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes, each with the model.")
    ] = 1,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Rows per coalesced predict call.")
    ] = 32,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms", min=0.0, help="Longest a request waits to share a predict call."
        ),
    ] = 2.0,
    ignore_extra_fields: Annotated[
        bool,
        typer.Option(
            "--ignore-extra-fields",
            help="Drop input fields the signature does not name instead of answering 422.",
        ),
    ] = False,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Larger request bodies get 413.")
    ] = 1024 * 1024,
    reload_interval: Annotated[
        float,
        typer.Option(
            "--reload-interval",
            min=0.0,
            help="Seconds between registry checks of MODEL's alias; a new version is loaded, "
            "warmed and swapped in without downtime. 0 turns it off.",
        ),
    ] = 0.0,
    log_predictions: Annotated[
        bool,
        typer.Option(
            "--log-predictions/--no-log-predictions",
            help="Log every prediction for monitoring (off the response path) and take "
            "ground truth on POST /feedback.",
        ),
    ] = True,
    log_sample_rate: Annotated[
        float,
        typer.Option("--log-sample-rate", min=0.0, max=1.0, help="Fraction of requests logged."),
    ] = 1.0,
    feature_service: Annotated[
        str | None,
        typer.Option(
            "--feature-service",
            help="An applied feature service: requests carry entity keys and are enriched "
            "with its online features before predicting.",
        ),
    ] = None,
) -> None:
    """Serve MODEL: POST /predict, /explain, /feedback; GET /health, /ready, /metadata, /metrics."""
    import uvicorn

    from loopml.serving.app import create_serving_app

    if not spec.strip():
        raise InvalidInput("MODEL must not be empty", field="model")
    if not spec.startswith(("runs:/", "models:/")):
        from loopml.registry import resolve

        resolve(spec)  # an unknown model or alias is one clear error, not a failed startup
    extra = "ignore" if ignore_extra_fields else "reject"
    if workers > 1:
        # Each worker process builds its own app (and loads its own model) from these.
        os.environ.update(
            {
                "LOOPML_SERVE_SPEC": spec,
                "LOOPML_SERVE_MAX_BATCH_SIZE": str(max_batch_size),
                "LOOPML_SERVE_MAX_WAIT_MS": str(max_wait_ms),
                "LOOPML_SERVE_EXTRA_FIELDS": extra,
                "LOOPML_SERVE_MAX_BODY_BYTES": str(max_body_bytes),
                "LOOPML_SERVE_RELOAD_INTERVAL": str(reload_interval),
                "LOOPML_SERVE_LOG_PREDICTIONS": "1" if log_predictions else "0",
                "LOOPML_SERVE_LOG_SAMPLE_RATE": str(log_sample_rate),
                "LOOPML_SERVE_FEATURE_SERVICE": feature_service or "",
            }
        )
        uvicorn.run(
            "loopml.serving.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
        )
        return
    serving_app = create_serving_app(
        spec,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        extra_fields="ignore" if ignore_extra_fields else "reject",
        max_body_bytes=max_body_bytes,
        reload_interval=reload_interval or None,
        log_predictions=log_predictions,
        log_sample_rate=log_sample_rate,
        feature_service=feature_service,
    )
    uvicorn.run(serving_app, host=host, port=port)
