"""Serving statistics from the prediction log: traffic, request rate and latency per variant.

Each logged request carries the variant and version that answered it and the time the
server took to answer the whole request, so counts, rates and latency percentiles are
computed per request (the first predicted row of each), overall, per variant/version and per
time bucket. Only the columns needed are read from the log's Parquet segments.

A model server logs failed requests too (with the error and no prediction), so the error
rate is the share of logged requests that failed. Segments written before failures were
logged hold answered requests only; their requests count as answered.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopml.config import Settings
from loopml.errors import InvalidInput
from loopml.monitoring._segments import check_name, check_version
from loopml.monitoring.predictions import _as_epoch_us, open_stores

if TYPE_CHECKING:
    import pandas as pd

    from loopml.store.base import PredictionSegment
    from loopml.store.registry import PredictionLogStores

__all__ = ["DEFAULT_WINDOW", "MAX_BUCKETS", "serving_stats"]

#: The window read when ``since`` is not given: the day before ``until``.
DEFAULT_WINDOW = timedelta(days=1)
#: Buckets a default bucket size aims at, and the most one call may ask for.
DEFAULT_BUCKETS = 48
MAX_BUCKETS = 2_000
# Window bounds a UTC datetime can show, a day inside datetime's own range.
_EARLIEST_US = round(datetime(1, 1, 2, tzinfo=UTC).timestamp() * 1_000_000)
_LATEST_US = round(datetime(9999, 12, 30, tzinfo=UTC).timestamp() * 1_000_000)
_COLUMNS = ("request_id", "row", "timestamp", "variant", "latency_ms")
_PERCENTILES = (50, 95, 99)


def _bound(value: datetime | str | None, name: str) -> int | None:
    """Epoch microseconds of a window bound, refusing times a datetime cannot show in UTC."""
    epoch = _as_epoch_us(value, name)
    if epoch is not None and not _EARLIEST_US <= epoch <= _LATEST_US:
        raise InvalidInput(f"{name} {value!r:.80} is out of range", field=name)
    return epoch


def _window(
    since: datetime | str | None, until: datetime | str | None, now: datetime | None
) -> tuple[int, int]:
    """``[since, until)`` in epoch microseconds, defaulting to the day before now."""
    until_us = _bound(until, "until")
    if until_us is None:
        until_us = round((now or datetime.now(UTC)).timestamp() * 1_000_000)
    since_us = _bound(since, "since")
    if since_us is None:
        since_us = max(_EARLIEST_US, until_us - int(DEFAULT_WINDOW.total_seconds() * 1_000_000))
    if since_us >= until_us:
        raise InvalidInput("since must be earlier than until", field="since")
    return since_us, until_us


def _bucket_us(bucket: float | None, span_us: int) -> int:
    if bucket is None:
        return max(1_000_000, math.ceil(span_us / DEFAULT_BUCKETS / 1_000_000) * 1_000_000)
    if isinstance(bucket, bool) or not isinstance(bucket, int | float) or not 0 < bucket < math.inf:
        raise InvalidInput("bucket must be a positive number of seconds", field="bucket")
    if span_us / (bucket * 1_000_000) > MAX_BUCKETS:
        raise InvalidInput(
            f"bucket {bucket:g}s splits the window into more than {MAX_BUCKETS} buckets; "
            "pass a larger bucket or a shorter window",
            field="bucket",
        )
    # A bucket longer than the window is the window.
    return max(1, min(span_us, round(bucket * 1_000_000)))


def _read_requests(
    stores: PredictionLogStores, segment: PredictionSegment, since_us: int, until_us: int
) -> pa.Table:
    """The first row of each request of the segment inside the window, with its version."""
    local_path = getattr(stores.blobs, "local_path", None)
    if callable(local_path):
        source: Any = str(local_path(segment.blob_sha256))
    else:
        with stores.blobs.open(segment.blob_sha256) as handle:
            source = pa.BufferReader(handle.read())
    parquet = pq.ParquetFile(source)
    # Segments written before failures were logged have no error column.
    logs_errors = "error" in parquet.schema_arrow.names
    table = parquet.read(columns=[*_COLUMNS, "error"] if logs_errors else list(_COLUMNS))
    if not logs_errors:
        table = table.append_column("error", pa.nulls(table.num_rows, pa.string()))
    stamps = table.column("timestamp").cast(pa.int64())
    mask = pc.and_(
        pc.and_(pc.greater_equal(stamps, since_us), pc.less(stamps, until_us)),
        pc.equal(table.column("row"), 0),
    )
    table = table.filter(mask)
    return table.append_column("version", pa.array([segment.version] * table.num_rows, pa.int64()))


def _empty_requests() -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([], pa.string()),
            "row": pa.array([], pa.int64()),
            "timestamp": pa.array([], pa.int64()),
            "variant": pa.array([], pa.string()),
            "latency_ms": pa.array([], pa.float64()),
            "error": pa.array([], pa.string()),
            "version": pa.array([], pa.int64()),
        }
    )


def _latency(values: np.ndarray[Any, Any]) -> dict[str, float | None]:
    if values.size == 0:
        return {f"p{p}": None for p in _PERCENTILES}
    points = np.percentile(values, _PERCENTILES)
    return {f"p{p}": float(v) for p, v in zip(_PERCENTILES, points, strict=True)}


def _summary(requests: pd.DataFrame | None, seconds: float) -> dict[str, Any]:
    """Counts, rate, latency percentiles and error rate of some requests over ``seconds``."""
    if requests is None or requests.empty:
        return {
            "requests": 0,
            "errors": 0,
            "request_rate": 0.0,
            "latency_ms": _latency(np.array([])),
            "error_rate": None,
        }
    failed = requests["error"].notna().to_numpy()
    errors = int(failed.sum())
    # Latency percentiles describe answered requests; a failure's time says little.
    answered = requests["latency_ms"].to_numpy(dtype="float64")[~failed]
    return {
        "requests": len(requests),
        "errors": errors,
        "request_rate": len(requests) / seconds,
        "latency_ms": _latency(answered),
        "error_rate": errors / len(requests),
    }


def _iso(epoch_us: int) -> str:
    return datetime.fromtimestamp(epoch_us / 1_000_000, UTC).isoformat()


def serving_stats(
    model: str,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    bucket: float | None = None,
    version: int | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Traffic and latency of a served model from its prediction log.

    Parameters
    ----------
    model : str
        The registered model name, as the log records it.
    since, until : datetime or ISO 8601 str, optional
        The window ``[since, until)``; by default the day before ``until`` (default now).
    bucket : float, optional
        Seconds per time bucket; by default the window split in about 48 whole seconds.
    version : int, optional
        Only this model version's requests.
    settings : Settings, optional
        The stores to read; the current settings by default.
    now : datetime, optional
        The clock, for ``until``'s default.

    Returns
    -------
    dict
        ``model``, ``since``, ``until``, ``bucket_seconds``; ``overall`` and each of
        ``variants`` (one per variant and version, with its ``share`` of the requests) hold
        ``requests``, ``errors``, ``request_rate`` (per second over the window),
        ``latency_ms`` (``p50``, ``p95``, ``p99`` of answered requests, None without any)
        and ``error_rate`` (failed / requests, None without requests); ``buckets`` (every
        bucket of the window, oldest first) hold ``start``, the same figures and
        ``variants``, the requests per variant and version.

    Raises
    ------
    InvalidInput
        When the model name, window, bucket or version is malformed.
    """
    model = check_name(model, "model")
    if version is not None:
        version = check_version(version)
    since_us, until_us = _window(since, until, now)
    step_us = _bucket_us(bucket, until_us - since_us)
    stores = open_stores(settings)
    segments = stores.log.list_prediction_segments(
        model, since_us // 1000, -(-until_us // 1000), version
    )
    tables = [_read_requests(stores, s, since_us, until_us) for s in segments]
    tables = [t for t in tables if t.num_rows]
    if tables:
        frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    else:
        frame = _empty_requests().to_pandas()
    # A request logged twice by one variant and version (a retried write) counts once.
    frame = frame.drop_duplicates(["request_id", "variant", "version"])
    stamps = frame["timestamp"].astype("int64").to_numpy()
    frame["bucket"] = (stamps - since_us) // step_us
    frame["variant"] = frame["variant"].fillna("")
    seconds = (until_us - since_us) / 1_000_000
    total = len(frame)

    variants = []
    for (variant, number), group in frame.groupby(["variant", "version"], sort=True):
        variants.append(
            {
                "variant": variant,
                "version": int(number),
                "share": len(group) / total,
                **_summary(group, seconds),
            }
        )

    buckets = []
    count = math.ceil((until_us - since_us) / step_us)
    grouped = dict(tuple(frame.groupby("bucket", sort=True)))
    for index in range(count):
        start = since_us + index * step_us
        width = (min(start + step_us, until_us) - start) / 1_000_000
        group = grouped.get(index)
        per_variant = (
            []
            if group is None
            else [
                {"variant": v, "version": int(n), "requests": len(g)}
                for (v, n), g in group.groupby(["variant", "version"], sort=True)
            ]
        )
        buckets.append({"start": _iso(start), **_summary(group, width), "variants": per_variant})

    return {
        "model": model,
        "since": _iso(since_us),
        "until": _iso(until_us),
        "bucket_seconds": step_us / 1_000_000,
        "overall": _summary(frame, seconds),
        "variants": variants,
        "buckets": buckets,
    }
