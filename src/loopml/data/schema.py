"""Dataset schemas: logical column types, nullability, ranges and categorical domains.

A schema is inferred from a reference dataset, reviewed and edited by people, stored as
YAML or JSON, and used by :func:`loopml.data.validation.validate` to check new batches.

Examples
--------
>>> import pandas as pd
>>> from loopml.data.schema import Schema, infer_schema
>>> frame = pd.DataFrame({"age": [23, 41, 35, 41], "plan": ["free", "pro", "free", "free"]})
>>> schema = infer_schema(frame)
>>> schema.column("age").dtype, schema.column("age").min, schema.column("age").max
('int', 23, 41)
>>> schema.column("plan").categories
['free', 'pro']
>>> schema.column("age").max = 120
>>> Schema.from_yaml(schema.to_yaml()) == schema
True
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml
from pandas.api import types as ptypes

from loopml.errors import InvalidInput, NotFound

__all__ = [
    "LOGICAL_TYPES",
    "ColumnSchema",
    "Schema",
    "as_datetime",
    "as_frame",
    "as_timestamp",
    "infer_schema",
    "logical_type",
]

#: The logical column types a schema speaks.
LOGICAL_TYPES: tuple[str, ...] = ("bool", "category", "datetime", "float", "int", "string")
Bound: TypeAlias = int | float | str
Scalar: TypeAlias = str | int | float | bool
_DOMAIN_TYPES = frozenset({"bool", "category", "string"})
_NESTED = (list, tuple, dict, set, np.ndarray)
_OBJECT_TYPES = {
    "string": "string",
    "empty": "string",
    "boolean": "bool",
    "integer": "int",
    "floating": "float",
    "mixed-integer-float": "float",
    "datetime64": "datetime",
    "datetime": "datetime",
    "date": "datetime",
}


def _column_error(column: str, message: str) -> NoReturn:
    raise InvalidInput(f"column {column!r}: {message}", field=column)


def _fail(where: str, message: str, source: str | None = None) -> NoReturn:
    prefix = f"{source}: " if source else ""
    raise InvalidInput(f"{prefix}{where}: {message}", field=where)


@dataclass
class ColumnSchema:
    """What one column may hold.

    Attributes
    ----------
    name : str
        The column name.
    dtype : str
        The logical type: ``int``, ``float``, ``bool``, ``string``, ``category`` or
        ``datetime``.
    nullable : bool
        Whether nulls are allowed at all.
    required : bool
        Whether a batch without the column is an error.
    min, max : int, float or str, optional
        Inclusive bounds of numeric columns, or ISO 8601 timestamps for datetime columns.
    categories : list, optional
        The allowed values (the domain) of a categorical column.
    null_fraction : float
        The share of nulls seen in the reference data.
    max_null_fraction : float, optional
        The largest share of nulls allowed; when None, the schema-wide default applies,
        else ``null_fraction`` plus the validation tolerance.
    """

    name: str
    dtype: str
    nullable: bool = True
    required: bool = True
    min: Bound | None = None
    max: Bound | None = None
    categories: list[Scalar] | None = None
    null_fraction: float = 0.0
    max_null_fraction: float | None = None

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("min", "max", "categories", "max_null_fraction")

    def __post_init__(self) -> None:
        if self.dtype not in LOGICAL_TYPES:
            _fail(
                f"{self.name}.dtype",
                f"unknown type {self.dtype!r}; expected one of {', '.join(LOGICAL_TYPES)}",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict; unset optional fields are left out."""
        data: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "required": self.required,
            "min": self.min,
            "max": self.max,
            "categories": None if self.categories is None else list(self.categories),
            "null_fraction": self.null_fraction,
            "max_null_fraction": self.max_null_fraction,
        }
        return {k: v for k, v in data.items() if v is not None or k not in self._OPTIONAL}

    @classmethod
    def from_dict(
        cls, data: Any, *, where: str = "column", source: str | None = None
    ) -> ColumnSchema:
        """Build from a dict, checking every field.

        Raises
        ------
        InvalidInput
            Naming ``source`` and the field (``columns[2].dtype``) at fault.
        """
        if not isinstance(data, dict):
            _fail(where, f"expected a mapping, got {type(data).__name__}", source)
        unknown = sorted(set(map(str, data)) - {f.name for f in fields(cls)})
        if unknown:
            _fail(where, f"unknown field(s) {', '.join(unknown)}", source)
        for key in ("name", "dtype"):
            if key not in data:
                _fail(f"{where}.{key}", "is required", source)
        name, dtype = data["name"], data["dtype"]
        if not isinstance(name, str) or not name:
            _fail(f"{where}.name", "must be a non-empty string", source)
        if dtype not in LOGICAL_TYPES:
            _fail(
                f"{where}.dtype",
                f"unknown type {dtype!r}; expected one of {', '.join(LOGICAL_TYPES)}",
                source,
            )
        flags = {}
        for key in ("nullable", "required"):
            value = data.get(key, True)
            if not isinstance(value, bool):
                _fail(f"{where}.{key}", f"must be true or false, not {value!r}", source)
            flags[key] = value
        low = _bound(data.get("min"), dtype, f"{where}.min", source)
        high = _bound(data.get("max"), dtype, f"{where}.max", source)
        if low is not None and high is not None and _order(low, dtype) > _order(high, dtype):
            _fail(f"{where}.min", f"{low!r} is greater than max {high!r}", source)
        return cls(
            name=name,
            dtype=dtype,
            nullable=flags["nullable"],
            required=flags["required"],
            min=low,
            max=high,
            categories=_categories(data.get("categories"), f"{where}.categories", source),
            null_fraction=_fraction(
                data.get("null_fraction", 0.0), f"{where}.null_fraction", source
            ),
            max_null_fraction=_optional_fraction(
                data.get("max_null_fraction"), f"{where}.max_null_fraction", source
            ),
        )


