"""Column profiles of a table: types, counts, moments, quantiles, histograms and top values.

:func:`profile_table` reads the data once, record batch by record batch (a Parquet file need
not fit in memory), keeping small mergeable summaries per column:

* rows, missing values (null, and NaN in float columns), infinities, min and max: exact;
* mean and standard deviation (``ddof=1``) of the finite values: exact up to float rounding;
* distinct and top values: exact up to :data:`DISTINCT_EXACT_LIMIT` distinct values; beyond,
  a K-minimum-values sketch (about 1 % error) and the :data:`HEAVY_HITTERS` most frequent
  values kept so far (counts then are lower bounds);
* quantiles (numpy's linear interpolation): over a uniform sample of ``sample_size`` finite
  values (smallest random keys, fixed seed), so exact for columns no larger than that;
* histogram: ``bins`` equal-width bins from min to max (unit bins on the integers for int
  columns spanning fewer values). Exact while the sample holds every value, otherwise
  re-binned from at most 4,096 power-of-two-wide fine bins: an edge can misplace only the
  values of the fine bin it cuts (at most 1/2,048 of the range wide).

Memory per column stays bounded by the sample, the fine bins and the distinct values kept.
A column is flagged ``approximate`` when any figure is an estimate. Datetime figures are ISO
8601 strings (``Z``-suffixed, in UTC, for time-zone-aware columns), exact to about a
microsecond when interpolated; their standard deviation is in seconds.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidInput, NotFound

__all__ = [
    "ColumnProfile",
    "DatasetProfile",
    "Histogram",
    "LogicalType",
    "Scalar",
    "profile_table",
]

LogicalType = Literal["int", "float", "bool", "string", "category", "datetime"]
Scalar = bool | int | float | str | None
_Kind = Literal["int", "float", "bool", "string", "binary", "category", "datetime"]
_Unit = Literal["s", "ms", "us", "ns"]

SAMPLE_SIZE = 100_000
DISTINCT_EXACT_LIMIT = 3_000_000
HEAVY_HITTERS = 100_000
LOW_CARDINALITY_MAX = 1_000
FORMAT_VERSION = 1

_SEED = 20_240_601
_SLICE_ROWS = 65_536  # hash tables of this many values stay in cache
_COMPACT_ROWS = 1 << 20
_FINE_BINS = 4_096
_SKETCH_SIZE = 16_384
_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}

FloatArray = npt.NDArray[np.float64]
TopValues = tuple[tuple[Scalar, int], ...]


@dataclass(frozen=True)
class Histogram:
    """Bin edges (``len(counts) + 1`` of them, the last bin closed) and counts per bin."""

    edges: tuple[float | str, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class ColumnProfile:
    """Summary statistics of one column.

    Attributes
    ----------
    name : str
        The column name.
    logical_type : {"int", "float", "bool", "string", "category", "datetime"}
        Dictionary columns are ``category``; so are string columns with at most
        :data:`LOW_CARDINALITY_MAX` distinct values, each seen twice on average.
    arrow_type : str
        The Arrow type, as text.
    count, missing, distinct : int
        Rows (missing ones included); null values, plus NaN in float columns; distinct
        non-missing values.
    mean, std, min, max : bool, int, float, str or None
        Over the finite values of int, float and datetime columns (``mean`` is the share of
        ``True`` in bool columns); ``None`` when not applicable.
    quantiles : tuple of (float, value)
        ``(q, value)`` pairs, for int, float and datetime columns.
    histogram : Histogram or None
        For int, float and datetime columns with at least one finite value.
    top_values : tuple of (value, count)
        Most frequent values first (ties by value), for string, category, bool and
        low-cardinality int columns.
    infinite : int
        Infinite values of float columns (present, but kept out of the moments).
    approximate : bool
        Whether any figure is an estimate (see the module documentation).
    """

    name: str
    logical_type: LogicalType
    arrow_type: str
    count: int
    missing: int
    distinct: int
    mean: Scalar = None
    std: float | None = None
    min: Scalar = None
    max: Scalar = None
    quantiles: tuple[tuple[float, Scalar], ...] = ()
    histogram: Histogram | None = None
    top_values: TopValues = ()
    infinite: int = 0
    approximate: bool = False

    @property
    def missing_rate(self) -> float:
        """Share of missing values, 0.0 for a column without rows."""
        return self.missing / self.count if self.count else 0.0

    def quantile(self, q: float) -> Scalar:
        """Return the profiled quantile ``q``.

        Raises
        ------
        NotFound
            When ``q`` was not among the quantiles profiled.
        """
        for level, value in self.quantiles:
            if math.isclose(level, q):
                return value
        raise NotFound(f"quantile {q} of column {self.name!r} was not profiled", field="q")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (NaN and infinities become ``None``)."""
        return cast(dict[str, Any], _jsonable(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnProfile:
        """Build from the dict :meth:`to_dict` returns."""
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        values["quantiles"] = tuple((float(q), v) for q, v in data.get("quantiles") or ())
        values["top_values"] = tuple((v, int(n)) for v, n in data.get("top_values") or ())
        histogram = data.get("histogram")
        if histogram is not None:
            values["histogram"] = Histogram(tuple(histogram["edges"]), tuple(histogram["counts"]))
        return cls(**values)


@dataclass(frozen=True)
class DatasetProfile:
    """Profiles of every column of a table, in column order."""

    num_rows: int
    columns: tuple[ColumnProfile, ...]
    sample_size: int = SAMPLE_SIZE

    @property
    def num_columns(self) -> int:
        """Number of columns."""
        return len(self.columns)

    @property
    def missing_cells(self) -> int:
        """Missing values over all columns."""
        return sum(c.missing for c in self.columns)

    @property
    def approximate(self) -> bool:
        """Whether any column holds an estimate."""
        return any(c.approximate for c in self.columns)

    def column(self, name: str) -> ColumnProfile:
        """Return the profile of column ``name``.

        Raises
        ------
        NotFound
            When the table had no such column.
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise NotFound(f"no column {name!r} in the profile", field="column")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (NaN and infinities become ``None``)."""
        return {
            "format_version": FORMAT_VERSION,
            "num_rows": self.num_rows,
            "num_columns": self.num_columns,
            "missing_cells": self.missing_cells,
            "sample_size": self.sample_size,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProfile:
        """Build from the dict :meth:`to_dict` returns."""
        columns = tuple(ColumnProfile.from_dict(c) for c in data["columns"])
        return cls(int(data["num_rows"]), columns, int(data.get("sample_size", SAMPLE_SIZE)))


def profile_table(
    data: pa.Table | pd.DataFrame | Iterable[pa.RecordBatch],
    *,
    top_k: int = 10,
    bins: int = 20,
    quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
    sample_size: int = SAMPLE_SIZE,
) -> DatasetProfile:
    """Profile every column of a table in one pass over its record batches.

    Parameters
    ----------
    data : pyarrow.Table, pandas.DataFrame or iterable of pyarrow.RecordBatch
        The data. An iterable (for example ``ParquetFile.iter_batches()``) is consumed once;
        all its batches must share one schema. The index of a DataFrame is ignored.
    top_k : int
        How many most frequent values to keep per column.
    bins : int
        Histogram bins of int, float and datetime columns.
    quantiles : sequence of float
        Quantile levels, each in [0, 1].
    sample_size : int
        Values sampled per column for the quantiles (see the module documentation).

    Returns
    -------
    DatasetProfile

    Raises
    ------
    InvalidInput
        For a table without rows or columns, duplicate column names, nested columns
        (list, struct, map, union; the error names the column), batches whose schema
        differs from the first, or invalid options.
    """
    levels = _check_options(top_k, bins, quantiles, sample_size)
    schema, batches = _open(data)
    states = [_ColumnState(field, i, sample_size) for i, field in enumerate(schema)]
    rows = 0
    with np.errstate(all="ignore"):
        for batch in batches:
            if not isinstance(batch, pa.RecordBatch) or not batch.schema.equals(schema):
                got = _describe(batch.schema) if isinstance(batch, pa.RecordBatch) else batch
                expected = f"every item must be a record batch with columns {_describe(schema)}"
                raise InvalidInput(f"{expected}, got {got!r:.200}", field="data")
            rows += batch.num_rows
            for state, column in zip(states, batch.columns, strict=True):
                state.update(column)
        if rows == 0:
            raise InvalidInput("the table has no rows to profile", field="data")
        columns = tuple(s.result(top_k, bins, levels) for s in states)
    return DatasetProfile(num_rows=rows, columns=columns, sample_size=sample_size)


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def _check_options(
    top_k: int, bins: int, quantiles: Sequence[float], sample_size: int
) -> tuple[float, ...]:
    limits = {"top_k": (top_k, 0), "bins": (bins, 1), "sample_size": (sample_size, 1)}
    for name, (value, least) in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInput(f"{name} must be an int >= {least}", field=name)
    try:
        levels = tuple(float(q) for q in quantiles)
    except (TypeError, ValueError):
        levels = (-1.0,)
    if any(not 0.0 <= q <= 1.0 for q in levels):
        raise InvalidInput("quantiles must be numbers in [0, 1]", field="quantiles")
    return levels


def _open(data: Any) -> tuple[pa.Schema, Iterator[Any]]:
    """Return the schema and the (unchecked) items of any accepted input."""
    if isinstance(data, pd.DataFrame):
        data = _from_pandas(data)
    if isinstance(data, pa.Table | pa.RecordBatch):
        _check_schema(data.schema)
        data = data.to_batches() if isinstance(data, pa.Table) else [data]
    if not isinstance(data, Iterable) or isinstance(data, str | bytes):
        raise InvalidInput(
            "data must be an Arrow table, a DataFrame or an iterable of record batches, "
            f"got {type(data).__name__}",
            field="data",
        )
    items = iter(data)
    first = next(items, None)
    if not isinstance(first, pa.RecordBatch):
        found = "no rows" if first is None else type(first).__name__
        raise InvalidInput(f"expected record batches to profile, got {found}", field="data")
    _check_schema(first.schema)
    return first.schema, itertools.chain([first], items)


def _check_schema(schema: pa.Schema) -> None:
    if len(schema) == 0:
        raise InvalidInput("the table has no columns to profile", field="data")
    duplicates = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"duplicate column names: {', '.join(duplicates)}", field="data")
    for field in schema:
        _kind(field)


def _from_pandas(frame: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, ValueError) as exc:  # mixed or odd objects, duplicate names
        culprit = next((str(n) for n in frame.columns if f"column {n} with" in str(exc)), None)
        where = f"column {culprit!r}" if culprit else "the DataFrame"
        message = f"{where} cannot be converted to Arrow: {exc}"
        raise InvalidInput(message, field=culprit or "data") from exc


def _is(kind: pa.DataType, *tests: str) -> bool:
    """Whether any ``pa.types.<test>`` holds (tests missing from older pyarrow never do)."""
    return any(getattr(pa.types, test, lambda _: False)(kind) for test in tests)


def _kind(field: pa.Field) -> _Kind:
    """The internal kind of a column; raises InvalidInput for unsupported types."""
    kind = _storage(field.type)
    if _is(kind, "is_dictionary") and not _is(kind.value_type, "is_nested", "is_dictionary"):
        return "category"
    for name, tests in (
        ("bool", ("is_boolean",)),
        ("int", ("is_integer", "is_time", "is_duration")),
        ("float", ("is_floating", "is_decimal")),
        ("datetime", ("is_timestamp", "is_date")),
        ("string", ("is_string", "is_large_string", "is_string_view", "is_null")),
        ("binary", ("is_binary", "is_large_binary", "is_fixed_size_binary", "is_binary_view")),
    ):
        if _is(kind, *tests):
            return cast(_Kind, name)
    raise InvalidInput(
        f"column {field.name!r} has type {kind}, which cannot be profiled; "
        "flatten nested columns into scalar ones",
        field=field.name,
    )


def _storage(kind: pa.DataType) -> pa.DataType:
    return kind.storage_type if isinstance(kind, pa.ExtensionType) else kind


class _ColumnState:
    """Everything kept about one column during the pass."""

    def __init__(self, field: pa.Field, index: int, sample_size: int) -> None:
        self.name: str = field.name
        self.arrow_type = field.type
        self.storage_type = _storage(field.type)
        self.kind = _kind(field)
        self.count = self.missing = self.infinite = self.true_count = 0
        self.low: int | float | None = None
        self.high: int | float | None = None
        self.moments = _Moments()
        self.sample = _Reservoir(sample_size, index)
        self.fine = _FineHistogram()
        numeric = self.kind in ("int", "float", "datetime")
        self.values = _ValueCounts(_merge_numbers if numeric else _merge_labels)

    def update(self, column: pa.Array) -> None:
        """Fold one batch of the column in."""
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        self.count += len(column)
        self.missing += column.null_count
        if self.kind in ("int", "float", "datetime"):
            self._update_numeric(column)
        elif self.kind == "bool":
            self.true_count += int(pc.sum(column).as_py() or 0)
        elif self.kind == "category":
            self._update_dictionary(column)
        elif not pa.types.is_null(column.type):
            if _is(column.type, "is_string_view", "is_binary_view"):
                column = column.cast(pa.string() if self.kind == "string" else pa.binary())
            for start in range(0, len(column), _SLICE_ROWS):
                counted = pc.value_counts(column.slice(start, _SLICE_ROWS))
                self._count(counted.field("values"), counted.field("counts"))

    def _count(self, values: pa.Array, counts: pa.Array) -> None:
        if values.null_count:  # nulls were counted as missing already
            valid = pc.is_valid(values)
            values, counts = values.filter(valid), counts.filter(valid)
        self.values.add(values, counts.to_numpy().astype(np.int64))

    def _update_dictionary(self, column: pa.Array) -> None:
        indices = pc.drop_null(column.indices).to_numpy(zero_copy_only=False)
        counts = np.bincount(indices.astype(np.intp), minlength=len(column.dictionary))
        used = np.flatnonzero(counts)
        values = column.dictionary.take(pa.array(used))
        if values.null_count:  # nulls inside the dictionary are missing values too
            valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
            self.missing += int(counts[used][~valid].sum())
        self._count(values, pa.array(counts[used]))

    def _update_numeric(self, column: pa.Array) -> None:
        if column.null_count:
            column = pc.drop_null(column)
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            column = column.view(pa.int64() if column.type.bit_width == 64 else pa.int32())
        values: npt.NDArray[Any] = column.to_numpy(zero_copy_only=False)
        if pa.types.is_date32(self.storage_type):
            values = values.astype(np.int64) * 86_400
        finite = values
        if self.kind == "float":
            values = values.astype(np.float64, copy=False)
            nan = np.isnan(values)
            if nan.any():
                self.missing += int(np.count_nonzero(nan))
                values = values[~nan]
            keep = np.isfinite(values)
            finite = values if keep.all() else values[keep]
            self.infinite += values.size - finite.size
        self.values.add(values)
        if finite.size == 0:
            return
        low, high = finite.min().item(), finite.max().item()
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)
        as_float = finite.astype(np.float64, copy=False)
        self.moments.add(as_float)
        self.sample.add(as_float)
        self.fine.add(as_float, float(self.low), float(self.high))

    def result(self, top_k: int, bins: int, levels: tuple[float, ...]) -> ColumnProfile:
        """Turn the summaries into a :class:`ColumnProfile`."""
        present = self.count - self.missing
        logical: LogicalType = "string" if self.kind == "binary" else self.kind
        mean: Scalar = None
        if self.kind == "bool":
            pairs = [(True, self.true_count), (False, present - self.true_count)]
            top: TopValues = tuple(sorted((p for p in pairs if p[1]), key=lambda p: -p[1]))
            distinct, approximate, top = len(top), False, top[:top_k]
            mean = self.true_count / present if present else None
        else:
            distinct, _, approximate = self.values.result(0)
            few = _low_cardinality(distinct, present)
            labels = self.kind in ("string", "binary", "category")
            top = self.values.result(top_k)[1] if labels or (self.kind == "int" and few) else ()
            top = tuple((_bytes_text(v), n) for v, n in top) if self.kind == "binary" else top
            logical = "category" if self.kind == "string" and few else logical
        head = (self.name, logical, str(self.arrow_type), self.count, self.missing, distinct)
        profile = ColumnProfile(
            *head, mean=mean, top_values=top, infinite=self.infinite, approximate=approximate
        )
        return profile if self.low is None else self._with_numbers(profile, bins, levels)

    def _with_numbers(
        self, profile: ColumnProfile, bins: int, levels: tuple[float, ...]
    ) -> ColumnProfile:
        assert self.low is not None and self.high is not None
        low, high = float(self.low), float(self.high)
        sample = self.sample.values
        values = np.quantile(sample, levels) if levels else np.empty(0)
        if self.kind == "int" and self.high - self.low < bins:
            edges = low - 0.5 + np.arange(int(self.high - self.low) + 2, dtype=np.float64)
        elif low == high:
            edges = np.array([low, high]) + (0.0 if self.kind == "datetime" else [-0.5, 0.5])
        elif math.isfinite(high - low):
            edges = np.linspace(low, high, bins + 1)
        else:  # the range overflows float64: interpolate without subtracting
            steps = np.arange(bins + 1) / bins
            edges = low * (1.0 - steps) + high * steps
        if self.sample.holds_all:
            counts = np.histogram(sample, bins=edges)[0]
        else:
            counts = self.fine.rebin(edges, self.moments.count)
        std, show = self.moments.std(), cast(Callable[[Any], Scalar], _json_value)
        if self.kind == "datetime":
            unit, utc = _unit(self.storage_type), getattr(self.storage_type, "tz", None) is not None
            std = None if std is None else std * _SECONDS[unit]
            show = functools.partial(_datetime_text, unit=unit, utc=utc)
        return replace(
            profile,
            mean=show(self.moments.mean),
            std=std,
            min=show(self.low),
            max=show(self.high),
            quantiles=tuple((q, show(float(v))) for q, v in zip(levels, values, strict=True)),
            histogram=Histogram(
                tuple(cast(float | str, show(float(e))) for e in edges),
                tuple(int(c) for c in counts),
            ),
            approximate=profile.approximate or not self.sample.holds_all,
        )


def _unit(kind: pa.DataType) -> _Unit:
    """Unit of the epoch counts a datetime column is profiled in (date32 days become s)."""
    return "ms" if pa.types.is_date64(kind) else cast(_Unit, getattr(kind, "unit", "s"))


def _low_cardinality(distinct: int, present: int) -> bool:
    return 0 < distinct <= LOW_CARDINALITY_MAX and distinct * 2 <= present


def _jsonable(value: Any) -> Any:
    """Lists for tuples and ``None`` for NaN and infinities, recursively."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return _json_value(value)


def _json_value(value: Any) -> Scalar:
    return None if isinstance(value, float) and not math.isfinite(value) else cast(Scalar, value)


def _bytes_text(value: Scalar | bytes) -> Scalar:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _datetime_text(value: float | None, unit: _Unit, utc: bool) -> str | None:
    """ISO 8601 text of a count of ``unit`` since the epoch, without trailing zeros."""
    if value is None or not math.isfinite(value):
        return None
    if isinstance(value, float) and unit == "ns":  # float64 holds epoch nanoseconds to ~0.25 us
        value = round(value / 1_000) * 1_000
    count = min(max(round(value), -(2**63) + 1), 2**63 - 1)  # float rounding may leave int64
    text = str(np.datetime_as_string(np.datetime64(count, unit)))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z" if utc else text


class _Moments:
    """Count, mean and sum of squared deviations, merged with Chan's update."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = self.m2 = 0.0

    def add(self, values: FloatArray) -> None:
        size, mean = values.size, float(values.mean())
        deviations = values - mean
        m2 = float(np.square(deviations, out=deviations).sum())
        total, delta = self.count + size, mean - self.mean
        self.mean += delta * size / total
        self.m2 += m2 + delta * delta * self.count * size / total
        self.count = total

    def std(self) -> float | None:
        if self.count < 2:
            return None
        value = math.sqrt(max(self.m2, 0.0) / (self.count - 1))
        return value if math.isfinite(value) else None


class _Reservoir:
    """A uniform sample of fixed size: the values with the smallest random keys."""

    def __init__(self, size: int, stream: int) -> None:
        self.size, self.seen, self.holds_all = size, 0, True
        self.rng = np.random.default_rng([_SEED, stream])
        self.values: FloatArray = np.empty(0)
        self.keys: FloatArray = np.empty(0)

    def add(self, values: FloatArray) -> None:
        self.seen += values.size
        self.holds_all = self.seen <= self.size
        keys = self.rng.random(values.size)
        if self.keys.size >= self.size:
            keep = keys < self.keys.max()
            values, keys = values[keep], keys[keep]
        if keys.size > 2 * self.size:  # a cheap pre-filter, used only when it loses nothing
            keep = keys < 1.25 * self.size / keys.size
            if np.count_nonzero(keep) >= self.size:
                values, keys = values[keep], keys[keep]
        values = np.concatenate([self.values, values])
        keys = np.concatenate([self.keys, keys])
        if keys.size > self.size:
            chosen = np.argpartition(keys, self.size - 1)[: self.size]
            values, keys = values[chosen], keys[chosen]
        self.values, self.keys = values, keys


class _FineHistogram:
    """Counts in bins of width ``2**(exponent + 1)`` that coarsen as the range grows.

    Positions are ``(x - origin) / 2`` (halved so that no subtraction overflows) and a bin
    index is ``floor(position / 2**exponent)``. Doubling the width maps index ``i`` to
    ``i >> 1`` exactly, so bins merge without loss as the range of the data grows.
    """

    def __init__(self) -> None:
        self.origin: float | None = None
        self.constant = self.exponent = self.first = 0
        self.counts = np.zeros(0, dtype=np.int64)

    def _position(self, values: FloatArray) -> FloatArray:
        assert self.origin is not None
        position = values * 0.5
        position -= 0.5 * self.origin
        return position

    def _bin(self, values: FloatArray, exponent: int) -> FloatArray:
        scaled = self._position(values)
        scaled *= math.ldexp(1.0, -exponent)  # a power of two in [2**-1000, 2**1000]: exact
        return np.floor(scaled, out=scaled)

    def add(self, values: FloatArray, low: float, high: float) -> None:
        """Count finite ``values``; ``low`` and ``high`` bound every value seen so far."""
        if self.origin is None:
            self.origin = float(values[0])
        if self.counts.size == 0 and low == high:  # no range yet to size the bins from
            self.constant += values.size
            return
        self._cover(low, high)
        index = self._bin(values, self.exponent).astype(np.int64)
        index -= self.first
        self.counts += np.bincount(index, minlength=self.counts.size)[: self.counts.size]

    def _cover(self, low: float, high: float) -> None:
        """Coarsen and extend the bins so that they cover ``[low, high]``."""
        bounds = np.array([low, high])
        spread = float(np.diff(self._position(bounds))[0])
        needed = math.ceil(math.log2(spread / (_FINE_BINS - 2))) if spread > 0 else -1000
        exponent = min(max(needed, -1000, self.exponent if self.counts.size else -1000), 1000)
        edges = self._bin(bounds, exponent)
        while edges[1] - edges[0] >= _FINE_BINS:
            exponent += 1
            edges = self._bin(bounds, exponent)
        first, size = int(edges[0]), int(edges[1] - edges[0]) + 1
        if self.counts.size == 0:
            counts = np.zeros(size, dtype=np.int64)
            counts[int(self._bin(np.array([self.origin]), exponent)[0]) - first] = self.constant
        elif (exponent, first, size) == (self.exponent, self.first, self.counts.size):
            return
        else:
            old = (self.first + np.arange(self.counts.size)) >> (exponent - self.exponent)
            counts = np.bincount(old - first, self.counts, size).astype(np.int64)
        self.exponent, self.first, self.counts = exponent, first, counts

    def rebin(self, edges: FloatArray, total: int) -> npt.NDArray[np.int64]:
        """Counts between ``edges``, interpolated linearly inside the fine bins."""
        if self.counts.size == 0:  # every value equal: the edges hold one bin
            return np.array([total], dtype=np.int64)
        fine_edges = np.ldexp(
            np.arange(self.first, self.first + self.counts.size + 1, dtype=np.float64),
            self.exponent,
        )
        cumulative = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.float64)
        at_edges = np.round(np.interp(self._position(edges), fine_edges, cumulative))
        at_edges[0], at_edges[-1] = 0, total
        return np.diff(np.maximum.accumulate(at_edges)).astype(np.int64)


