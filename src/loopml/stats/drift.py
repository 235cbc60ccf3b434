"""Column and dataset drift: pick a test per column, run it, summarise the dataset.

The test for each column is chosen the way Evidently's data drift preset does (see
:func:`choose_method`), so the verdicts agree with its reports, while the work stays in
vectorised numpy: a 1,000,000-row, 20-column comparison takes seconds.

Examples
--------
>>> import numpy as np
>>> import pandas as pd
>>> from loopml.stats import dataset_drift
>>> rng = np.random.default_rng(0)
>>> reference = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(["a", "b"], 5000)})
>>> current = pd.DataFrame({"x": rng.normal(1.0, size=5000), "c": rng.choice(["a", "b"], 5000)})
>>> report = dataset_drift(reference, current)
>>> report.columns["x"].method, report.columns["x"].drifted, report.columns["c"].drifted
('wasserstein', True, False)
>>> report.share_drifted, report.dataset_drifted
(0.5, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from loopml.errors import InvalidInput
from loopml.stats._arrays import (
    FloatArray,
    IntArray,
    Kind,
    Values,
    as_series,
    category_counts,
    check_kind,
    distinct_upto,
    infer_kind,
    numeric_values,
    require_values,
)
from loopml.stats.tests import METHODS, TestResult, compare_counts

__all__ = [
    "ColumnDrift",
    "DatasetDrift",
    "choose_method",
    "column_drift",
    "dataset_drift",
]

#: Reference samples up to this size get a statistical test, larger ones a distance.
SMALL_SAMPLE = 1000
#: Numeric columns with at most this many distinct values are tested as categorical.
FEW_VALUES = 5
_NUMERIC_ONLY = frozenset({"ks", "wasserstein"})


@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict for one column.

    Attributes
    ----------
    column : str
        Column name ("" for anonymous samples).
    kind : {"numeric", "categorical"}
        How the column was treated.
    method : str
        The test or distance used (see :data:`loopml.stats.METHODS`).
    statistic : float
        The test statistic or distance.
    p_value : float or None
        The p-value, for statistical tests.
    threshold : float
        The threshold the score was compared with.
    drifted : bool
        Whether the column drifted.
    reference_size, current_size : int
        Non-null values compared on each side.
    """

    column: str
    kind: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    reference_size: int
    current_size: int

    @property
    def score(self) -> float:
        """The number compared with the threshold: the p-value if any, else the statistic."""
        return self.statistic if self.p_value is None else self.p_value

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnDrift:
        """Build from the dict :meth:`to_dict` returns."""
        try:
            p_value = data["p_value"]
            return cls(
                column=str(data["column"]),
                kind=str(data["kind"]),
                method=str(data["method"]),
                statistic=float(data["statistic"]),
                p_value=None if p_value is None else float(p_value),
                threshold=float(data["threshold"]),
                drifted=bool(data["drifted"]),
                reference_size=int(data["reference_size"]),
                current_size=int(data["current_size"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a column drift result: {exc!r}", field="drift") from exc


@dataclass(frozen=True)
class DatasetDrift:
    """Per-column drift verdicts and the dataset verdict.

    Attributes
    ----------
    columns : dict[str, ColumnDrift]
        The verdict of each tested column, in column order.
    drift_share : float
        The dataset drifts when at least this share of tested columns drifts.
    skipped : dict[str, str]
        Columns that could not be tested and why (no non-null values, unsupported dtype).
    """

    columns: dict[str, ColumnDrift]
    drift_share: float = 0.5
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def number_of_columns(self) -> int:
        """How many columns were tested."""
        return len(self.columns)

    @property
    def drifted_columns(self) -> list[str]:
        """The names of the drifted columns."""
        return [name for name, result in self.columns.items() if result.drifted]

    @property
    def number_of_drifted_columns(self) -> int:
        """How many tested columns drifted."""
        return len(self.drifted_columns)

    @property
    def share_drifted(self) -> float:
        """The share of tested columns that drifted (0 when none was tested)."""
        total = self.number_of_columns
        return self.number_of_drifted_columns / total if total else 0.0

    @property
    def dataset_drifted(self) -> bool:
        """Whether ``share_drifted >= drift_share`` (never, when no column was tested)."""
        return self.number_of_columns > 0 and self.share_drifted >= self.drift_share

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict, including the derived counts for readers of the JSON."""
        return {
            "drift_share": self.drift_share,
            "share_drifted": self.share_drifted,
            "dataset_drifted": self.dataset_drifted,
            "number_of_columns": self.number_of_columns,
            "number_of_drifted_columns": self.number_of_drifted_columns,
            "columns": [result.to_dict() for result in self.columns.values()],
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetDrift:
        """Build from the dict :meth:`to_dict` returns (derived fields are recomputed)."""
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise InvalidInput("not a dataset drift result: 'columns' list missing", field="drift")
        results = [ColumnDrift.from_dict(item) for item in data["columns"]]
        return cls(
            columns={result.column: result for result in results},
            drift_share=float(data.get("drift_share", 0.5)),
            skipped={str(k): str(v) for k, v in dict(data.get("skipped") or {}).items()},
        )


def choose_method(reference: Values, current: Values, kind: str | None = None) -> str:
    """Pick the drift test for a column, with Evidently's default rule.

    With ``n`` the number of non-null reference values and ``k`` the number of distinct
    non-null values over both samples:

    - numeric, ``k > 5``: ``ks`` when ``n <= 1000``, else ``wasserstein``;
    - categorical, and numeric with ``k <= 5`` (tested as categorical):
      when ``n <= 1000``, ``chisquare``, or ``z`` when ``k <= 2`` (a binary column);
      when ``n > 1000``, ``jensenshannon``.

    Parameters
    ----------
    reference, current : array-like
        The two samples; nulls are ignored.
    kind : {"numeric", "categorical"}, optional
        Inferred from the reference dtype when omitted: int and float dtypes are numeric;
        bool, object, string and category dtypes are categorical.

    Returns
    -------
    str
        A key of :data:`loopml.stats.METHODS`.
    """
    resolved = infer_kind(reference) if kind is None else check_kind(kind)
    if resolved == "categorical":
        keys, ref_counts, _ = _category_counts(reference, current, "")
        return _select_categorical(int(ref_counts.sum()), len(keys))
    ref, cur = _numeric_pair(reference, current, "")
    return _select_numeric(ref, cur)


def _numeric_pair(reference: Values, current: Values, column: str) -> tuple[FloatArray, FloatArray]:
    ref = numeric_values(reference, column=column, side="reference")
    cur = numeric_values(current, column=column, side="current")
    require_values(ref.size, column=column, side="reference")
    require_values(cur.size, column=column, side="current")
    return ref, cur


def _category_counts(
    reference: Values, current: Values, column: str
) -> tuple[list[Any], IntArray, IntArray]:
    keys, ref_counts, cur_counts = category_counts(as_series(reference), as_series(current))
    require_values(int(ref_counts.sum()), column=column, side="reference")
    require_values(int(cur_counts.sum()), column=column, side="current")
    return keys, ref_counts, cur_counts


def _select_numeric(ref: FloatArray, cur: FloatArray) -> str:
    small = ref.size <= SMALL_SAMPLE
    distinct = distinct_upto(FEW_VALUES, ref, cur)
    if distinct > FEW_VALUES:
        return "ks" if small else "wasserstein"
    if not small:
        return "jensenshannon"
    return "chisquare" if distinct > 2 else "z"


def _select_categorical(reference_size: int, distinct: int) -> str:
    if reference_size > SMALL_SAMPLE:
        return "jensenshannon"
    return "chisquare" if distinct > 2 else "z"


def _check_method(method: str, kind: Kind, column: str) -> str:
    if method not in METHODS:
        raise InvalidInput(
            f"unknown drift method {method!r}; expected one of {', '.join(sorted(METHODS))}",
            field="method",
        )
    if method in _NUMERIC_ONLY and kind != "numeric":
        where = f" for column {column!r}" if column else ""
        raise InvalidInput(
            f"{method} compares numeric samples; it cannot be used{where}, which is {kind}",
            field="method",
        )
    return method


def column_drift(
    reference: Values,
    current: Values,
    *,
    column: str = "",
    kind: str | None = None,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Compare one column's reference and current values.

    Parameters
    ----------
    reference, current : array-like
        The two samples (numpy arrays, Series or sequences); nulls are dropped.
    column : str
        The column name, used in the result and in error messages.
    kind : {"numeric", "categorical"}, optional
        Inferred from the reference dtype when omitted (see :func:`choose_method`).
    method : str, optional
        A key of :data:`loopml.stats.METHODS`; chosen by :func:`choose_method` if omitted.
    threshold : float, optional
        The method's default threshold when omitted.

    Raises
    ------
    InvalidInput
        A sample has no non-null value, the values do not fit the kind, or the method is
        unknown or does not apply to the kind.
    """
    resolved = infer_kind(reference, column=column) if kind is None else check_kind(kind)
    try:
        if resolved == "categorical":
            keys, ref_counts, cur_counts = _category_counts(reference, current, column)
            sizes = int(ref_counts.sum()), int(cur_counts.sum())
            chosen = _select_categorical(sizes[0], len(keys)) if method is None else method
            _check_method(chosen, resolved, column)
            result = compare_counts(chosen, keys, ref_counts, cur_counts, threshold)
        else:
            ref, cur = _numeric_pair(reference, current, column)
            sizes = ref.size, cur.size
            chosen = _select_numeric(ref, cur) if method is None else method
            _check_method(chosen, resolved, column)
            result = _numeric_result(chosen, ref, cur, threshold)
    except InvalidInput as exc:
        if column and column not in exc.message:
            raise InvalidInput(f"column {column!r}: {exc.message}", field=column) from exc
        raise
    return ColumnDrift(
        column=column,
        kind=resolved,
        method=result.method,
        statistic=result.statistic,
        p_value=result.p_value,
        threshold=result.threshold,
        drifted=result.drifted,
        reference_size=sizes[0],
        current_size=sizes[1],
    )


def _numeric_result(
    method: str, ref: FloatArray, cur: FloatArray, threshold: float | None
) -> TestResult:
    if method in ("chisquare", "z"):
        keys, ref_counts, cur_counts = category_counts(pd.Series(ref), pd.Series(cur))
        return compare_counts(method, keys, ref_counts, cur_counts, threshold)
    if method in ("psi", "jensenshannon"):
        return METHODS[method](ref, cur, kind="numeric", threshold=threshold)
    return METHODS[method](ref, cur, threshold=threshold)


def dataset_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str] | None = None,
    *,
    drift_share: float = 0.5,
    methods: dict[str, str] | None = None,
    thresholds: dict[str, float] | None = None,
) -> DatasetDrift:
    """Test every column for drift and decide whether the dataset drifted.

    Parameters
    ----------
    reference, current : pandas.DataFrame
        The reference window and the window to check.
    columns : list of str, optional
        Columns to test; by default every reference column also present in ``current``.
    drift_share : float
        The dataset drifts when at least this share of the tested columns drifts
        (Evidently's default, 0.5).
    methods : dict, optional
        A method per column name, overriding :func:`choose_method`.
    thresholds : dict, optional
        A threshold per column name, overriding the method's default.

    Returns
    -------
    DatasetDrift
        Columns that cannot be tested (an unsupported dtype, no non-null value on one
        side, values that do not fit the reference kind) are listed in ``skipped``.

    Raises
    ------
    InvalidInput
        Inputs are not DataFrames, a named column is missing, ``drift_share`` is outside
        [0, 1], or a method is unknown or does not apply to its column.
    """
    for name, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"{name} must be a pandas DataFrame", field=name)
    if not 0.0 <= drift_share <= 1.0:
        raise InvalidInput(
            f"drift_share must be within [0, 1], not {drift_share}", field="drift_share"
        )
    selected = _columns(reference, current, columns)
    methods, thresholds = dict(methods or {}), dict(thresholds or {})
    for option, values in (("methods", methods), ("thresholds", thresholds)):
        unknown = sorted(set(values) - {str(label) for label in selected})
        if unknown:
            raise InvalidInput(
                f"{option} name columns that are not tested: {unknown}", field=option
            )
    results: dict[str, ColumnDrift] = {}
    skipped: dict[str, str] = {}
    for label in selected:
        name = str(label)
        ref_values, cur_values = reference[label], current[label]
        try:
            kind = infer_kind(ref_values, column=name)
        except InvalidInput as exc:
            skipped[name] = exc.message
            continue
        if name in methods:
            _check_method(methods[name], kind, name)
        try:
            results[name] = column_drift(
                ref_values,
                cur_values,
                column=name,
                kind=kind,
                method=methods.get(name),
                threshold=thresholds.get(name),
            )
        except InvalidInput as exc:
            skipped[name] = exc.message
    return DatasetDrift(columns=results, drift_share=float(drift_share), skipped=skipped)


def _columns(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str] | None
) -> list[Any]:
    if columns is None:
        present = set(current.columns)
        return [label for label in reference.columns if label in present]
    missing = [name for name in columns if name not in reference or name not in current]
    if missing:
        raise InvalidInput(f"columns missing from reference or current: {missing}", field="columns")
    return list(columns)
