"""Evaluate a fitted model overall and on slices, next to a naive baseline, with timing.

:func:`evaluate` works with any object that has ``predict(frame)`` (and uses
``predict_proba`` when there is one, for ROC AUC and log loss). When a run is active, or
``run_id`` is given, it logs ``eval_<metric>`` and ``eval_<metric>/<slice>`` metrics, the whole
result as ``evaluation.json`` and plots under ``evaluation/``.

Examples
--------
>>> import numpy as np
>>> import pandas as pd
>>> from sklearn.linear_model import LogisticRegression
>>> from loopml.training import evaluate
>>> rng = np.random.default_rng(0)
>>> data = pd.DataFrame({"x": rng.normal(size=300), "age": rng.integers(18, 90, 300)})
>>> data["y"] = (data["x"] + rng.normal(scale=0.5, size=300) > 0).astype(int)
>>> model = LogisticRegression().fit(data[["x", "age"]], data["y"])
>>> result = evaluate(model, data, "y", slices=["age>60"], latency_rows=5)
>>> result.task, round(result.metric("accuracy"), 2), result.slices["age>60"]["n"]
('classification', 0.83, 125)
>>> result.metric("accuracy") > result.baseline_metrics["accuracy"]
True
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier, DummyRegressor

from loopml.errors import InvalidInput
from loopml.tracking.fluent import active_run, get_service
from loopml.training._scoring import Array, Scored, Task, figures, plain, sorted_labels
from loopml.training.slices import canonical_slice_name, resolve_slices, slice_metric_key

__all__ = ["EvaluationResult", "SliceResult", "evaluate", "register_evaluation_recorder"]

Recorder = Callable[[Any, "EvaluationResult"], None]
#: An integer target with at most this many distinct values is taken as class labels.
FEW_CLASSES = 10
_TIMINGS = ("latency_ms_per_row", "single_row_p50_ms")
_recorders: list[tuple[type, Recorder]] = []


class SliceResult(TypedDict):
    """One slice of an evaluation: its row count, metrics and whether it is small."""

    n: int
    metrics: dict[str, float]
    small: bool


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one model on one data set, overall, per slice and for a naive baseline.

    Attributes
    ----------
    task : {"classification", "regression"}
    metrics : dict
        Overall metrics. Classification: ``accuracy``, ``precision``, ``recall``, ``f1``
        (binary on ``positive_label``, else macro-averaged) and, with ``predict_proba``,
        ``roc_auc`` and ``log_loss``. Regression: ``rmse``, ``mae``, ``r2``, ``mape`` (a
        fraction, as scikit-learn computes it). Metrics undefined on the data are left out.
    slices : dict
        ``{name: {"n": rows, "metrics": {...}, "small": n < min_slice_size}}``.
    baseline_metrics : dict
        The same metrics for the baseline (empty without one).
    confusion_matrix, labels : list, optional
        Classification only: counts with rows = true label, columns = predicted label.
    latency_ms_per_row : float
        Time of one ``predict`` over the whole frame, divided by its rows.
    single_row_p50_ms : float, optional
        Median time of ``predict`` on single rows.
    """

    task: Task
    metrics: dict[str, float]
    slices: dict[str, SliceResult] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    labels: list[Any] | None = None
    latency_ms_per_row: float | None = None
    single_row_p50_ms: float | None = None
    n_rows: int = 0
    target: str = ""
    positive_label: Any = None
    baseline: str | None = None
    min_slice_size: int = 30

    def metric(self, name: str, slice: str | None = None) -> float:
        """Return one metric, overall or on ``slice``; timings are metrics too.

        Raises
        ------
        InvalidInput
            When the metric (``field`` = its name) or the slice (``field="slice"``) is absent.
        """
        if slice is None:
            values = dict(self.metrics)
            values.update({t: v for t in _TIMINGS if (v := getattr(self, t)) is not None})
            where = ""
        else:
            key = slice if slice in self.slices else canonical_slice_name(slice)
            if key not in self.slices:
                raise InvalidInput(
                    f"the evaluation has no slice {slice!r}; it has {sorted(self.slices)}",
                    field="slice",
                )
            values, where = self.slices[key]["metrics"], f" on slice {key!r}"
        if name not in values:
            raise InvalidInput(
                f"the evaluation has no metric {name!r}{where}; it has {sorted(values)}",
                field=name,
            )
        return float(values[name])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (what is stored on the run and the model version)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        """Rebuild a result from :meth:`to_dict` output."""
        if not isinstance(data, dict) or data.get("task") not in ("classification", "regression"):
            raise InvalidInput("not an evaluation result: it needs a task", field="evaluation")
        if not isinstance(data.get("metrics"), dict):
            raise InvalidInput("not an evaluation result: it has no metrics", field="metrics")
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["slices"] = {
            str(name): SliceResult(
                n=int(s["n"]), metrics=dict(s.get("metrics", {})), small=bool(s.get("small"))
            )
            for name, s in (data.get("slices") or {}).items()
        }
        return cls(**values)


