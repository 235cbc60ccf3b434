"""Metric computation for evaluation: directions, per-task metrics, and the evaluation plots.

Private to :mod:`loopml.training`; :func:`~loopml.training.evaluate` and the gate use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.training.evaluation import EvaluationResult

Task = Literal["classification", "regression"]
Array = np.ndarray[Any, Any]
#: Regression residual plots show at most this many points.
PLOT_POINTS = 5000
#: Metrics where a larger value is better.
HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
#: Metrics where a smaller value is better (timings included).
LOWER_IS_BETTER = frozenset(
    {"log_loss", "rmse", "mae", "mape", "latency_ms_per_row", "single_row_p50_ms"}
)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better.

    Raises
    ------
    InvalidInput
        For a metric whose direction is unknown (``field`` is the metric name).
    """
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    known = sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER)
    raise InvalidInput(f"unknown metric {metric!r}; the gate knows {known}", field=metric)


def plain(value: Any) -> Any:
    """Turn a numpy scalar into the Python value JSON can hold."""
    return value.item() if isinstance(value, np.generic) else value


def _predict(model: Any, X: pd.DataFrame) -> Array:
    try:
        return np.asarray(model.predict(X))
    except InvalidInput:
        raise  # already names the field (a signature check, for instance)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise InvalidInput(
            f"{type(model).__name__}.predict failed on the evaluation data "
            f"(columns {list(X.columns)}): {type(exc).__name__}: {exc}",
            field="data",
        ) from exc


def _probabilities(model: Any, X: pd.DataFrame) -> Array | None:
    # predict already worked on X, so a failing predict_proba means the model has none
    # (an SVC without probability=True, a wrapper exposing the method for every flavor).
    method = getattr(model, "predict_proba", None)
    if method is None:
        return None
    try:
        return np.asarray(method(X), dtype=float)
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None


def _positive_label(classes: list[Any], positive_label: Any) -> Any:
    if positive_label is not None:
        if len(classes) != 2:
            raise InvalidInput(
                f"positive_label applies to two classes; the labels are {classes}",
                field="positive_label",
            )
        if positive_label not in classes:
            raise InvalidInput(
                f"positive_label {positive_label!r} is not one of the labels {classes}",
                field="positive_label",
            )
        return positive_label
    return classes[-1] if len(classes) == 2 else None


def _classification_metrics(
    y: Array,
    pred: Array,
    proba: Array | None,
    classes: list[Any],
    positive: Any,
) -> dict[str, float]:
    if len(y) == 0:
        return {}
    average: Any = "binary" if positive is not None else "macro"
    pos = positive if positive is not None else 1
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y, pred, average=average, pos_label=pos, zero_division=0
    )
    out = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
    present = set(sorted_labels(y))
    if proba is None:
        return out
    out["log_loss"] = float(skm.log_loss(y, proba, labels=classes))
    if positive is not None and len(present) == 2:
        column = proba[:, classes.index(positive)]
        out["roc_auc"] = float(skm.roc_auc_score(y == positive, column))
    elif positive is None and present == set(classes):
        out["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    return out


def _regression_metrics(y: Array, pred: Array) -> dict[str, float]:
    if len(y) == 0:
        return {}
    out = {
        "rmse": float(skm.root_mean_squared_error(y, pred)),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "mape": float(skm.mean_absolute_percentage_error(y, pred)),
    }
    if len(y) >= 2:
        out["r2"] = float(skm.r2_score(y, pred))
    return out


def sorted_labels(*arrays: Array) -> list[Any]:
    """The distinct labels of ``arrays``, sorted, as plain Python values."""
    return [plain(v) for v in np.unique(np.concatenate(arrays))]


@dataclass
class Scored:
    """Predictions of one model on the whole frame, and how to score any subset of rows."""

    task: Task
    y: Array
    pred: Array
    proba: Array | None = None
    classes: list[Any] = field(default_factory=list)
    positive: Any = None

    @classmethod
    def of(
        cls, model: Any, X: pd.DataFrame, y: Array, task: Task, positive: Any
    ) -> tuple[Scored, float]:
        start = time.perf_counter()
        pred = _predict(model, X)
        elapsed = time.perf_counter() - start
        if pred.ndim != 1 or len(pred) != len(y):
            raise InvalidInput(
                f"{type(model).__name__}.predict returned shape {pred.shape} for {len(y)} rows",
                field="model",
            )
        if task == "regression":
            pred = pred.astype(float)
            if np.isnan(pred).any():
                raise InvalidInput("the model predicted NaN for some rows", field="model")
            return cls(task, y, pred), elapsed
        labels = sorted_labels(y, pred)
        known = getattr(model, "classes_", None)
        classes = labels if known is None else [plain(c) for c in known]
        if not set(labels) <= set(classes):  # labels the model never saw: no probabilities
            classes = sorted_labels(np.asarray(classes, dtype=object), y, pred)
        proba = _probabilities(model, X)
        if proba is not None and proba.shape != (len(y), len(classes)):
            proba = None  # columns that cannot be matched to labels
        return cls(task, y, pred, proba, classes, _positive_label(classes, positive)), elapsed

    def metrics(self, rows: Array | None = None) -> dict[str, float]:
        pick = slice(None) if rows is None else rows
        if self.task == "regression":
            return _regression_metrics(self.y[pick], self.pred[pick])
        proba = None if self.proba is None else self.proba[pick]
        return _classification_metrics(
            self.y[pick], self.pred[pick], proba, self.classes, self.positive
        )


def figures(result: EvaluationResult, scored: Scored) -> list[tuple[str, Any]]:
    """The plotly figures of an evaluation, with the artifact paths they are stored under."""
    import plotly.graph_objects as go

    out: list[tuple[str, Any]] = []
    if result.confusion_matrix is not None and result.labels is not None:
        names = [str(label) for label in result.labels]
        matrix = result.confusion_matrix
        figure = go.Figure(
            go.Heatmap(
                z=matrix, x=names, y=names, text=matrix, texttemplate="%{text}", colorscale="Blues"
            )
        )
        figure.update_layout(
            title="Confusion matrix",
            xaxis_title="predicted",
            yaxis_title="true",
            yaxis_autorange="reversed",
        )
        out.append(("evaluation/confusion_matrix.html", figure))
    if "roc_auc" in result.metrics and scored.positive is not None and scored.proba is not None:
        column = scored.proba[:, scored.classes.index(scored.positive)]
        fpr, tpr, _ = skm.roc_curve(scored.y == scored.positive, column)
        figure = go.Figure(
            [
                go.Scatter(x=fpr, y=tpr, name=f"model (AUC {result.metrics['roc_auc']:.3f})"),
                go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"dash": "dash"}),
            ]
        )
        figure.update_layout(
            title=f"ROC curve (positive label {scored.positive!r})",
            xaxis_title="false positive rate",
            yaxis_title="true positive rate",
        )
        out.append(("evaluation/roc.html", figure))
    if result.task == "regression":
        rows = np.arange(len(scored.y))
        if len(rows) > PLOT_POINTS:
            rows = np.sort(np.random.default_rng(0).choice(rows, PLOT_POINTS, replace=False))
        pred = scored.pred[rows]
        residuals = scored.y[rows].astype(float) - pred
        figure = go.Figure(go.Scatter(x=pred, y=residuals, mode="markers", opacity=0.6))
        figure.add_hline(y=0, line_dash="dash")
        figure.update_layout(
            title="Residuals (true - predicted)", xaxis_title="predicted", yaxis_title="residual"
        )
        out.append(("evaluation/residuals.html", figure))
    return out
