"""The checks of a monitor run: drift against reference sketches, quality, latency, rules.

Drift reuses :mod:`loopml.stats`: the test for a column is chosen with the rule of
:func:`loopml.stats.choose_method` (by kind, reference size and number of distinct values),
count-based tests run on the sketch's counts through :func:`loopml.stats.tests.compare_counts`
and tests on raw values run on the sketch's fixed-seed sample through
:func:`loopml.stats.column_drift`. A rule (:class:`Rule`) turns any value of a run into a
verdict: ``ok``, ``alert``, or ``skipped`` when the value (or the baseline a ``drop`` rule
compares with) is not known yet, for instance before any label has arrived.

Examples
--------
>>> from loopml.monitoring.checks import Rule
>>> Rule("drift_share", ">=", 0.3).evaluate({"drift_share": 0.5}).verdict
'alert'
>>> Rule("f1", "drop", 0.05).evaluate({"f1": 0.80}, {"f1": 0.83}).verdict
'ok'
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput
from loopml.monitoring.reference import ColumnSketch
from loopml.stats import DEFAULT_THRESHOLDS, METHODS, ColumnDrift, column_drift
from loopml.stats.drift import FEW_VALUES, SMALL_SAMPLE
from loopml.stats.tests import compare_counts

__all__ = [
    "CLASSIFICATION_METRICS",
    "OPERATORS",
    "QUALITY_METRICS",
    "REGRESSION_METRICS",
    "CheckVerdict",
    "Rule",
    "choose_from_sketch",
    "drift_from_sketch",
    "latency_percentiles",
    "quality_metrics",
]

#: Quality metrics computed by default, by task.
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae")
QUALITY_METRICS = frozenset(
    ("accuracy", "precision", "recall", "f1", "roc_auc", "rmse", "mae", "r2")
)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
#: Rule operators: comparisons with the threshold, or a change from the baseline
#: (``drop``: baseline - value > threshold; ``rise``: value - baseline > threshold).
OPERATORS = (*_COMPARE, "drop", "rise")
_COUNT_METHODS = frozenset(("chisquare", "z", "jensenshannon", "psi"))
_OTHER = "(other)"


# -- drift ----------------------------------------------------------------------------------
def choose_from_sketch(sketch: ColumnSketch, distinct: int) -> str:
    """The test :func:`loopml.stats.choose_method` would pick for the sketched column.

    Parameters
    ----------
    sketch : ColumnSketch
        The reference column (its kind and non-null count).
    distinct : int
        Distinct non-null values over the reference and the current window (any number
        above 5 means "many" for numeric columns).
    """
    small = sketch.count <= SMALL_SAMPLE
    if sketch.kind == "numeric" and distinct > FEW_VALUES:
        return "ks" if small else "wasserstein"
    if not small:
        return "jensenshannon"
    return "chisquare" if distinct > 2 else "z"


def _current_counts(sketch: ColumnSketch, current: pd.Series[Any]) -> dict[Any, int]:
    counts = current.value_counts(sort=False, dropna=True)
    if isinstance(counts.index, pd.CategoricalIndex):
        counts.index = pd.Index(counts.index.astype(object))
    return {(k.item() if isinstance(k, np.generic) else k): int(c) for k, c in counts.items()}


def _aligned(
    sketch: ColumnSketch, current: dict[Any, int]
) -> tuple[list[Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    reference = sketch.value_counts()
    if sketch.kind == "categorical" and sketch.other:
        # Categories beyond the kept ones were summed: count unseen current values there.
        lumped = sum(c for k, c in current.items() if k not in reference)
        current = {k: c for k, c in current.items() if k in reference}
        reference[_OTHER], current[_OTHER] = sketch.other, lumped
    keys = list(reference) + [k for k in current if k not in reference]
    ref = np.array([reference.get(k, 0) for k in keys], dtype=np.int64)
    cur = np.array([current.get(k, 0) for k in keys], dtype=np.int64)
    return keys, ref, cur


def drift_from_sketch(
    sketch: ColumnSketch,
    current: pd.Series[Any],
    *,
    method: str | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> ColumnDrift:
    """Test one column of the window against its reference sketch.

    Parameters
    ----------
    sketch : ColumnSketch
        The reference column.
    current : pandas.Series
        The window's values; nulls are dropped.
    method : str, optional
        A key of :data:`loopml.stats.METHODS`; chosen as :func:`choose_from_sketch` does
        when omitted.
    thresholds : mapping, optional
        A threshold per method, overriding :data:`loopml.stats.DEFAULT_THRESHOLDS`.

    Raises
    ------
    InvalidInput
        When the window has no usable value, its values do not fit the column's kind, or
        the method does not apply.
    """
    name = sketch.name
    if method is not None and method not in METHODS:
        raise InvalidInput(
            f"unknown drift method {method!r}; expected one of {', '.join(sorted(METHODS))}",
            field="drift_methods",
        )
    if sketch.kind == "numeric":
        numeric = pd.to_numeric(current, errors="coerce")
        if int(numeric.isna().sum()) > int(current.isna().sum()):
            raise InvalidInput(f"column {name!r}: window values are not numeric", field=name)
        values = numeric.to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        series: pd.Series[Any] = pd.Series(values)
    else:
        values = np.empty(0)
        series = current.dropna()
    if len(series) == 0:
        raise InvalidInput(f"column {name!r}: the window has no non-null values", field=name)
    if sketch.kind == "numeric" and sketch.values is None:
        # More than 20 distinct reference values: "many" whatever the window holds.
        counted: dict[Any, int] = {}
        distinct = FEW_VALUES + 1
    else:
        counted = _current_counts(sketch, series)
        distinct = len(set(sketch.value_counts()) | set(counted))
    chosen = method or choose_from_sketch(sketch, distinct)
    limit = (thresholds or {}).get(chosen, DEFAULT_THRESHOLDS[chosen])
    if chosen in _COUNT_METHODS and (sketch.kind == "categorical" or sketch.values is not None):
        keys, ref_counts, cur_counts = _aligned(sketch, counted)
        result = compare_counts(chosen, keys, ref_counts, cur_counts, limit)
        return ColumnDrift(
            column=name,
            kind=sketch.kind,
            method=result.method,
            statistic=result.statistic,
            p_value=result.p_value,
            threshold=result.threshold,
            drifted=result.drifted,
            reference_size=sketch.count,
            current_size=int(cur_counts.sum()),
        )
    if sketch.kind != "numeric":
        raise InvalidInput(
            f"{chosen} compares numeric samples; column {name!r} is categorical",
            field="drift_methods",
        )
    drift = column_drift(
        np.asarray(sketch.sample, dtype=np.float64),
        values,
        column=name,
        kind="numeric",
        method=chosen,
        threshold=limit,
    )
    # The test ran on the bounded sample; report the reference's real size.
    return ColumnDrift(**{**drift.to_dict(), "reference_size": sketch.count})


def distribution(sketch: ColumnSketch, current: pd.Series[Any], top: int = 20) -> dict[str, Any]:
    """Reference and current shares per bin or category, for reports.

    Numeric columns use the reference histogram's bins (window values outside its range
    fall in the end bins); categorical ones the ``top`` most frequent reference categories.
    """
    if sketch.kind == "numeric":
        values = pd.to_numeric(current, errors="coerce").to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        cur = sketch.histogram_of(values)
        return {
            "kind": "numeric",
            "edges": sketch.edges,
            "reference": _shares(sketch.counts),
            "current": _shares(cur),
        }
    counted = _current_counts(sketch, current.dropna())
    reference = sketch.value_counts()
    keys = list(reference)[:top]
    keys += [k for k in sorted(counted, key=lambda k: -counted[k]) if k not in reference][:5]
    total_ref, total_cur = max(sketch.count, 1), max(sum(counted.values()), 1)
    return {
        "kind": "categorical",
        "categories": [str(k) for k in keys],
        "reference": [reference.get(k, 0) / total_ref for k in keys],
        "current": [counted.get(k, 0) / total_cur for k in keys],
    }


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


# -- quality and latency --------------------------------------------------------------------
def _align_labels(labels: pd.Series[Any], predictions: pd.Series[Any]) -> pd.Series[Any]:
    """Labels in the predictions' type, so that ``1`` and ``"1"`` compare equal."""
    if pd.api.types.is_numeric_dtype(predictions.dtype) and not pd.api.types.is_bool_dtype(
        predictions.dtype
    ):
        converted = pd.to_numeric(labels, errors="coerce")
        if converted.notna().all():
            return converted
        return labels
    if all(isinstance(value, str) for value in predictions):
        return labels.astype(str)
    return labels