def _bound(value: Any, dtype: str, where: str, source: str | None) -> Bound | None:
    if value is None:
        return None
    if dtype == "datetime":
        if isinstance(value, dt.date):  # YAML turns unquoted timestamps into datetimes
            return value.isoformat()
        if isinstance(value, str):
            try:
                pd.Timestamp(value)
            except (ValueError, TypeError) as exc:
                _fail(where, f"{value!r} is not an ISO 8601 timestamp ({exc})", source)
            return value
        _fail(where, f"must be an ISO 8601 timestamp, not {value!r}", source)
    if dtype in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(where, f"must be a number, not {value!r}", source)
        if not math.isfinite(value):
            _fail(where, f"must be finite, not {value!r}", source)
        return float(value) if dtype == "float" else value
    _fail(where, f"a {dtype} column has no range; remove the bound", source)


def _order(bound: Bound, dtype: str) -> Any:
    return as_timestamp(bound) if dtype == "datetime" else bound


def _categories(value: Any, where: str, source: str | None) -> list[Scalar] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        _fail(where, f"must be a list of values, not {type(value).__name__}", source)
    for item in value:
        if not isinstance(item, str | int | float | bool):
            _fail(where, f"values must be strings, numbers or booleans, not {item!r}", source)
    return list(value)


def _fraction(value: Any, where: str, source: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        _fail(where, f"must be a number between 0 and 1, not {value!r}", source)
    return float(value)


def _optional_fraction(value: Any, where: str, source: str | None) -> float | None:
    return None if value is None else _fraction(value, where, source)


@dataclass
class Schema:
    """The expected columns of a dataset. Mutable, so inferred schemas can be edited.

    Attributes
    ----------
    columns : list of ColumnSchema
        The columns, in order.
    max_null_fraction : float, optional
        The default largest share of nulls allowed in a column that sets no
        ``max_null_fraction`` of its own. When None too, a column may have its reference
        ``null_fraction`` plus the validation tolerance.

    Examples
    --------
    >>> schema = Schema([ColumnSchema("age", "int", min=0)])
    >>> schema.column("age").max = 120
    >>> schema.to_dict()["columns"][0]["max"]
    120
    """

    columns: list[ColumnSchema] = field(default_factory=list)
    max_null_fraction: float | None = None

    #: The version of the serialised format.
    FORMAT_VERSION: ClassVar[int] = 1

    @property
    def column_names(self) -> list[str]:
        """The column names, in order."""
        return [column.name for column in self.columns]

    def column(self, name: str) -> ColumnSchema:
        """Return the column called ``name`` (raises :class:`~loopml.errors.NotFound`)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise NotFound(f"the schema has no column {name!r}", field="name")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        data: dict[str, Any] = {"version": self.FORMAT_VERSION}
        if self.max_null_fraction is not None:
            data["max_null_fraction"] = self.max_null_fraction
        data["columns"] = [column.to_dict() for column in self.columns]
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> Schema:
        """Build from the dict :meth:`to_dict` returns, checking every field.

        Raises
        ------
        InvalidInput
            Naming ``source`` (a file name, when loading) and the field at fault.
        """
        if not isinstance(data, dict):
            _fail("schema", f"expected a mapping, got {type(data).__name__}", source)
        unknown = sorted(set(map(str, data)) - {"version", "columns", "max_null_fraction"})
        if unknown:
            _fail("schema", f"unknown field(s) {', '.join(unknown)}", source)
        version = data.get("version", cls.FORMAT_VERSION)
        if version != cls.FORMAT_VERSION:
            _fail("version", f"unsupported schema version {version!r}", source)
        items = data.get("columns")
        if not isinstance(items, list):
            _fail("columns", "must be a list of columns", source)
        columns = [
            ColumnSchema.from_dict(item, where=f"columns[{i}]", source=source)
            for i, item in enumerate(items)
        ]
        seen: set[str] = set()
        for i, column in enumerate(columns):
            if column.name in seen:
                _fail(f"columns[{i}].name", f"duplicate column {column.name!r}", source)
            seen.add(column.name)
        default = _optional_fraction(data.get("max_null_fraction"), "max_null_fraction", source)
        return cls(columns=columns, max_null_fraction=default)

    def to_yaml(self) -> str:
        """Return the schema as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "schema") -> Schema:
        """Parse YAML text (``source`` names it in error messages)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{source}: invalid YAML: {exc}", field="schema") from exc
        return cls.from_dict(data, source=source)

    def to_json(self, *, indent: int | None = 2) -> str:
        """Return the schema as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str, *, source: str = "schema") -> Schema:
        """Parse JSON text (``source`` names it in error messages)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{source}: invalid JSON: {exc}", field="schema") from exc
        return cls.from_dict(data, source=source)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the schema atomically: JSON for a ``.json`` path, YAML otherwise."""
        target = Path(path)
        text = self.to_json() if target.suffix.lower() == ".json" else self.to_yaml()
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Schema:
        """Read a schema file written by :meth:`save` (or by hand)."""
        target = Path(path)
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise NotFound(f"schema file {str(target)!r} does not exist", field="path") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{target}: cannot read the schema: {exc}", field="path") from exc
        if target.suffix.lower() == ".json":
            return cls.from_json(text, source=str(target))
        return cls.from_yaml(text, source=str(target))