def register_evaluation_recorder(model_type: type, recorder: Recorder) -> None:
    """Call ``recorder(model, result)`` after every evaluation of a ``model_type`` instance.

    The model registry registers the type of the models it loads, so that an evaluation of a
    registered version is stored with that version.
    """
    _recorders.append((model_type, recorder))


def _infer_task(y: pd.Series[Any], model: Any) -> Task:
    if pd.api.types.is_bool_dtype(y.dtype) or not pd.api.types.is_numeric_dtype(y.dtype):
        return "classification"
    if hasattr(model, "classes_"):
        return "classification"
    if pd.api.types.is_integer_dtype(y.dtype) and y.nunique() <= FEW_CLASSES:
        return "classification"
    return "regression"


def _features(model: Any, data: pd.DataFrame, target: str, features: Sequence[str] | None) -> Any:
    names = getattr(model, "feature_names_in_", None) if features is None else features
    if names is None:
        return data.drop(columns=[target])
    names = [str(n) for n in names]
    if target in names:
        raise InvalidInput(f"the target {target!r} cannot be a feature", field="features")
    missing = [n for n in names if n not in data.columns]
    if missing:
        raise InvalidInput(
            f"the data lacks feature column(s) {missing} the model needs", field=missing[0]
        )
    return data[names]


def _baseline(baseline: Any, task: Task, X: pd.DataFrame, y: Array) -> tuple[Any, str] | None:
    if baseline is None:
        return None
    if not isinstance(baseline, str):
        if not hasattr(baseline, "predict"):
            raise InvalidInput("baseline must be a name or a fitted model", field="baseline")
        return baseline, type(baseline).__name__
    strategies = {
        "classification": {"auto": "prior", "majority": "prior"},
        "regression": {"auto": "mean", "mean": "mean", "median": "median"},
    }[task]
    if baseline not in strategies:
        raise InvalidInput(
            f"baseline {baseline!r} does not fit a {task} task; use one of {sorted(strategies)}",
            field="baseline",
        )
    strategy = strategies[baseline]
    dummy: Any = (
        DummyClassifier(strategy=strategy)
        if task == "classification"
        else DummyRegressor(strategy=strategy)
    )
    dummy.fit(X, y)  # a dummy ignores the features' values
    return dummy, f"{type(dummy).__name__}(strategy={strategy!r})"


def _single_row_p50(model: Any, X: pd.DataFrame, rows: int) -> float | None:
    if rows <= 0:
        return None
    timings = []
    for index in np.unique(np.linspace(0, len(X) - 1, min(rows, len(X))).astype(int)):
        row = X.iloc[[int(index)]]
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.median(timings))