def quality_metrics(
    task: str,
    predictions: pd.Series[Any],
    labels: pd.Series[Any],
    *,
    probability: pd.Series[Any] | None = None,
    metrics: tuple[str, ...] | list[str] | None = None,
    positive_label: Any = None,
) -> dict[str, float]:
    """Quality of labelled predictions.

    Parameters
    ----------
    task : {"classification", "regression"}
        Which metrics apply.
    predictions, labels : pandas.Series
        The predicted and true values of the labelled rows, aligned.
    probability : pandas.Series, optional
        The largest class probability of each row; for a binary task it gives ROC AUC.
    metrics : sequence of str, optional
        Which metrics; by default :data:`CLASSIFICATION_METRICS` or
        :data:`REGRESSION_METRICS`.
    positive_label : optional
        The positive class of a binary task (default: the larger of the two classes).

    Returns
    -------
    dict
        Metric values; metrics undefined on the data (ROC AUC with one class) are left out.
    """
    from sklearn import metrics as skm

    chosen = tuple(
        metrics or (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    )
    unknown = sorted(set(chosen) - QUALITY_METRICS)
    if unknown:
        raise InvalidInput(
            f"unknown quality metrics {unknown}; expected some of {sorted(QUALITY_METRICS)}",
            field="metrics",
        )
    if len(predictions) == 0:
        return {}
    y_true = _align_labels(labels.reset_index(drop=True), predictions)
    y_pred = predictions.reset_index(drop=True)
    out: dict[str, float] = {}
    if task == "regression":
        truth = pd.to_numeric(y_true, errors="coerce").to_numpy(dtype=np.float64)
        guess = pd.to_numeric(y_pred, errors="coerce").to_numpy(dtype=np.float64)
        keep = np.isfinite(truth) & np.isfinite(guess)
        truth, guess = truth[keep], guess[keep]
        if truth.size == 0:
            return {}
        errors = guess - truth
        values = {
            "rmse": math.sqrt(float(np.mean(errors**2))),
            "mae": float(np.mean(np.abs(errors))),
        }
        if truth.size > 1 and float(np.var(truth)) > 0:
            values["r2"] = 1.0 - float(np.mean(errors**2)) / float(np.var(truth))
        return {m: values[m] for m in chosen if m in values}
    classes = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str)
    binary = len(classes) == 2
    positive = positive_label if positive_label in classes else (classes[-1] if classes else None)
    average: dict[str, Any] = (
        {"average": "binary", "pos_label": positive} if binary else {"average": "macro"}
    )
    for name in chosen:
        if name == "accuracy":
            out[name] = float(skm.accuracy_score(y_true, y_pred))
        elif name in ("precision", "recall", "f1"):
            scorer = {"precision": skm.precision_score, "recall": skm.recall_score}.get(
                name, skm.f1_score
            )
            out[name] = float(scorer(y_true, y_pred, zero_division=0, **average))
        elif name == "roc_auc" and binary and probability is not None:
            p = pd.to_numeric(probability.reset_index(drop=True), errors="coerce")
            if p.notna().all() and y_true.nunique() == 2:
                # ``probability`` is the predicted class's: P(positive) is p or 1 - p.
                score = np.where(y_pred == positive, p, 1.0 - p)
                out[name] = float(skm.roc_auc_score(y_true == positive, score))
    return out