# -- inference ---------------------------------------------------------------------------


def as_frame(data: Any, *, name: str = "data") -> pd.DataFrame:
    """Return ``data`` as a DataFrame with string column labels.

    A pyarrow Table is converted (nested types are refused, naming the column).
    """
    frame: pd.DataFrame
    if isinstance(data, pa.Table):
        for arrow_field in data.schema:
            if pa.types.is_nested(arrow_field.type):
                _column_error(arrow_field.name, f"nested type {arrow_field.type} is not supported")
        frame = data.to_pandas(date_as_object=False)
    elif isinstance(data, pd.DataFrame):
        frame = data
    else:
        raise InvalidInput(
            f"{name} must be a pandas DataFrame or a pyarrow Table, not {type(data).__name__}",
            field=name,
        )
    if not all(isinstance(label, str) for label in frame.columns):
        frame = frame.set_axis([str(label) for label in frame.columns], axis=1)
    if not frame.columns.is_unique:
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InvalidInput(f"{name} has duplicate column names: {duplicated}", field=name)
    return frame


def logical_type(series: pd.Series[Any], column: str = "") -> str:
    """Map a column's dtype (and, for object columns, its values) to a logical type.

    Raises
    ------
    InvalidInput
        Naming the column, for nested values (lists, dicts, structs), object columns
        mixing types (ints and strings) and dtypes without a logical type (timedelta,
        complex, intervals...).
    """
    column = column or str(series.name)
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_nested(dtype.pyarrow_dtype):
        _column_error(column, f"nested type {dtype} is not supported")
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if ptypes.is_integer_dtype(dtype):
        return "int"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "datetime"
    if ptypes.is_object_dtype(dtype):
        return _object_type(series, column)
    if ptypes.is_string_dtype(dtype):
        return "string"
    _column_error(column, f"dtype {dtype} is not supported")