class _DistinctSketch:
    """K-minimum-values estimate of a distinct count (relative error about 1/sqrt(K))."""

    def __init__(self) -> None:
        self.hashes: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)

    def add(self, values: npt.NDArray[Any]) -> None:
        if values.dtype.kind == "f":
            values = values + 0.0  # -0.0 and 0.0 are one value
        hashes = pd.util.hash_array(values).astype(np.uint64)
        if self.hashes.size >= _SKETCH_SIZE:
            hashes = hashes[hashes < self.hashes[-1]]
        self.hashes = _unique(np.concatenate([self.hashes, hashes]))[0][:_SKETCH_SIZE]

    def estimate(self) -> int:
        if self.hashes.size < _SKETCH_SIZE:
            return int(self.hashes.size)
        return round((_SKETCH_SIZE - 1) / (float(self.hashes[-1]) / 2.0**64))


def _unique(
    values: npt.NDArray[Any], *, presorted: bool = False
) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """Sorted distinct values and their starts (sorting beats ``np.unique``'s hashing)."""
    ordered = values if presorted else np.sort(values)
    if ordered.size == 0:
        return ordered, np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    return ordered[starts], starts


Counts = npt.NDArray[np.int64]
Merge = Callable[[list[Any], list[Counts | None]], tuple[Any, Counts]]