def latency_percentiles(frame: pd.DataFrame) -> dict[str, float]:
    """p50, p95 and p99 of request latency in ms (one value per request, not per row)."""
    if "latency_ms" not in frame.columns or frame.empty:
        return {}
    per_request = frame.drop_duplicates("request_id") if "request_id" in frame else frame
    values = pd.to_numeric(per_request["latency_ms"], errors="coerce").dropna()
    if values.empty:
        return {}
    quantiles = np.percentile(values.to_numpy(dtype=np.float64), [50, 95, 99])
    return {f"p{q}": float(v) for q, v in zip((50, 95, 99), quantiles, strict=True)}


# -- rules ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckVerdict:
    """The outcome of one rule in one run.

    Attributes
    ----------
    name : str
        The rule's name (``"f1 drop 0.05"``); alerts are kept per name.
    check : str
        The value the rule reads (``drift_share``, ``f1``, ``feature_drift.age``...).
    verdict : {"ok", "alert", "skipped"}
        ``skipped`` when the value or the baseline is unknown.
    value, baseline : float or None
        The run's value and, for ``drop``/``rise`` rules, what it is compared with.
    message : str
        One human sentence.
    """

    name: str
    check: str
    op: str
    threshold: float
    verdict: str
    value: float | None
    baseline: float | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "name": self.name,
            "check": self.check,
            "op": self.op,
            "threshold": self.threshold,
            "verdict": self.verdict,
            "value": self.value,
            "baseline": self.baseline,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckVerdict:
        """Build from :meth:`to_dict` output."""
        return cls(
            name=str(data["name"]),
            check=str(data["check"]),
            op=str(data["op"]),
            threshold=float(data["threshold"]),
            verdict=str(data["verdict"]),
            value=None if data.get("value") is None else float(data["value"]),
            baseline=None if data.get("baseline") is None else float(data["baseline"]),
            message=str(data.get("message", "")),
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


@dataclass(frozen=True)
class Rule:
    """An alerting rule on one value of a monitor run.

    Parameters
    ----------
    check : str
        The value: ``drift_share``, ``dataset_drift``, ``feature_drift.<feature>`` (1 when
        drifted), ``drift_score.<feature>``, ``prediction_drift``, ``target_drift``, a
        quality metric (``accuracy``, ``f1``, ``roc_auc``, ``rmse``, ``mae``...),
        ``latency_p50_ms``/``latency_p95_ms``/``latency_p99_ms``, ``error_rate``, ``rows``
        or ``labelled_rows``.
    op : str
        ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``, or ``drop``/``rise`` to compare with
        the baseline: the model version's evaluated metric unless ``baseline`` is given.
    threshold : float
        The bound, or the largest tolerated change for ``drop``/``rise``.
    baseline : float, optional
        A fixed baseline for ``drop``/``rise``.
    """

    check: str
    op: str
    threshold: float
    baseline: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.check, str) or not self.check.strip():
            raise InvalidInput("a rule needs the name of a check value", field="rules")
        if self.op not in OPERATORS:
            raise InvalidInput(
                f"unknown rule operator {self.op!r}; expected one of {', '.join(OPERATORS)}",
                field="rules",
            )
        if _number(self.threshold) is None:
            raise InvalidInput(
                f"rule {self.check!r}: the threshold must be a finite number", field="rules"
            )
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def name(self) -> str:
        """``check op threshold``, as alerts and tables show the rule."""
        return f"{self.check} {self.op} {self.threshold:g}"

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Parse ``"f1 drop 0.05"`` or ``"drift_share > 0.3"``."""
        parts = str(text).split()
        if len(parts) != 3:
            raise InvalidInput(
                f"rule {text!r} must look like 'CHECK OP THRESHOLD', e.g. 'f1 drop 0.05'",
                field="rules",
            )
        try:
            threshold = float(parts[2])
        except ValueError:
            raise InvalidInput(
                f"rule {text!r}: {parts[2]!r} is not a number", field="rules"
            ) from None
        return cls(parts[0], parts[1], threshold)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "check": self.check,
            "op": self.op,
            "threshold": self.threshold,
            "baseline": self.baseline,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Rule:
        """Build from :meth:`to_dict` output, or parse a ``"CHECK OP THRESHOLD"`` string."""
        if isinstance(data, str):
            return cls.parse(data)
        if not isinstance(data, dict) or not {"check", "op", "threshold"} <= set(data):
            raise InvalidInput(f"rule {data!r} needs 'check', 'op' and 'threshold'", field="rules")
        baseline = data.get("baseline")
        return cls(
            str(data["check"]),
            str(data["op"]),
            data["threshold"],
            None if baseline is None else float(baseline),
        )

    def evaluate(
        self, values: Mapping[str, Any], baselines: Mapping[str, float] | None = None
    ) -> CheckVerdict:
        """Judge one run's values.

        Parameters
        ----------
        values : mapping
            The run's check values.
        baselines : mapping, optional
            The model version's evaluated metrics, for ``drop``/``rise``.
        """
        value = _number(values.get(self.check))
        baseline: float | None = None
        if self.op in ("drop", "rise"):
            baseline = self.baseline
            if baseline is None:
                baseline = _number((baselines or {}).get(self.check))
        if value is None:
            return self._verdict("skipped", None, baseline, f"{self.check} is not known yet")
        if self.op in ("drop", "rise"):
            if baseline is None:
                return self._verdict(
                    "skipped",
                    value,
                    None,
                    f"{self.check} has no baseline: the model version has no evaluated "
                    f"{self.check}; give the rule a baseline",
                )
            change = baseline - value if self.op == "drop" else value - baseline
            firing = change > self.threshold
            verb = "dropped" if self.op == "drop" else "rose"
            message = (
                f"{self.check} {verb} by {abs(change):.4g} from {baseline:.4g} to {value:.4g} "
                f"(tolerated {self.threshold:g})"
            )
        else:
            firing = _COMPARE[self.op](value, self.threshold)
            message = (
                f"{self.check} = {value:.4g} ({'' if firing else 'not '}{self.op} "
                f"{self.threshold:g})"
            )
        return self._verdict("alert" if firing else "ok", value, baseline, message)

    def _verdict(
        self, verdict: str, value: float | None, baseline: float | None, message: str
    ) -> CheckVerdict:
        return CheckVerdict(
            name=self.name,
            check=self.check,
            op=self.op,
            threshold=self.threshold,
            verdict=verdict,
            value=value,
            baseline=baseline,
            message=message,
        )
