"""Array preparation shared by the tests: column kinds, null removal, counts and bins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api import types as ptypes

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    Values: TypeAlias = np.ndarray[Any, Any] | pd.Series[Any] | Sequence[Any]
else:
    Values: TypeAlias = Any

Kind = Literal["numeric", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical")
FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]

#: Numeric columns with at most this many reference distinct values are binned by value.
LOW_CARDINALITY = 20
_HEAD = 2048


def _dtype_of(values: Values) -> Any:
    if isinstance(values, pd.Series | np.ndarray):
        return values.dtype
    return np.asarray(values).dtype


def infer_kind(values: Values, *, column: str = "") -> Kind:
    """Return ``"numeric"`` for int/float dtypes (not bool), ``"categorical"`` otherwise.

    Raises
    ------
    InvalidInput
        For dtypes neither kind covers (datetimes, timedeltas, complex numbers...).
    """
    dtype = _dtype_of(values)
    if isinstance(dtype, pd.CategoricalDtype) or ptypes.is_bool_dtype(dtype):
        return "categorical"
    if ptypes.is_numeric_dtype(dtype) and not ptypes.is_complex_dtype(dtype):
        return "numeric"
    if ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype):
        return "categorical"
    raise InvalidInput(
        f"{_label(column)}dtype {dtype} is neither numeric nor categorical",
        field=column or None,
    )


def check_kind(kind: str, *, column: str = "") -> Kind:
    """Return ``kind`` if it is a known column kind, else raise :class:`InvalidInput`."""
    for known in KINDS:
        if kind == known:
            return known
    raise InvalidInput(
        f"{_label(column)}unknown kind {kind!r}; expected 'numeric' or 'categorical'",
        field="kind",
    )


def numeric_values(values: Values, *, column: str = "", side: str = "values") -> FloatArray:
    """Return the finite values as float64 (NaN, None and infinities dropped)."""
    try:
        if isinstance(values, pd.Series):
            array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{_label(column)}{side} are not numeric: {exc}", field=column or side
        ) from exc
    array = array.reshape(-1)
    finite = np.isfinite(array)
    return array if bool(finite.all()) else array[finite]


def as_series(values: Values) -> pd.Series[Any]:
    """Wrap categorical values in a Series; nulls stay (value counts skip them)."""
    if isinstance(values, pd.Series):
        return values
    array = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    return pd.Series(array.reshape(-1), copy=False)


def require_values(size: int, *, column: str, side: str) -> None:
    """Raise :class:`InvalidInput` when a sample has no usable value."""
    if size == 0:
        raise InvalidInput(
            f"{_label(column)}{side} has no non-null values to compare", field=column or side
        )


def category_counts(
    reference: pd.Series[Any], current: pd.Series[Any]
) -> tuple[list[Any], IntArray, IntArray]:
    """Count each non-null category of the union of both samples.

    Returns
    -------
    keys, reference_counts, current_counts
        The categories seen in either sample and their counts, aligned.
    """
    ref_counts = _value_counts(reference)
    cur_counts = _value_counts(current)
    table = pd.concat([ref_counts, cur_counts], axis=1, keys=["ref", "cur"], sort=False)
    table = table.fillna(0)
    ref = table["ref"].to_numpy(dtype=np.int64)
    cur = table["cur"].to_numpy(dtype=np.int64)
    seen = (ref + cur) > 0
    keys = [key for key, keep in zip(table.index.tolist(), seen.tolist(), strict=True) if keep]
    return keys, ref[seen], cur[seen]


def _value_counts(series: pd.Series[Any]) -> pd.Series[Any]:
    try:
        counts = series.value_counts(sort=False, dropna=True)
    except TypeError as exc:
        raise InvalidInput(f"values are not hashable categories: {exc}") from exc
    if isinstance(counts.index, pd.CategoricalIndex):
        counts.index = pd.Index(counts.index.astype(object))
    return counts


def distinct_upto(limit: int, *samples: Values) -> int:
    """Count distinct values over ``samples``, stopping early once ``limit`` is exceeded.

    Returns ``limit + 1`` for "more than ``limit``" so that a million-row float column
    costs one look at its first rows instead of a full hash of every value.
    """
    seen: set[Any] = set()
    for sample in samples:
        head = sample[:_HEAD] if isinstance(sample, np.ndarray) else None
        if head is not None and len(pd.unique(head)) > limit:
            return limit + 1
    for sample in samples:
        uniques = pd.unique(sample if isinstance(sample, np.ndarray) else pd.Series(sample))
        seen.update(uniques.tolist())
        if len(seen) > limit:
            return limit + 1
    return len(seen)


def fill_empty(shares: FloatArray) -> FloatArray:
    """Replace zero shares by a small epsilon so that logarithms stay finite.

    The epsilon is 1e-4, or a millionth of the smallest non-zero share when that share is
    itself below 1e-4 (the rule Evidently uses), so an empty bin never outweighs a real one.
    """
    zero = shares == 0
    if not bool(zero.any()):
        return shares
    smallest = float(shares[~zero].min()) if bool((~zero).any()) else 1.0
    epsilon = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return np.where(zero, epsilon, shares)


def sturges_counts(reference: FloatArray, current: FloatArray) -> tuple[IntArray, IntArray]:
    """Histogram both samples on shared equal-width bins over their joint range (Sturges)."""
    low = min(float(reference.min()), float(current.min()))
    high = max(float(reference.max()), float(current.max()))
    bins = int(np.ceil(np.log2(reference.size + current.size) + 1))
    ref, _ = np.histogram(reference, bins=bins, range=(low, high))
    cur, _ = np.histogram(current, bins=bins, range=(low, high))
    return ref.astype(np.int64), cur.astype(np.int64)


def quantile_counts(
    reference: FloatArray, current: FloatArray, bins: int
) -> tuple[IntArray, IntArray]:
    """Count both samples in bins cut at the reference quantiles, open at both ends."""
    cuts = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(cuts)
    size = edges.size + 1
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=size)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=size)
    return ref.astype(np.int64), cur.astype(np.int64)


def _label(column: str) -> str:
    return f"column {column!r}: " if column else ""