def _merge_numbers(values: list[Any], counts: list[Counts | None]) -> tuple[Any, Counts]:
    """Merge numpy value lists (``None`` counts mean one each) by sorting."""
    merged = np.concatenate(values)
    if all(c is None for c in counts):
        distinct, starts = _unique(merged)
        return distinct, np.diff(np.append(starts, merged.size)).astype(np.int64)
    weights = [
        np.ones(len(v), np.int64) if c is None else c for v, c in zip(values, counts, strict=True)
    ]
    order = np.argsort(merged, kind="stable")
    distinct, starts = _unique(merged[order], presorted=True)
    return distinct, np.add.reduceat(np.concatenate(weights)[order], starts)


def _merge_labels(values: list[Any], counts: list[Counts | None]) -> tuple[Any, Counts]:
    """Merge Arrow value counts by hashing (Arrow's group-by)."""
    weights = np.concatenate([c for c in counts if c is not None])
    table = pa.table({"value": pa.chunked_array(values), "count": weights})
    summed = table.group_by("value").aggregate([("count", "sum")])
    return summed["value"].combine_chunks(), summed["count_sum"].to_numpy()


class _ValueCounts:
    """Distinct values (numpy or Arrow arrays) and their counts, or a sketch beyond the limit.

    Pending values are merged once they outnumber those held, so the work stays linear.
    """

    def __init__(self, merge: Merge) -> None:
        self.merge = merge
        self.values: Any = None
        self.counts: Counts = np.zeros(0, dtype=np.int64)
        self.pending: list[tuple[Any, Counts | None]] = []
        self.pending_rows = 0
        self.sketch: _DistinctSketch | None = None

    def add(self, values: Any, counts: Counts | None = None) -> None:
        if len(values) == 0:
            return
        if self.sketch is not None:
            self.sketch.add(_to_numpy(values))
        self.pending.append((values, counts))
        self.pending_rows += len(values)
        if self.sketch is not None or self.pending_rows >= max(_COMPACT_ROWS, len(self.counts)):
            self._compact()

    def _compact(self) -> None:
        if not self.pending:
            return
        parts = ([] if self.values is None else [(self.values, self.counts)]) + self.pending
        values, counts = parts[0]
        if len(parts) > 1 or counts is None:
            values, counts = self.merge([v for v, _ in parts], [c for _, c in parts])
        self.values, self.counts = values, counts
        self.pending, self.pending_rows = [], 0
        if self.sketch is None and len(self.counts) > DISTINCT_EXACT_LIMIT:
            self.sketch = _DistinctSketch()
            self.sketch.add(_to_numpy(self.values))
        if self.sketch is not None and len(self.counts) > HEAVY_HITTERS:
            keep = _top_indices(self.values, self.counts, HEAVY_HITTERS)
            self.values, self.counts = _take(self.values, keep), self.counts[keep]

    def result(self, top_k: int) -> tuple[int, TopValues, bool]:
        """Distinct count, the ``top_k`` most frequent values, and whether they are estimates."""
        self._compact()
        if self.values is None:
            return 0, (), False
        distinct = len(self.counts) if self.sketch is None else self.sketch.estimate()
        chosen = _top_indices(self.values, self.counts, top_k)
        values = pa.array(_take(self.values, chosen)).to_pylist()
        top = tuple(zip(values, self.counts[chosen].tolist(), strict=True))
        return distinct, top, self.sketch is not None


def _take(values: Any, indices: npt.NDArray[np.intp]) -> Any:
    return values[indices] if isinstance(values, np.ndarray) else values.take(pa.array(indices))


def _to_numpy(values: Any) -> npt.NDArray[Any]:
    return values if isinstance(values, np.ndarray) else values.to_numpy(zero_copy_only=False)


def _top_indices(values: Any, counts: Counts, k: int) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` largest counts, most frequent first, ties broken by value."""
    if k == 0 or len(counts) == 0:
        return np.zeros(0, dtype=np.intp)
    table = pa.table({"value": values, "count": counts})
    keys = [("count", "descending"), ("value", "ascending")]
    chosen: npt.NDArray[np.intp] = pc.select_k_unstable(
        table, k=min(k, len(counts)), sort_keys=keys
    ).to_numpy()
    return chosen