def evaluate(
    model: Any,
    data: pd.DataFrame,
    target: str,
    *,
    task: Task | None = None,
    slices: Sequence[str] | None = None,
    baseline: str | Any | None = "auto",
    positive_label: Any = None,
    features: Sequence[str] | None = None,
    min_slice_size: int = 30,
    latency_rows: int = 50,
    run_id: str | None = None,
    log: bool = True,
) -> EvaluationResult:
    """Score ``model`` on ``data`` overall and per slice, against a baseline, with timing.

    Parameters
    ----------
    model : object
        Anything with ``predict(frame)``; ``predict_proba`` and ``classes_`` are used when
        present (ROC AUC, log loss).
    data : pandas.DataFrame
        Features and the target.
    target : str
        The target column.
    task : {"classification", "regression"}, optional
        Inferred when omitted: classification for bool, text and categorical targets, for
        models with ``classes_`` and for integer targets with at most 10 distinct values.
    slices : list of str, optional
        Column names (one slice per value) and predicates (``"age>60"``); see
        :mod:`loopml.training.slices`.
    baseline : "auto", "majority", "mean", "median", fitted model or None, default "auto"
        A naive reference the gate compares with. ``"auto"`` fits a ``DummyClassifier``
        (most frequent class, class priors as probabilities) or a ``DummyRegressor`` (mean) on
        the evaluation data's own target: it ignores the features, so any useful model beats it.
    positive_label : optional
        The positive class of a binary task (default: the last of ``model.classes_`` or of
        the sorted labels, as scikit-learn orders ``predict_proba`` columns).
    features : list of str, optional
        The columns passed to the model; default ``model.feature_names_in_`` when the model
        has it, else every column but the target.
    min_slice_size : int, default 30
        Slices with fewer rows are reported with ``small=True``.
    latency_rows : int, default 50
        How many single rows to time for ``single_row_p50_ms`` (0 skips it).
    run_id : str, optional
        Where to log; defaults to the active run. Nothing is logged without a run or with
        ``log=False``.

    Raises
    ------
    InvalidInput
        Missing target or feature column, empty data, missing target values, bad slices, or a
        model whose ``predict`` fails on the data (the message carries the model's error).
    """
    if not isinstance(data, pd.DataFrame):
        raise InvalidInput(f"data must be a DataFrame, got {type(data).__name__}", field="data")
    if target not in data.columns:
        raise InvalidInput(f"the data has no target column {target!r}", field=target)
    if len(data) == 0:
        raise InvalidInput("cannot evaluate on an empty data set", field="data")
    if data[target].isna().any():
        count = int(data[target].isna().sum())
        raise InvalidInput(f"target {target!r} has {count} missing values", field=target)
    if task not in (None, "classification", "regression"):
        raise InvalidInput(f"unknown task {task!r}", field="task")
    if min_slice_size < 0 or latency_rows < 0:
        raise InvalidInput("min_slice_size and latency_rows must be >= 0", field="min_slice_size")
    chosen: Task = task or _infer_task(data[target], model)
    y = data[target].to_numpy()
    if chosen == "regression" and not pd.api.types.is_numeric_dtype(data[target].dtype):
        raise InvalidInput(f"regression needs a numeric target; {target!r} is not", field=target)
    data_slices = resolve_slices(data, slices)
    X = _features(model, data, target, features)
    scored, elapsed = Scored.of(model, X, y, chosen, positive_label)
    slice_results = {
        s.name: SliceResult(
            n=int(s.mask.sum()),
            metrics=scored.metrics(s.mask),
            small=int(s.mask.sum()) < min_slice_size,
        )
        for s in data_slices
    }
    reference = _baseline(baseline, chosen, X, y)
    baseline_metrics: dict[str, float] = {}
    if reference is not None:
        known = getattr(reference[0], "classes_", [scored.positive])
        ref_positive = scored.positive if scored.positive in list(known) else None
        ref_scored, _ = Scored.of(reference[0], X, y, chosen, ref_positive)
        baseline_metrics = ref_scored.metrics()
    matrix = labels = None
    if chosen == "classification":
        labels = sorted_labels(y, scored.pred)
        matrix = skm.confusion_matrix(y, scored.pred, labels=labels).tolist()
    result = EvaluationResult(
        task=chosen,
        metrics=scored.metrics(),
        slices=slice_results,
        baseline_metrics=baseline_metrics,
        confusion_matrix=matrix,
        labels=labels,
        latency_ms_per_row=elapsed * 1000 / len(data),
        single_row_p50_ms=_single_row_p50(model, X, latency_rows),
        n_rows=len(data),
        target=target,
        positive_label=plain(scored.positive),
        baseline=None if reference is None else reference[1],
        min_slice_size=min_slice_size,
    )
    if log:
        _log(result, scored, run_id)
    for model_type, recorder in list(_recorders):
        if isinstance(model, model_type):
            recorder(model, result)
    return result


def _log(result: EvaluationResult, scored: Scored, run_id: str | None) -> None:
    if run_id is None:
        active = active_run()
        if active is None:
            return
        run_id = active.run_id
    values = {f"eval_{k}": v for k, v in result.metrics.items()}
    values.update({f"eval_baseline_{k}": v for k, v in result.baseline_metrics.items()})
    values.update({f"eval_{t}": v for t in _TIMINGS if (v := getattr(result, t)) is not None})
    for name, sliced in result.slices.items():
        key = slice_metric_key(name)
        values.update({f"eval_{k}/{key}": v for k, v in sliced["metrics"].items()})
    service = get_service()
    service.log_batch(run_id, metrics=[{"key": k, "value": v} for k, v in values.items()])
    files = {"evaluation.json": json.dumps(result.to_dict(), indent=2, default=str)}
    for path, figure in figures(result, scored):
        files[path] = figure.to_html(include_plotlyjs="cdn", full_html=True)
    for path, text in files.items():
        service.log_artifact_stream(run_id, path, io.BytesIO(text.encode("utf-8")))
