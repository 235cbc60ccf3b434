"""Data slices for evaluation: one slice per value of a column, or a safe ``col op literal``.

A slice spec is either a column name (one slice per distinct value, for at most
:data:`MAX_SLICE_VALUES` values) or a predicate such as ``"age>60"``, ``"region == 'EU'"`` or
``"tenure<=12"``. Predicates are parsed by a tiny grammar, never evaluated as Python: a column
(an identifier, or any name in backticks), one of ``== != < <= > >=``, and a literal (a number,
a quoted string, ``true`` or ``false``). Rows whose value is missing belong to no predicate
slice.

Examples
--------
>>> import pandas as pd
>>> from loopml.training.slices import parse_predicate, resolve_slices
>>> data = pd.DataFrame({"region": ["EU", "US", "EU"], "age": [70, 30, 45]})
>>> parse_predicate("region == 'EU'").name
"region=='EU'"
>>> [(s.name, int(s.mask.sum())) for s in resolve_slices(data, ["region", "age>60"])]
[('region=EU', 2), ('region=US', 1), ('age>60', 1)]
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.errors import InvalidInput

__all__ = [
    "MAX_SLICE_VALUES",
    "DataSlice",
    "SlicePredicate",
    "canonical_slice_name",
    "parse_predicate",
    "resolve_slices",
    "slice_metric_key",
]

#: A column spec yields one slice per value only up to this many distinct values.
MAX_SLICE_VALUES = 20
_MAX_SPEC_LENGTH = 200

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_OP_WORDS = {"==": "eq", "!=": "ne", "<=": "le", ">=": "ge", "<": "lt", ">": "gt"}
_IDENTIFIER = re.compile(r"[^\W\d]\w*(?:\.\w+)*")
_PREDICATE = re.compile(
    r"\s*(?P<column>`[^`]+`|[^\W\d]\w*(?:\.\w+)*)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<literal>.*?)\s*"
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?P<frac>\.\d*)?|\.\d+)(?P<exp>[eE][+-]?\d+)?")
_STRING = re.compile(r"'(?P<single>(?:[^'\\]|\\.)*)'|\"(?P<double>(?:[^\"\\]|\\.)*)\"")
_ESCAPE = re.compile(r"\\(.)")
_BOOLEANS = {"true": True, "false": False}
_UNSAFE_KEY = re.compile(r"[^\w\-. :]+")

Literal = bool | int | float | str
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SlicePredicate:
    """A parsed ``column op literal`` predicate.

    Attributes
    ----------
    column : str
        The column the predicate reads.
    op : str
        One of ``== != < <= > >=``.
    value : bool, int, float or str
        The literal the column is compared with.
    """

    column: str
    op: str
    value: Literal

    @property
    def name(self) -> str:
        """The canonical spelling, without spaces: ``age>60``, ``region=='EU'``."""
        column = self.column if _IDENTIFIER.fullmatch(self.column) else f"`{self.column}`"
        return f"{column}{self.op}{self.value!r}"

    def mask(self, data: pd.DataFrame) -> BoolArray:
        """Return the rows of ``data`` the predicate selects (missing values never match).

        Raises
        ------
        InvalidInput
            When the column is missing or the literal cannot be compared with its values.
        """
        if self.column not in data.columns:
            raise InvalidInput(
                f"slice {self.name!r} names column {self.column!r}, which the data lacks",
                field=self.column,
            )
        series = data[self.column]
        value = self._comparable(series)
        try:
            selected = _OPS[self.op](series, value)
        except TypeError as exc:
            raise InvalidInput(
                f"slice {self.name!r}: cannot compare column {self.column!r} with {value!r}",
                field=self.column,
            ) from exc
        return np.asarray(selected.fillna(False), dtype=bool) & series.notna().to_numpy()

    def _comparable(self, series: pd.Series[Any]) -> Any:
        value = self.value
        ordering = self.op not in ("==", "!=")
        dtype = series.dtype
        where = f"slice {self.name!r}: column {self.column!r}"
        if pd.api.types.is_bool_dtype(dtype) and not isinstance(value, bool):
            raise InvalidInput(
                f"{where} is boolean; compare it with true or false", field=self.column
            )
        if isinstance(value, bool):
            if ordering:
                raise InvalidInput(f"{where}: true/false only work with == and !=", field="slices")
            return value
        if isinstance(value, int | float):
            if not pd.api.types.is_numeric_dtype(dtype):
                raise InvalidInput(
                    f"{where} is not numeric ({dtype}); quote the value to compare text",
                    field=self.column,
                )
            return value
        if pd.api.types.is_datetime64_any_dtype(dtype):
            try:
                stamp = pd.Timestamp(value)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"{where}: {value!r} is not a date", field=self.column) from exc
            tz = getattr(dtype, "tz", None)
            if tz is not None and stamp.tzinfo is None:
                stamp = stamp.tz_localize(tz)
            return stamp
        if pd.api.types.is_numeric_dtype(dtype):
            raise InvalidInput(
                f"{where} is numeric; write the number without quotes", field=self.column
            )
        if ordering:
            raise InvalidInput(
                f"{where}: text can only be compared with == and !=", field=self.column
            )
        return value


class DataSlice:
    """A named subset of rows: ``name`` and a boolean ``mask`` over the evaluation data."""

    __slots__ = ("mask", "name")

    def __init__(self, name: str, mask: BoolArray) -> None:
        self.name = name
        self.mask = mask

    def __repr__(self) -> str:
        return f"DataSlice({self.name!r}, n={int(self.mask.sum())})"


def _parse_literal(text: str, spec: str) -> Literal:
    number = _NUMBER.fullmatch(text)
    if number is not None:
        if number.group("frac") is None and number.group("exp") is None:
            return int(text)
        return float(text)
    string = _STRING.fullmatch(text)
    if string is not None:
        body = string.group("single")
        if body is None:
            body = string.group("double")
        return _ESCAPE.sub(r"\1", body)
    if text.lower() in _BOOLEANS:
        return _BOOLEANS[text.lower()]
    raise InvalidInput(
        f"slice {spec!r}: the value {text!r} must be a number, a quoted string ('EU') "
        "or true/false",
        field="slices",
    )


def parse_predicate(text: str) -> SlicePredicate:
    """Parse ``"col op literal"`` without evaluating anything.

    Parameters
    ----------
    text : str
        For example ``"age>60"``, ``"region == 'EU'"``, ```"`signup date` >= '2024-01-01'"```.

    Raises
    ------
    InvalidInput
        When the text is not exactly one column, one operator and one literal.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"a slice must be a string, got {type(text).__name__}", field="slices")
    if len(text) > _MAX_SPEC_LENGTH:
        raise InvalidInput(
            f"a slice spec is at most {_MAX_SPEC_LENGTH} characters long", field="slices"
        )
    match = _PREDICATE.fullmatch(text)
    if match is None:
        raise InvalidInput(
            f'slice {text!r} is neither a column nor a predicate like "age>60" or '
            "\"region == 'EU'\" (column, one of == != < <= > >=, then a literal)",
            field="slices",
        )
    column = match.group("column")
    if column.startswith("`"):
        column = column[1:-1]
    return SlicePredicate(column, match.group("op"), _parse_literal(match.group("literal"), text))