def _object_type(series: pd.Series[Any], column: str) -> str:
    inferred = ptypes.infer_dtype(series, skipna=True)
    if inferred in _OBJECT_TYPES:
        return _OBJECT_TYPES[inferred]
    values = series.dropna()
    if values.map(lambda v: isinstance(v, _NESTED)).any():
        _column_error(column, "nested values (lists, dicts) are not supported")
    if inferred.startswith("mixed"):
        kinds = sorted({type(v).__name__ for v in values.head(10_000)})
        _column_error(
            column, f"mixed value types ({', '.join(kinds)}); cast the column to one type"
        )
    _column_error(column, f"values of type {inferred!r} are not supported")


def as_datetime(series: pd.Series[Any], column: str = "") -> pd.Series[Any]:
    """Return a datetime column as datetime64 values in UTC without timezone (naive = UTC)."""
    try:
        values = series if ptypes.is_datetime64_any_dtype(series.dtype) else pd.to_datetime(series)
    except (ValueError, TypeError) as exc:
        _column_error(column or str(series.name), f"values are not timestamps: {exc}")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values


def as_timestamp(value: Any) -> pd.Timestamp:
    """Parse a datetime bound; timezone-aware values are converted to naive UTC."""
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def infer_schema(
    data: pd.DataFrame | pa.Table, *, max_categories: int = 50, required: bool = True
) -> Schema:
    """Infer a schema from a reference dataset.

    Parameters
    ----------
    data : pandas.DataFrame or pyarrow.Table
        The reference data.
    max_categories : int
        A string, category or bool column gets a domain (``categories``) when it has at
        most this many distinct values and they are at most half its non-null values.
    required : bool
        The ``required`` flag of every column.

    Returns
    -------
    Schema
        Types from the dtypes, nullability and null fractions, ranges of int, float and
        datetime columns, and domains of low-cardinality categorical columns.

    Raises
    ------
    InvalidInput
        Naming the column, for unsupported columns (nested values, mixed-type objects).
    """
    frame = as_frame(data)
    return Schema(
        columns=[
            _infer_column(str(name), frame[name], max_categories, required)
            for name in frame.columns
        ]
    )


def _infer_column(
    name: str, series: pd.Series[Any], max_categories: int, required: bool
) -> ColumnSchema:
    dtype = logical_type(series, name)
    nulls = int(series.isna().sum())
    column = ColumnSchema(
        name=name,
        dtype=dtype,
        nullable=nulls > 0,
        required=required,
        # rounded up, so the data the schema came from always passes its own check
        null_fraction=math.ceil(nulls / len(series) * 1e6) / 1e6 if len(series) else 0.0,
    )
    values = series.dropna()
    if values.empty:
        return column
    if dtype == "int":
        column.min, column.max = int(values.min()), int(values.max())
    elif dtype == "float":
        array = values.to_numpy(dtype=np.float64)
        finite = array[np.isfinite(array)]
        if finite.size:
            column.min, column.max = float(finite.min()), float(finite.max())
    elif dtype == "datetime":
        stamps = as_datetime(values, name)
        column.min, column.max = stamps.min().isoformat(), stamps.max().isoformat()
    elif dtype in _DOMAIN_TYPES:
        column.categories = _domain(values, max_categories)
    return column


def _domain(values: pd.Series[Any], max_categories: int) -> list[Scalar] | None:
    distinct = pd.unique(values.to_numpy(dtype=object))
    if len(distinct) > max_categories or len(distinct) > 0.5 * len(values):
        return None
    items = [v.item() if isinstance(v, np.generic) else v for v in distinct]
    if not all(isinstance(v, str | int | float | bool) for v in items):
        return None
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=str)
