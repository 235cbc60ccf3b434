"""Validate a batch of data against a schema and, optionally, a reference for drift.

:func:`validate` returns a :class:`ValidationResult` listing every :class:`Anomaly` found,
in the spirit of TensorFlow Data Validation and Great Expectations: structural problems
(missing or extra columns, type changes, empty batches), value problems (null rates,
unseen categories, out-of-range values) and value skew (drift against the reference,
computed with :func:`loopml.stats.dataset_drift`). A pipeline step can gate on it with
:meth:`ValidationResult.raise_if_failed`.

Examples
--------
>>> import pandas as pd
>>> from loopml.data.schema import infer_schema
>>> from loopml.data.validation import validate
>>> reference = pd.DataFrame({"age": [25, 32, 47, 51] * 25, "plan": ["free", "pro"] * 50})
>>> schema = infer_schema(reference)
>>> batch = pd.DataFrame({"age": [29, 130], "plan": ["free", "gold"]})
>>> result = validate(batch, schema)
>>> result.passed
False
>>> [(a.kind.value, a.column, a.severity) for a in result.anomalies]
[('out_of_range', 'age', 'error'), ('unseen_category', 'plan', 'error')]
>>> result.summary()
'FAILED: 2 errors, 0 warnings in 2 rows'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.data.schema import (
    ColumnSchema,
    Schema,
    as_datetime,
    as_frame,
    as_timestamp,
    infer_schema,
    logical_type,
)
from loopml.errors import InvalidInput
from loopml.stats import DatasetDrift, dataset_drift

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "DataValidationError",
    "ValidationResult",
    "validate",
]

Severity = Literal["error", "warning"]
#: Unseen categories in at least this share of the rows are an error, below it a warning.
UNSEEN_CATEGORY_ERROR_SHARE = 0.01
_EXAMPLES = 10
_EPSILON = 1e-12
_INTERCHANGEABLE = {"string", "category"}


class AnomalyKind(str, Enum):
    """What is wrong with a batch."""

    MISSING_COLUMN = "missing_column"
    EXTRA_COLUMN = "extra_column"
    TYPE_CHANGE = "type_change"
    NULL_RATE = "null_rate"
    UNSEEN_CATEGORY = "unseen_category"
    OUT_OF_RANGE = "out_of_range"
    EMPTY_BATCH = "empty_batch"
    DRIFT = "drift"


@dataclass(frozen=True)
class Anomaly:
    """One problem found in a batch.

    Attributes
    ----------
    column : str or None
        The column at fault; None for the whole batch (empty batch, dataset drift).
    kind : AnomalyKind
        What is wrong.
    severity : {"error", "warning"}
        Errors fail the validation; warnings are reported only.
    message : str
        A readable sentence.
    details : dict
        JSON-able figures behind the message (counts, shares, bounds, examples...).
    """

    column: str | None
    kind: AnomalyKind
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "column": self.column,
            "kind": self.kind.value,
            "severity": self.severity,
            "message": self.message,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anomaly:
        """Build from the dict :meth:`to_dict` returns."""
        try:
            severity = data["severity"]
            if severity not in ("error", "warning"):
                raise ValueError(f"unknown severity {severity!r}")
            column = data.get("column")
            return cls(
                column=None if column is None else str(column),
                kind=AnomalyKind(data["kind"]),
                severity=severity,
                message=str(data["message"]),
                details=dict(data.get("details") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not an anomaly: {exc}", field="anomalies") from exc


@dataclass(frozen=True)
class ValidationResult:
    """Every anomaly of a batch, its drift report and its size.

    Attributes
    ----------
    anomalies : tuple of Anomaly
        In order: batch, columns (schema order), then drift.
    drift : DatasetDrift or None
        The drift report, when a reference was given and the batch is not empty.
    row_count : int
        Rows in the batch.
    """

    anomalies: tuple[Anomaly, ...]
    drift: DatasetDrift | None
    row_count: int

    @property
    def errors(self) -> list[Anomaly]:
        """The anomalies that fail the validation."""
        return [a for a in self.anomalies if a.severity == "error"]

    @property
    def warnings(self) -> list[Anomaly]:
        """The anomalies that are only reported."""
        return [a for a in self.anomalies if a.severity == "warning"]

    @property
    def passed(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def summary(self) -> str:
        """One line: verdict, error and warning counts, rows and drifted columns."""
        errors, warnings = len(self.errors), len(self.warnings)
        line = (
            f"{'passed' if self.passed else 'FAILED'}: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)} in {self.row_count:,} row"
            f"{'s' * (self.row_count != 1)}"
        )
        if self.drift is not None:
            line += (
                f"; {self.drift.number_of_drifted_columns} of "
                f"{self.drift.number_of_columns} columns drifted"
            )
        return line

    def report(self) -> str:
        """A multi-line, human-readable report: the summary, then one line per anomaly."""
        lines = [f"Data validation {self.summary()}"]
        width = max((len(a.kind.value) for a in self.anomalies), default=0)
        for anomaly in sorted(self.anomalies, key=lambda a: a.severity != "error"):
            where = anomaly.column if anomaly.column is not None else "(batch)"
            lines.append(
                f"  {anomaly.severity.upper():<7} {anomaly.kind.value:<{width}}  "
                f"{where}: {anomaly.message}"
            )
        return "\n".join(lines)

    def raise_if_failed(self) -> ValidationResult:
        """Raise :class:`DataValidationError` when there is an error; else return self."""
        if not self.passed:
            raise DataValidationError(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "passed": self.passed,
            "row_count": self.row_count,
            "summary": self.summary(),
            "anomalies": [anomaly.to_dict() for anomaly in self.anomalies],
            "drift": None if self.drift is None else self.drift.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationResult:
        """Build from the dict :meth:`to_dict` returns (``passed`` is recomputed)."""
        if not isinstance(data, dict) or not isinstance(data.get("anomalies"), list):
            raise InvalidInput("not a validation result: 'anomalies' list missing", field="result")
        drift = data.get("drift")
        return cls(
            anomalies=tuple(Anomaly.from_dict(item) for item in data["anomalies"]),
            drift=None if drift is None else DatasetDrift.from_dict(drift),
            row_count=int(data.get("row_count", 0)),
        )


class DataValidationError(InvalidInput):
    """A batch failed validation; the message is the readable report.

    Attributes
    ----------
    result : ValidationResult
        The full result, for programs that want the anomalies.
    """

    def __init__(self, result: ValidationResult) -> None:
        super().__init__(result.report(), field="data")
        self.result = result


def validate(
    data: pd.DataFrame,
    schema: Schema | None = None,
    reference: pd.DataFrame | None = None,
    *,
    null_rate_tolerance: float = 0.05,
    drift_share: float = 0.5,
    drift_methods: dict[str, str] | None = None,
    range_tolerance: float = 0.1,
) -> ValidationResult:
    """Check a batch against a schema, and against a reference for drift.

    Parameters
    ----------
    data : pandas.DataFrame
        The batch (a pyarrow Table is accepted too).
    schema : Schema, optional
        The expected columns; inferred from ``reference`` when omitted.
    reference : pandas.DataFrame, optional
        Reference data; when given, every column that passed the type check is tested for
        drift.
    null_rate_tolerance : float
        How far a column's null share may exceed the reference ``null_fraction`` when
        neither the column nor the schema sets ``max_null_fraction``.
    drift_share : float
        The dataset drifts, an error, when at least this share of tested columns drifts.
    drift_methods : dict, optional
        A drift method per column (see :data:`loopml.stats.METHODS`).
    range_tolerance : float
        Slack around ``[min, max]``, as a share of ``max - min``, before values count as
        out of range. Inferred ranges are the exact reference extremes, so continuous
        columns from the same distribution sometimes step past them; the default 0.1
        tolerates that, 0 is exact.

    Returns
    -------
    ValidationResult
        Anomalies: ``empty_batch`` (error), ``missing_column`` (error if required),
        ``extra_column`` (warning), ``type_change`` (error), ``null_rate`` (error),
        ``out_of_range`` (error), ``unseen_category`` (warning below 1% of rows, else
        error) and ``drift`` (warning per drifted column, error when the dataset drifts).

    Raises
    ------
    InvalidInput
        Neither a schema nor a reference is given, an option is out of range, or the
        reference has unsupported columns.
    """
    frame = as_frame(data)
    reference_frame = None if reference is None else as_frame(reference, name="reference")
    if schema is None:
        if reference_frame is None:
            raise InvalidInput("validate needs a schema or a reference", field="schema")
        schema = infer_schema(reference_frame)
    for name, value in (
        ("null_rate_tolerance", null_rate_tolerance),
        ("drift_share", drift_share),
        ("range_tolerance", range_tolerance),
    ):
        if not 0.0 <= value <= 1.0:
            raise InvalidInput(f"{name} must be within [0, 1], not {value}", field=name)
    methods = dict(drift_methods or {})
    unknown = sorted(set(methods) - set(schema.column_names))
    if unknown:
        raise InvalidInput(
            f"drift_methods name columns not in the schema: {unknown}", field="drift_methods"
        )

    rows = len(frame)
    anomalies: list[Anomaly] = []
    if rows == 0:
        anomalies.append(_error(None, AnomalyKind.EMPTY_BATCH, "the batch has no rows"))
    anomalies.extend(_structure(frame, schema))
    checked: list[str] = []
    for column in schema.columns:
        if column.name not in frame.columns:
            continue
        series = frame[column.name]
        problem = _type_problem(series, column)
        if problem is not None:
            anomalies.append(_error(column.name, AnomalyKind.TYPE_CHANGE, problem[0], problem[1]))
            continue
        checked.append(column.name)
        if rows:
            anomalies.extend(_null_rate(series, column, schema, null_rate_tolerance))
            anomalies.extend(_out_of_range(series, column, range_tolerance))
            anomalies.extend(_unseen_categories(series, column))

    drift = None
    if reference_frame is not None and rows:
        drift = _dataset_drift(reference_frame, frame, schema, checked, drift_share, methods)
        anomalies.extend(_drift(drift))
    return ValidationResult(anomalies=tuple(anomalies), drift=drift, row_count=rows)


# -- checks -------------------------------------------------------------------------------


def _error(
    column: str | None, kind: AnomalyKind, message: str, details: dict[str, Any] | None = None
) -> Anomaly:
    return Anomaly(column, kind, "error", message, details or {})


def _warning(
    column: str | None, kind: AnomalyKind, message: str, details: dict[str, Any] | None = None
) -> Anomaly:
    return Anomaly(column, kind, "warning", message, details or {})


def _structure(frame: pd.DataFrame, schema: Schema) -> list[Anomaly]:
    found: list[Anomaly] = []
    present = {str(name) for name in frame.columns}
    for column in schema.columns:
        if column.required and column.name not in present:
            found.append(
                _error(column.name, AnomalyKind.MISSING_COLUMN, "required column is missing")
            )
    expected = set(schema.column_names)
    for name in frame.columns:
        if str(name) not in expected:
            found.append(
                _warning(str(name), AnomalyKind.EXTRA_COLUMN, "column is not in the schema")
            )
    return found


def _type_problem(
    series: pd.Series[Any], column: ColumnSchema
) -> tuple[str, dict[str, Any]] | None:
    if bool(series.isna().all()):
        return None  # nothing to type; the null-rate check speaks for all-null columns
    try:
        actual = logical_type(series, column.name)
    except InvalidInput as exc:
        return exc.message, {"expected": column.dtype, "found": str(series.dtype)}
    if actual == column.dtype or {actual, column.dtype} == _INTERCHANGEABLE:
        return None
    if column.dtype == "float" and actual == "int":
        return None
    if column.dtype == "int" and actual == "float":
        values = series.dropna().to_numpy(dtype=np.float64)
        if bool(np.all(np.isfinite(values) & (values == np.round(values)))):
            return None  # ints stored as floats because of nulls
    details = {"expected": column.dtype, "found": actual, "dtype": str(series.dtype)}
    return f"expected {column.dtype}, found {actual} (dtype {series.dtype})", details


def _null_rate(
    series: pd.Series[Any], column: ColumnSchema, schema: Schema, tolerance: float
) -> list[Anomaly]:
    nulls = int(series.isna().sum())
    share = nulls / len(series)
    details: dict[str, Any] = {"nulls": nulls, "share": share}
    if nulls and not column.nullable:
        message = f"{nulls:,} null{'s' * (nulls != 1)} ({share:.2%}) in a non-nullable column"
        return [_error(column.name, AnomalyKind.NULL_RATE, message, details)]
    if column.max_null_fraction is not None:
        limit, origin = column.max_null_fraction, "the column's max_null_fraction"
    elif schema.max_null_fraction is not None:
        limit, origin = schema.max_null_fraction, "the schema's max_null_fraction"
    else:
        limit = column.null_fraction + tolerance
        origin = f"reference {column.null_fraction:.2%} + tolerance {tolerance:.2%}"
    if share <= limit + _EPSILON:
        return []
    details["limit"] = limit
    message = f"null share {share:.2%} exceeds {limit:.2%} ({origin})"
    return [_error(column.name, AnomalyKind.NULL_RATE, message, details)]


def _out_of_range(series: pd.Series[Any], column: ColumnSchema, tolerance: float) -> list[Anomaly]:
    if column.min is None and column.max is None:
        return []
    values: Any
    low: Any
    high: Any
    if column.dtype == "datetime":
        values = as_datetime(series, column.name)
        low, high = _timestamp(column.min), _timestamp(column.max)
    elif column.dtype in ("int", "float"):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        low, high = _number(column.min), _number(column.max)
    else:
        return []
    if low is not None and high is not None and tolerance:
        slack = (high - low) * tolerance
        low, high = low - slack, high + slack
    below = np.asarray(values < low) if low is not None else np.zeros(len(series), dtype=bool)
    above = np.asarray(values > high) if high is not None else np.zeros(len(series), dtype=bool)
    count = int(below.sum() + above.sum())
    if not count:
        return []
    outside = values[below | above]
    seen_low, seen_high = _plain(outside.min()), _plain(outside.max())
    details = {
        "count": count,
        "share": count / len(series),
        "below": int(below.sum()),
        "above": int(above.sum()),
        "expected_min": column.min,
        "expected_max": column.max,
        "outside_min": seen_low,
        "outside_max": seen_high,
    }
    message = (
        f"{count:,} value{'s' * (count != 1)} ({count / len(series):.2%}) outside "
        f"[{_show(column.min, '-inf')}, {_show(column.max, 'inf')}]: "
        + (_show(seen_low) if seen_low == seen_high else f"{_show(seen_low)} to {_show(seen_high)}")
    )
    return [_error(column.name, AnomalyKind.OUT_OF_RANGE, message, details)]


def _number(bound: Any) -> float | None:
    return None if bound is None else float(bound)


def _timestamp(bound: Any) -> pd.Timestamp | None:
    return None if bound is None else as_timestamp(bound)


def _show(value: Any, missing: str = "") -> str:
    if value is None:
        return missing
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _unseen_categories(series: pd.Series[Any], column: ColumnSchema) -> list[Anomaly]:
    if column.categories is None:
        return []
    values = series.dropna()
    unseen = ~values.isin(column.categories)
    count = int(unseen.sum())
    if not count:
        return []
    share = count / len(series)
    examples = [_plain(v) for v in pd.unique(values[unseen].to_numpy(dtype=object))[:_EXAMPLES]]
    details = {"count": count, "share": share, "examples": examples}
    shown = ", ".join(repr(v) for v in examples)
    message = f"{count:,} value{'s' * (count != 1)} ({share:.2%}) outside the domain: {shown}"
    if share < UNSEEN_CATEGORY_ERROR_SHARE:
        return [_warning(column.name, AnomalyKind.UNSEEN_CATEGORY, message, details)]
    return [_error(column.name, AnomalyKind.UNSEEN_CATEGORY, message, details)]


def _dataset_drift(
    reference: pd.DataFrame,
    frame: pd.DataFrame,
    schema: Schema,
    checked: list[str],
    drift_share: float,
    methods: dict[str, str],
) -> DatasetDrift:
    """Drift of the columns that passed the type check (datetimes are not tested)."""
    dtypes = {column.name: column.dtype for column in schema.columns}
    tested = [n for n in checked if n in reference.columns and dtypes[n] != "datetime"]
    return dataset_drift(
        reference,
        frame,
        tested,
        drift_share=drift_share,
        methods={name: method for name, method in methods.items() if name in tested},
    )


def _drift(drift: DatasetDrift) -> list[Anomaly]:
    found = []
    for name, result in drift.columns.items():
        if result.drifted:
            relation = "<" if result.p_value is not None else ">="
            score = "p-value" if result.p_value is not None else "distance"
            message = (
                f"{result.method} {score} {result.score:.4g} {relation} threshold "
                f"{result.threshold:g}"
            )
            found.append(_warning(name, AnomalyKind.DRIFT, message, result.to_dict()))
    if drift.dataset_drifted:
        message = (
            f"{drift.number_of_drifted_columns} of {drift.number_of_columns} columns drifted "
            f"({drift.share_drifted:.0%} >= {drift.drift_share:.0%}): "
            f"{', '.join(drift.drifted_columns)}"
        )
        details = {
            "share_drifted": drift.share_drifted,
            "drift_share": drift.drift_share,
            "drifted_columns": drift.drifted_columns,
        }
        found.append(_error(None, AnomalyKind.DRIFT, message, details))
    return found


def _plain(value: Any) -> Any:
    """A JSON-able version of a value taken from the data."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not np.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