def canonical_slice_name(text: str) -> str:
    """Return the name a predicate slice is reported under (``"age > 60"`` -> ``"age>60"``).

    Text that is not a predicate (a ``column=value`` slice name) is returned unchanged.
    """
    try:
        return parse_predicate(text).name
    except InvalidInput:
        return text


def slice_metric_key(name: str) -> str:
    """Turn a slice name into a metric-key segment: ``age>60`` -> ``age_gt_60``.

    Operators become words and any character a metric key cannot hold becomes ``_``.
    """
    key = re.sub(r"['\"`]", "", name)
    for op in ("==", "!=", "<=", ">=", "<", ">"):
        key = key.replace(op, f"_{_OP_WORDS[op]}_")
    key = _UNSAFE_KEY.sub("_", key.replace("=", "_")).replace("..", "_")
    return re.sub(r"_{2,}", "_", key).strip(" _")[:120] or "_"


def _sorted_values(values: Sequence[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _column_slices(data: pd.DataFrame, column: str, max_values: int) -> list[DataSlice]:
    series = data[column]
    values = _sorted_values(list(series.dropna().unique()))
    if len(values) > max_values:
        raise InvalidInput(
            f"column {column!r} has {len(values)} distinct values (more than {max_values}) "
            f'for one slice each; slice it with a predicate such as "{column} > ..." instead',
            field="slices",
        )
    found = [
        DataSlice(f"{column}={value}", np.asarray(series == value, dtype=bool)) for value in values
    ]
    missing = series.isna().to_numpy()
    if missing.any():
        found.append(DataSlice(f"{column}=<missing>", missing))
    return found


def resolve_slices(
    data: pd.DataFrame, specs: Sequence[str] | None, *, max_values: int = MAX_SLICE_VALUES
) -> list[DataSlice]:
    """Turn slice specs into named row masks over ``data``.

    Parameters
    ----------
    data : pandas.DataFrame
        The evaluation data.
    specs : list of str, optional
        Column names and predicates, in the order the slices are reported.
    max_values : int, default 20
        The most distinct values a column spec may have.

    Raises
    ------
    InvalidInput
        On an unknown column, a column with too many values, a malformed predicate or two
        specs that yield the same slice.
    """
    if specs is None:
        return []
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        raise InvalidInput("slices must be a list of column names and predicates", field="slices")
    slices: list[DataSlice] = []
    for spec in specs:
        if isinstance(spec, str) and spec in data.columns:
            slices.extend(_column_slices(data, spec, max_values))
            continue
        if isinstance(spec, str) and _IDENTIFIER.fullmatch(spec.strip()):
            raise InvalidInput(f"slice {spec!r} names a column the data lacks", field=spec.strip())
        predicate = parse_predicate(spec)
        slices.append(DataSlice(predicate.name, predicate.mask(data)))
    names = [s.name for s in slices]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"slices listed more than once: {duplicates}", field="slices")
    return slices
