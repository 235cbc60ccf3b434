"""The prediction log: what each model was asked, what it answered, and when.

A :class:`PredictionLogger` sits beside the model server. :meth:`PredictionLogger.log` only
puts the record on a bounded queue, so logging never slows a response down; when the queue
is full the record is dropped and counted instead. A daemon thread batches the records into
Parquet segments, one per model version, stores each in the artifact blob store (atomically:
a blob appears whole or not at all) and then commits its index row, with one entry per
request, to the metadata store. A crash between the two leaves at most an unreferenced blob.

:func:`predictions` reads back the segments whose time range overlaps the window asked for,
one row per predicted row, with the ground truth joined on ``(request_id, row)``.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import logging
import math
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry, Counter, Gauge

from loopml.config import Settings, load_settings
from loopml.errors import InvalidInput
from loopml.monitoring._segments import (
    ARROW_ERRORS,
    INPUT_PREFIX,
    PredictionRecord,
    build_segment_table,
    check_name,
    check_version,
    epoch_us,
    safe_len,
)
from loopml.store.base import PredictionSegment

if TYPE_CHECKING:
    import pandas as pd
    from prometheus_client.registry import Collector

    from loopml.store.registry import PredictionLogStores

__all__ = [
    "RESERVED_COLUMNS",
    "PredictionLogger",
    "PredictionRecord",
    "is_sampled",
    "make_prediction_hook",
    "open_stores",
    "predictions",
]

logger = logging.getLogger(__name__)

#: Columns every row of :func:`predictions` has; a feature with one of these names is
#: returned as ``input.<name>``.
RESERVED_COLUMNS = (
    "request_id",
    "row",
    "timestamp",
    "model",
    "version",
    "variant",
    "latency_ms",
    "prediction",
    "probability",
    "label",
)
_RESERVED = frozenset((*RESERVED_COLUMNS, "probabilities", "error"))
SEGMENT_PREFIX = "predictions"


@dataclass
class _Control:
    """A flush or stop request, queued behind the records it must cover."""

    stop: bool
    done: threading.Event = field(default_factory=threading.Event)


def is_sampled(request_id: str, sample_rate: float) -> bool:
    """Decide from the request id alone whether a request is logged.

    The same id always gives the same answer, so a sampled request is logged whole and a
    replayed one is sampled the same way.
    """
    if sample_rate >= 1.0:
        return True
    if sample_rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < sample_rate


class PredictionLogger:
    """Log predictions without ever blocking the caller; a background thread writes them.

    Parameters
    ----------
    sample_rate : float, default 1.0
        Fraction of requests logged, chosen by a hash of the request id.
    max_queue : int, default 10_000
        Requests waiting for the writer; more are dropped and counted.
    flush_rows : int, default 5_000
        Rows that trigger a write.
    flush_seconds : float, default 2.0
        The longest a record waits in memory before it is written.
    settings : Settings, optional
        Where the metadata and artifact stores are; default
        :func:`~loopml.config.load_settings` at construction.
    registry : prometheus_client.CollectorRegistry, optional
        Where the logger's gauge and counters are registered (for example the serving
        app's registry); a private one by default. One logger per registry.
    stores : PredictionLogStores, optional
        The stores to write to, instead of opening those the settings name.
    warn_every : float, default 10.0
        Seconds between two warnings about dropped requests.

    Examples
    --------
    >>> log = PredictionLogger(sample_rate=0.5)                           # doctest: +SKIP
    >>> log.log(PredictionRecord(request_id="r1", model="churn", version=3,
    ...     inputs=frame, predictions=[0, 1]))                               # doctest: +SKIP
    >>> log.close()                                                          # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        sample_rate: float = 1.0,
        max_queue: int = 10_000,
        flush_rows: int = 5_000,
        flush_seconds: float = 2.0,
        settings: Settings | None = None,
        registry: CollectorRegistry | None = None,
        stores: PredictionLogStores | None = None,
        warn_every: float = 10.0,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise InvalidInput("sample_rate must be between 0 and 1", field="sample_rate")
        for name, value in (("max_queue", max_queue), ("flush_rows", flush_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer", field=name)
        if not flush_seconds > 0:
            raise InvalidInput("flush_seconds must be positive", field="flush_seconds")
        self.sample_rate = float(sample_rate)
        self.flush_rows = flush_rows
        self.flush_seconds = float(flush_seconds)
        self._settings = settings if settings is not None else load_settings()
        self._stores = stores
        self._queue: queue.Queue[PredictionRecord | _Control] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._closed = False
        self._dropped = 0
        self._written = 0
        self._warn_every = warn_every
        self._last_warning = -math.inf
        self._dropped_since_warning = 0

        self.registry = registry if registry is not None else CollectorRegistry()
        self.queue_depth = Gauge(
            "loopml_prediction_log_queue_depth",
            "Requests waiting to be written to the prediction log.",
            registry=self.registry,
        )
        self.queue_depth.set_function(self._queue.qsize)
        self.rows_written = Counter(
            "loopml_prediction_log_rows_written",
            "Predicted rows written to the prediction log.",
            registry=self.registry,
        )
        self.requests_dropped = Counter(
            "loopml_prediction_log_dropped_requests",
            "Requests not logged: the queue was full, the record was bad or a write failed.",
            ["reason"],
            registry=self.registry,
        )

        self._thread = threading.Thread(target=self._run, name="loopml-prediction-log", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- the caller's side --------------------------------------------------------------
    def log(self, record: PredictionRecord) -> bool:
        """Queue a record for writing; never blocks.

        Returns
        -------
        bool
            True when queued; False when sampled out, or dropped because the queue is full
            or the logger is closed (drops are counted in :attr:`dropped`).
        """
        if self._closed:
            self._drop(1, "closed")
            return False
        if not is_sampled(str(record.request_id), self.sample_rate):
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop(1, "queue_full")
            return False
        return True

    @property
    def dropped(self) -> int:
        """Requests dropped so far (queue full, bad record, failed write, after close)."""
        return self._dropped

    @property
    def written(self) -> int:
        """Rows written so far."""
        return self._written

    @property
    def queued(self) -> int:
        """Requests waiting for the writer."""
        return self._queue.qsize()

    def collectors(self) -> list[Collector]:
        """The Prometheus gauge and counters, for a registry of the caller's choosing."""
        return [self.queue_depth, self.rows_written, self.requests_dropped]

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write everything logged before this call; True when done within ``timeout``."""
        return self._control(stop=False, timeout=timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Write what is queued and stop the writer; later records are dropped.

        Returns
        -------
        bool
            True when the writer finished within ``timeout`` seconds.
        """
        started = time.monotonic()
        with self._lock:
            first = not self._closed
            self._closed = True
        if first:
            self._control(stop=True, timeout=timeout)
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        self._thread.join(remaining)
        return not self._thread.is_alive()

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _control(self, *, stop: bool, timeout: float | None) -> bool:
        if not self._thread.is_alive():
            return False
        control = _Control(stop=stop)
        try:
            # Blocking is fine here: flush and close are not on the request path.
            self._queue.put(control, timeout=timeout)
        except queue.Full:
            return False
        return control.done.wait(timeout)

    def _drop(self, requests: int, reason: str) -> None:
        self.requests_dropped.labels(reason=reason).inc(requests)
        with self._lock:
            self._dropped += requests
            self._dropped_since_warning += requests
            now = time.monotonic()
            if now - self._last_warning < self._warn_every:
                return
            count, self._dropped_since_warning = self._dropped_since_warning, 0
            self._last_warning = now
        logger.warning(
            "prediction log dropped %d request(s) (%s; %d in total)", count, reason, self._dropped
        )

    # -- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        buffer: list[PredictionRecord] = []
        rows = 0
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item: PredictionRecord | _Control | None = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if isinstance(item, PredictionRecord):
                buffer.append(item)
                rows += safe_len(item.predictions)
                if deadline is None:
                    deadline = time.monotonic() + self.flush_seconds
                if rows < self.flush_rows:
                    continue
            if buffer:
                self._write(buffer)
                buffer, rows, deadline = [], 0, None
            if isinstance(item, _Control):
                item.done.set()
                if item.stop:
                    return

    def _write(self, records: list[PredictionRecord]) -> None:
        groups: dict[tuple[str, int], list[PredictionRecord]] = {}
        for record in records:
            try:
                key = (check_name(record.model, "model"), check_version(record.version))
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the writer
                logger.warning("prediction log skipped a bad record: %s", exc)
                self._drop(1, "bad_record")
                continue
            groups.setdefault(key, []).append(record)
        for (model, version), group in groups.items():
            try:
                self._write_segment(model, version, group)
            except Exception:  # noqa: BLE001 - the writer must outlive store errors
                logger.exception("prediction log could not write %d request(s)", len(group))
                self._drop(len(group), "write_error")

    def _write_segment(self, model: str, version: int, records: list[PredictionRecord]) -> None:
        table, requests, bad = build_segment_table(records)
        if bad:
            self._drop(bad, "bad_record")
        if table.num_rows == 0:
            return
        stores = self._open_stores()
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        payload = sink.getvalue().to_pybytes()
        sha256, size = stores.blobs.put_stream(io.BytesIO(payload))
        times = [time_ms for _, time_ms, _ in requests]
        first = min(times)
        day = datetime.fromtimestamp(first / 1000, UTC).strftime("%Y-%m-%d")
        segment = PredictionSegment(
            model=model,
            version=version,
            path=f"{SEGMENT_PREFIX}/{model}/{day}/{first}-{uuid.uuid4().hex[:12]}.parquet",
            blob_sha256=sha256,
            size_bytes=size,
            min_time=first,
            max_time=max(times),
            rows=table.num_rows,
        )
        stores.log.add_prediction_segment(segment, requests)
        self.rows_written.inc(table.num_rows)
        with self._lock:
            self._written += table.num_rows

    def prepare(self) -> None:
        """Open the stores and encode a throw-away segment, before the first real write.

        The first write otherwise pays for opening the metadata store and for Parquet's
        and zstd's first use; a server calls this before it reports ready so that cost
        never lands in the middle of traffic.
        """
        self._open_stores()
        warm = PredictionRecord(
            request_id="warm-up", model="warm-up", version=0, inputs=[{"x": 0.0}], predictions=[0]
        )
        table, _, _ = build_segment_table([warm])
        pq.write_table(table, pa.BufferOutputStream(), compression="zstd")

    def _open_stores(self) -> PredictionLogStores:
        if self._stores is None:
            self._stores = open_stores(self._settings)
        return self._stores


def _close_at_exit(ref: weakref.ref[PredictionLogger]) -> None:
    log = ref()
    if log is not None and not log._closed:
        log.close(timeout=5.0)


def open_stores(settings: Settings | None = None) -> PredictionLogStores:
    """Open the prediction log's index and blob stores for the settings (current by default)."""
    from loopml.store.registry import open_prediction_log_stores

    return open_prediction_log_stores(settings if settings is not None else load_settings())


# -- reading -------------------------------------------------------------------------------
def _as_epoch_us(value: datetime | str | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"{name} {value!r} is not an ISO 8601 time", field=name) from exc
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a datetime", field=name)
    return epoch_us(value)


def _read_segment(stores: PredictionLogStores, segment: PredictionSegment) -> pa.Table:
    local_path = getattr(stores.blobs, "local_path", None)
    if callable(local_path):
        return pq.read_table(str(local_path(segment.blob_sha256)))
    with stores.blobs.open(segment.blob_sha256) as handle:
        return pq.read_table(pa.BufferReader(handle.read()))


def _combine(tables: list[pa.Table]) -> pd.DataFrame:
    """One frame of segments that may differ in columns (a new feature) or in types."""
    import pandas as pd

    try:
        frame: pd.DataFrame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    except ARROW_ERRORS:
        frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True, sort=False)
    return frame


def _empty_frame(with_labels: bool) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "request_id": pd.Series(dtype="object"),
            "row": pd.Series(dtype="int64"),
            "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
            "model": pd.Series(dtype="object"),
            "version": pd.Series(dtype="int64"),
            "variant": pd.Series(dtype="object"),
            "latency_ms": pd.Series(dtype="float64"),
            "prediction": pd.Series(dtype="object"),
            "probability": pd.Series(dtype="float64"),
        }
    )
    if with_labels:
        frame["label"] = pd.Series(dtype="object")
    return frame


