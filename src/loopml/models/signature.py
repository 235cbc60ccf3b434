"""Model signatures: the input columns and types a model expects, inferred from an example.

Serving and ``LoadedModel.predict`` check every request against the signature, so a missing
column or a value of the wrong type is a clear error naming the column, not a stack trace
from deep inside the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput

INPUT_TYPES = ("integer", "double", "boolean", "string", "datetime")


def as_frame(data: Any, *, field: str = "data") -> pd.DataFrame:
    """Accept a DataFrame, one record (dict) or a list of records."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        return pd.DataFrame([data])
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame.from_records(data)
    raise InvalidInput(
        f"{field} must be a DataFrame, a record or a list of records, got {type(data).__name__}",
        field=field,
    )


def _column_type(series: pd.Series[Any], name: str) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        values = series.dropna()
        if all(isinstance(v, str) for v in values):
            return "string"
    raise InvalidInput(
        f"column {name!r} has values of type {dtype} that a signature cannot describe "
        "(use numbers, booleans, strings or datetimes)",
        field=name,
    )


def infer_signature(input_example: Any, output: Any = None) -> dict[str, Any]:
    """Describe the inputs (and optionally the outputs) of a model from an example.

    Returns
    -------
    dict
        ``{"inputs": [{"name", "type"}...], "outputs": {"type", "shape"} | None}``.
    """
    frame = as_frame(input_example, field="input_example")
    if frame.empty:
        raise InvalidInput("the input example has no rows", field="input_example")
    inputs = [{"name": str(c), "type": _column_type(frame[c], str(c))} for c in frame.columns]
    outputs = None
    if output is not None:
        array = np.asarray(output)
        kind = array.dtype.kind
        out_type = {"b": "boolean", "i": "integer", "u": "integer", "f": "double"}.get(
            kind, "string"
        )
        outputs = {"type": out_type, "shape": [-1, *array.shape[1:]]}
    return {"inputs": inputs, "outputs": outputs}


def _coerce(series: pd.Series[Any], expected: str, name: str) -> pd.Series[Any]:
    try:
        if expected == "double":
            if pd.api.types.is_bool_dtype(series.dtype) or not (
                pd.api.types.is_numeric_dtype(series.dtype)
            ):
                raise ValueError
            return series.astype("float64")
        if expected == "integer":
            if pd.api.types.is_bool_dtype(series.dtype) or not (
                pd.api.types.is_numeric_dtype(series.dtype)
            ):
                raise ValueError
            numbers = series.astype("float64")
            if not np.all(np.isfinite(numbers)) or not np.all(numbers == np.round(numbers)):
                raise ValueError
            return numbers.astype("int64")
        if expected == "boolean":
            if pd.api.types.is_bool_dtype(series.dtype):
                return series
            raise ValueError
        if expected == "string":
            if all(isinstance(v, str) for v in series.dropna()):
                return series.astype(object)
            raise ValueError
        if expected == "datetime":
            return pd.to_datetime(series)
    except (ValueError, TypeError):
        sample = series.dropna().iloc[:1].tolist()
        raise InvalidInput(
            f"column {name!r} must hold {expected} values (got {series.dtype}"
            + (f", e.g. {sample[0]!r})" if sample else ")"),
            field=name,
        ) from None
    raise InvalidInput(f"unknown signature type {expected!r}", field=name)


def enforce(data: Any, signature: dict[str, Any] | None) -> pd.DataFrame:
    """Check and align input against a signature: required columns, order, types.

    Extra columns are dropped; integer inputs are accepted for double columns.
    """
    frame = as_frame(data)
    if not signature:
        return frame
    columns = signature.get("inputs") or []
    missing = [c["name"] for c in columns if c["name"] not in frame.columns]
    if missing:
        raise InvalidInput(f"input is missing column(s): {', '.join(missing)}", field=missing[0])
    aligned = {c["name"]: _coerce(frame[c["name"]], c["type"], c["name"]) for c in columns}
    return pd.DataFrame(aligned, index=frame.index)
