"""Turning prediction records into Arrow tables: one row per predicted row.

Records are gathered column by column as plain Python lists and converted to Arrow once per
segment: building a DataFrame per request would cost more than the request itself. A column
whose values mix types across requests (a feature sent as a number, then as text) is stored
as text rather than failing the whole segment.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Features are stored under this prefix, so no input can clash with the log's own columns.
INPUT_PREFIX = "input."
MAX_NAME = 250
#: Longest error message kept for a failed request.
MAX_ERROR_CHARS = 500
ARROW_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


@dataclass(frozen=True, kw_only=True)
class PredictionRecord:
    """One answered request, as the model server hands it to :meth:`PredictionLogger.log`.

    Attributes
    ----------
    request_id : str
        The request's id (the ``X-Request-ID`` the server answered with).
    model : str
        The registered model name.
    version : int or None
        The version that answered; None (a model not from the registry) is logged as 0.
    inputs : DataFrame or sequence of dict
        The request's rows, one per prediction. Not copied: do not change it afterwards.
    predictions : sequence
        The model output, one value per row.
    probabilities : sequence of sequence of float, optional
        Class probabilities per row, when the model has them.
    latency_ms : float
        Time the server took to answer the whole request.
    variant : str
        The deployment variant that answered (``""`` outside a deployment).
    timestamp : datetime
        When the request was answered; naive times are taken as UTC.
    error : str or None
        Why the request failed (no predictions then); failed requests are kept apart from
        the predictions and count towards the serving error rate.
    """

    request_id: str
    model: str
    version: int | None
    inputs: pd.DataFrame | Sequence[Mapping[str, Any]]
    predictions: Sequence[Any]
    probabilities: Sequence[Sequence[float]] | None = None
    latency_ms: float = 0.0
    variant: str = ""
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: str | None = None


def safe_len(values: Any) -> int:
    try:
        return len(values)
    except TypeError:
        return 0


def check_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise InvalidInput(
            f"{name} must be a non-empty string of at most {MAX_NAME} characters", field=name
        )
    return value


def check_version(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise InvalidInput(
            f"version must be a non-negative integer, not {value!r}", field="version"
        )
    return int(value)


def epoch_us(value: datetime) -> int:
    if not isinstance(value, datetime):
        raise InvalidInput("timestamp must be a datetime", field="timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1_000_000)


def _input_columns(inputs: Any, rows: int) -> dict[str, list[Any]]:
    """The request's features as ``input.<name>`` columns of plain Python values."""
    if hasattr(inputs, "to_dict") and hasattr(inputs, "columns"):
        if len(inputs) != rows:
            raise InvalidInput(f"{len(inputs)} input rows for {rows} predictions", field="inputs")
        # One conversion of the whole frame: indexing it column by column costs ~35 us per
        # column in pandas, which the writer would pay for every column of every request.
        values = inputs.to_numpy(dtype=object).T.tolist()
        return {
            f"{INPUT_PREFIX}{name}": column
            for name, column in zip(inputs.columns, values, strict=True)
        }
    records = list(inputs)
    if len(records) != rows:
        raise InvalidInput(f"{len(records)} input rows for {rows} predictions", field="inputs")
    names: dict[str, None] = {}
    for record in records:
        if not isinstance(record, Mapping):
            raise InvalidInput("each input row must be a mapping", field="inputs")
        names.update(dict.fromkeys(record))
    return {f"{INPUT_PREFIX}{name}": [r.get(name) for r in records] for name in names}


def _record_columns(record: PredictionRecord) -> dict[str, list[Any]]:
    """All columns of one record, or an error naming what is wrong with it."""
    request_id = check_name(record.request_id, "request_id")
    predictions = list(record.predictions)
    error = None if record.error is None else str(record.error)[:MAX_ERROR_CHARS]
    inputs: Any = record.inputs
    given_probabilities = record.probabilities
    if error is not None and not predictions:
        # A failed request keeps its rows (what was sent is what to debug) or one empty row.
        predictions = [None] * max(1, safe_len(inputs))
        given_probabilities = None
        if safe_len(inputs) == 0:
            inputs = [{}]
    rows = len(predictions)
    if rows == 0:
        raise InvalidInput("a record needs at least one prediction", field="predictions")
    probabilities: list[list[float] | None]
    best: list[float]
    if given_probabilities is None:
        probabilities, best = [None] * rows, [math.nan] * rows
    else:
        probabilities = [[float(p) for p in row] for row in given_probabilities]
        if len(probabilities) != rows:
            raise InvalidInput("one probability row per prediction", field="probabilities")
        best = [max(row) if row else math.nan for row in probabilities]
    columns: dict[str, list[Any]] = {
        "request_id": [request_id] * rows,
        "row": list(range(rows)),
        "timestamp": [epoch_us(record.timestamp)] * rows,
        "variant": [str(record.variant or "")] * rows,
        "latency_ms": [float(record.latency_ms)] * rows,
        "prediction": predictions,
        "probability": best,
        "probabilities": probabilities,
    }
    if error is not None:
        columns["error"] = [error] * rows
    for name, values in _input_columns(inputs, rows).items():
        columns[name] = values
    return columns


def _array(values: list[Any], type_: pa.DataType | None = None) -> pa.Array:
    """An Arrow array of the values; a column mixing types falls back to JSON text."""
    try:
        return pa.array(values, type=type_, from_pandas=True)
    except ARROW_ERRORS:
        if type_ is not None:
            raise
        return pa.array(
            [
                None if v is None else v if isinstance(v, str) else json.dumps(v, default=str)
                for v in values
            ],
            type=pa.string(),
        )


_FIXED_TYPES: dict[str, pa.DataType] = {
    "request_id": pa.string(),
    "row": pa.int64(),
    "timestamp": pa.int64(),
    "variant": pa.string(),
    "latency_ms": pa.float64(),
    "probability": pa.float64(),
    "probabilities": pa.list_(pa.float64()),
    "error": pa.string(),
}


def build_segment_table(
    records: Sequence[PredictionRecord],
) -> tuple[pa.Table, list[tuple[str, int, int]], int]:
    """Turn records of one model version into a segment table.

    Returns
    -------
    tuple
        The table (one row per predicted row, features as ``input.<name>``), the
        ``(request_id, time_ms, rows)`` entries of the requests it holds, and how many
        records were skipped as malformed.
    """
    columns: dict[str, list[Any]] = {}
    requests: list[tuple[str, int, int]] = []
    total = 0
    bad = 0
    for record in records:
        try:
            own = _record_columns(record)
        except Exception as exc:  # noqa: BLE001 - a malformed record is skipped, not fatal
            logger.warning("prediction log skipped request %.100r: %s", record.request_id, exc)
            bad += 1
            continue
        rows = len(own["row"])
        for name, values in own.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * total
            column.extend(values)
        total += rows
        for column in columns.values():
            if len(column) < total:
                column.extend([None] * (total - len(column)))
        requests.append((own["request_id"][0], own["timestamp"][0] // 1000, rows))
    if total == 0:
        return pa.table({}), [], bad
    arrays = {name: _array(values, _FIXED_TYPES.get(name)) for name, values in columns.items()}
    arrays["timestamp"] = arrays["timestamp"].cast(pa.timestamp("us", tz="UTC"))
    return pa.table(arrays), requests, bad