def predictions(
    model: str,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    version: int | None = None,
    with_labels: bool = True,
    limit: int | None = None,
    with_probabilities: bool = False,
    with_errors: bool = False,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Read a model's logged predictions, one row per predicted row.

    Parameters
    ----------
    model : str
        The registered model name.
    since, until : datetime or ISO 8601 str, optional
        The window ``[since, until)``; naive times are UTC. Only segments overlapping it
        are read.
    version : int, optional
        Only this version's predictions.
    with_labels : bool, default True
        Join the ground truth received so far as ``label`` (NaN/None where none arrived).
    limit : int, optional
        Keep only the most recent ``limit`` rows (still returned oldest first).
    with_probabilities : bool, default False
        Add ``probabilities``: every class probability of the row, when logged.
    with_errors : bool, default False
        Also return the rows of failed requests (no prediction), with an ``error`` column
        saying why (None on answered rows).
    settings : Settings, optional
        The stores to read; the current settings by default.

    Returns
    -------
    pandas.DataFrame
        ``request_id``, ``row``, ``timestamp`` (UTC), ``model``, ``version``, ``variant``,
        ``latency_ms``, ``prediction``, ``probability`` (the largest class probability, or
        NaN), ``label``, then one column per feature. A feature named like one of these
        columns is returned as ``input.<name>``.

    Raises
    ------
    InvalidInput
        When the model name, window or limit is malformed.
    """
    import pandas as pd

    model = check_name(model, "model")
    since_us = _as_epoch_us(since, "since")
    until_us = _as_epoch_us(until, "until")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInput("limit must be a non-negative integer", field="limit")
    if version is not None:
        version = check_version(version)
    stores = open_stores(settings)
    # The index holds milliseconds: widen the window to whole ones, then filter exactly.
    since_ms = None if since_us is None else since_us // 1000
    until_ms = None if until_us is None else -(-until_us // 1000)
    segments = stores.log.list_prediction_segments(model, since_ms, until_ms, version)
    if limit == 0:
        return _empty_frame(with_labels)
    tables = _read_window(stores, segments, since_us, until_us, limit, with_errors)
    if not tables:
        empty = _empty_frame(with_labels)
        if with_errors:
            empty["error"] = pd.Series(dtype="object")
        return empty
    frame = _combine(tables)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame = frame.sort_values(["timestamp", "request_id", "row"], kind="stable")
    if limit is not None:
        frame = frame.tail(limit)
    frame = frame.reset_index(drop=True)
    if with_labels:
        frame = _join_labels(frame, stores, model, since_ms, until_ms)
    arranged = _arrange(frame, with_labels, with_probabilities)
    if with_errors:
        arranged.insert(list(arranged.columns).index("latency_ms") + 1, "error", frame["error"])
    return arranged


def _read_window(
    stores: PredictionLogStores,
    segments: list[PredictionSegment],
    since_us: int | None,
    until_us: int | None,
    limit: int | None,
    with_errors: bool = False,
) -> list[pa.Table]:
    """The segments' rows inside the window; with a limit, newest segments first, enough of them."""
    tables: list[pa.Table] = []
    ordered = sorted(segments, key=lambda s: (s.max_time, s.id), reverse=limit is not None)
    newest: list[int] = []
    for segment in ordered:
        if limit is not None and len(newest) >= limit:
            # Every row still unread is older than the limit-th newest row read so far.
            cutoff = sorted(newest, reverse=True)[limit - 1]
            if segment.max_time * 1000 + 999 < cutoff:
                break
        table = _read_segment(stores, segment)
        if with_errors:
            if "error" not in table.column_names:
                # Written before failures were logged: every request was answered.
                table = table.append_column("error", pa.nulls(table.num_rows, pa.string()))
        elif "error" in table.column_names:
            # Failed requests have no predictions; readers of predictions never see them.
            table = table.filter(pc.is_null(table.column("error"))).drop_columns(["error"])
        stamps = table.column("timestamp").cast(pa.int64())
        mask = None
        if since_us is not None:
            mask = pc.greater_equal(stamps, since_us)
        if until_us is not None:
            upper = pc.less(stamps, until_us)
            mask = upper if mask is None else pc.and_(mask, upper)
        if mask is not None:
            table = table.filter(mask)
        if table.num_rows == 0:
            continue
        table = table.append_column(
            "model", pa.array([segment.model] * table.num_rows, pa.string())
        ).append_column("version", pa.array([segment.version] * table.num_rows, pa.int64()))
        tables.append(table)
        if limit is not None:
            newest.extend(table.column("timestamp").cast(pa.int64()).to_pylist())
    return tables


def _join_labels(
    frame: pd.DataFrame,
    stores: PredictionLogStores,
    model: str,
    since_ms: int | None,
    until_ms: int | None,
) -> pd.DataFrame:
    import pandas as pd

    # Not filtered by version: the merge below keeps only the rows read, and a request
    # answered by two versions (shadow traffic) has one label for both.
    labels = stores.log.list_labels(model, since_ms, until_ms)
    if not labels:
        frame["label"] = math.nan
        return frame
    found = pd.DataFrame(
        {
            "request_id": [label.request_id for label in labels],
            "row": pd.Series([label.row for label in labels], dtype="int64"),
            "label": [json.loads(label.label_json) for label in labels],
        }
    )
    frame["row"] = frame["row"].astype("int64")
    return frame.merge(found, on=["request_id", "row"], how="left", validate="many_to_one")


def _arrange(frame: pd.DataFrame, with_labels: bool, with_probabilities: bool) -> pd.DataFrame:
    """Fixed columns first, then features under their own names where they do not clash."""
    fixed = [c for c in RESERVED_COLUMNS if c != "label" or with_labels]
    if with_probabilities:
        fixed.append("probabilities")
    renames: dict[str, str] = {}
    features: list[str] = []
    for column in frame.columns:
        if not column.startswith(INPUT_PREFIX):
            continue
        name = column[len(INPUT_PREFIX) :]
        target = column if name in _RESERVED else name
        renames[column] = target
        features.append(target)
    frame = frame.rename(columns=renames)
    frame["version"] = frame["version"].astype("int64")
    return frame[[*fixed, *features]]


def make_prediction_hook(
    prediction_logger: PredictionLogger, *, variant: str = ""
) -> Callable[..., bool]:
    """A function the model server calls after each answer to log it.

    Parameters
    ----------
    prediction_logger : PredictionLogger
        Where the records go.
    variant : str, default ""
        The deployment variant this server is, unless a call names another.

    Returns
    -------
    callable
        ``hook(*, request_id, model, version, inputs, predictions, probabilities=None,
        latency_ms=0.0, variant=..., timestamp=None) -> bool``. It never raises: a
        failure is counted as a dropped request and reported as False.
    """

    def hook(
        *,
        request_id: str,
        model: str,
        version: int | None,
        inputs: pd.DataFrame | Sequence[Mapping[str, Any]],
        predictions: Sequence[Any],
        probabilities: Sequence[Sequence[float]] | None = None,
        latency_ms: float = 0.0,
        variant: str = variant,
        timestamp: datetime | None = None,
    ) -> bool:
        try:
            return prediction_logger.log(
                PredictionRecord(
                    request_id=request_id,
                    model=model,
                    version=version,
                    inputs=inputs,
                    predictions=predictions,
                    probabilities=probabilities,
                    latency_ms=latency_ms,
                    variant=variant,
                    timestamp=timestamp if timestamp is not None else datetime.now(UTC),
                )
            )
        except Exception:  # noqa: BLE001 - logging must never fail a prediction
            logger.exception("could not log the prediction of request %.100r", request_id)
            prediction_logger._drop(1, "bad_record")
            return False

    return hook
