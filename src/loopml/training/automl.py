"""A simple model-family search: each family tuned with Optuna within its share of a budget.

:func:`automl` tries linear models, random forests and histogram gradient boosting from
scikit-learn, plus LightGBM and XGBoost when they are installed. Each family gets one
:func:`~loopml.training.tuning.tune` call (a nested run per family, a nested run per trial)
scored by cross-validation; the best family's pipeline is then refit on all the data.

Every model is a scikit-learn ``Pipeline``: a ``ColumnTransformer`` that one-hot encodes the
categorical columns (unseen categories become all zeros) and passes the numeric ones through
(linear models impute and standardise them, so that the solvers converge), then the estimator.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning, UndefinedMetricWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import get_scorer_names
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

from loopml.errors import InvalidInput, LoopmlError
from loopml.tracking import fluent
from loopml.training.tuning import tune

__all__ = ["FAMILIES", "AutoMLResult", "automl", "available_families"]

#: Every family :func:`automl` knows, in the order it tries them.
FAMILIES = ("linear", "random_forest", "hist_gradient_boosting", "lightgbm", "xgboost")
_NEEDS_PACKAGE = {"lightgbm": "lightgbm", "xgboost": "xgboost"}
_METRIC_ALIASES = {"neg_rmse": "neg_root_mean_squared_error", "neg_mae": "neg_mean_absolute_error"}
_DEFAULT_METRIC = {"classification": "f1_macro", "regression": "neg_root_mean_squared_error"}
Task = Literal["classification", "regression"]

_LOG = {"log": True}
_SPACES: dict[str, dict[str, Any]] = {
    "linear": {"C": ("float", 1e-3, 100.0, _LOG)},  # LogisticRegression
    "linear_regression": {"alpha": ("float", 1e-3, 100.0, _LOG)},  # Ridge
    "random_forest": {
        "n_estimators": ("int", 25, 150, {"step": 25}),
        "max_depth": ("int", 2, 16),
        "min_samples_leaf": ("int", 1, 8),
        "max_features": ("categorical", ["sqrt", "log2", 1.0]),
    },
    "hist_gradient_boosting": {
        "learning_rate": ("float", 0.01, 0.3, _LOG),
        "max_iter": ("int", 50, 200, {"step": 50}),
        "max_leaf_nodes": ("int", 8, 64, _LOG),
        "min_samples_leaf": ("int", 2, 40, _LOG),
        "l2_regularization": ("float", 1e-6, 1.0, _LOG),
    },
    "lightgbm": {
        "n_estimators": ("int", 50, 300, {"step": 50}),
        "learning_rate": ("float", 0.01, 0.3, _LOG),
        "num_leaves": ("int", 8, 64, _LOG),
        "min_child_samples": ("int", 2, 30, _LOG),
        "colsample_bytree": ("float", 0.6, 1.0),
    },
    "xgboost": {
        "n_estimators": ("int", 50, 300, {"step": 50}),
        "learning_rate": ("float", 0.01, 0.3, _LOG),
        "max_depth": ("int", 2, 8),
        "subsample": ("float", 0.6, 1.0),
        "colsample_bytree": ("float", 0.6, 1.0),
    },
}


@dataclass(frozen=True)
class AutoMLResult:
    """What :func:`automl` found.

    ``best_model`` is the best family's pipeline with its best params, refit on all the data;
    ``best_score`` its mean cross-validated ``metric`` (a scikit-learn scorer: higher is
    better). ``leaderboard`` has one row per family, best first: ``family``, ``score``,
    ``score_std``, ``n_trials``, ``status`` (``ok``, ``failed``, or ``skipped`` when the budget
    ran out), ``best_params``, ``run_id``, ``duration_s``. ``run_id`` is the search's run; the
    family runs and their trial runs are nested under it.
    """

    best_model: Any
    best_family: str
    best_score: float
    leaderboard: pd.DataFrame
    metric: str
    task: str
    run_id: str

    def predict(self, data: pd.DataFrame) -> Any:
        """Predict with :attr:`best_model`."""
        return self.best_model.predict(data)


class _EncodedLabels(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Fit ``estimator`` (cloned) on labels encoded as 0..k-1, as XGBoost needs, and decode."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any) -> _EncodedLabels:
        """Fit the wrapped classifier on encoded labels."""
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.encoder_.transform(y))
        return self

    def predict(self, X: Any) -> Any:
        """Predict the original labels."""
        return self.encoder_.inverse_transform(np.asarray(self.estimator_.predict(X), dtype=int))

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, columns ordered as :attr:`classes_`."""
        return self.estimator_.predict_proba(X)


def available_families() -> list[str]:
    """The families usable here (LightGBM and XGBoost only when they are installed)."""
    return [f for f in FAMILIES if f not in _NEEDS_PACKAGE or _installed(_NEEDS_PACKAGE[f])]


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _estimator(family: str, task: Task, params: dict[str, Any], seed: int) -> Any:
    classify = task == "classification"
    if family == "linear":
        from sklearn.linear_model import LogisticRegression, Ridge

        if classify:
            return LogisticRegression(C=params["C"], max_iter=2000)
        return Ridge(alpha=params["alpha"])
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        forest = RandomForestClassifier if classify else RandomForestRegressor
        return forest(**params, random_state=seed, n_jobs=1)
    if family == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier as HGBClassifier
        from sklearn.ensemble import HistGradientBoostingRegressor as HGBRegressor

        return (HGBClassifier if classify else HGBRegressor)(**params, random_state=seed)
    if family == "lightgbm":
        lightgbm: Any = importlib.import_module("lightgbm")
        booster = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
        return booster(**params, random_state=seed, n_jobs=1, verbose=-1)
    xgboost: Any = importlib.import_module("xgboost")
    options = {"random_state": seed, "n_jobs": 1, "tree_method": "hist", "verbosity": 0}
    if classify:
        return _EncodedLabels(xgboost.XGBClassifier(**params, **options))
    return xgboost.XGBRegressor(**params, **options)


def _pipeline(
    family: str, task: Task, params: dict[str, Any], columns: tuple[list[str], list[str]], seed: int
) -> Pipeline:
    categorical, numeric = columns
    parts: list[tuple[str, Any, list[str]]] = []
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(("categorical", encoder, categorical))
    if numeric:
        scaled = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        parts.append(("numeric", scaled if family == "linear" else "passthrough", numeric))
    transformer = ColumnTransformer(parts, remainder="drop")
    return Pipeline([("features", transformer), ("model", _estimator(family, task, params, seed))])


def _infer_task(y: pd.Series) -> Task:
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if not numeric or (pd.api.types.is_integer_dtype(y) and y.nunique() <= 20):
        return "classification"
    return "regression"


def _split_columns(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    categorical: list[str] = []
    numeric: list[str] = []
    for name, dtype in features.dtypes.items():
        if not isinstance(name, str):
            raise InvalidInput(f"column names must be strings, got {name!r}", field="data")
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            message = f"column {name!r} holds dates or durations: derive numeric features first"
            raise InvalidInput(message, field=f"data.{name}")
        is_number = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        (numeric if is_number else categorical).append(name)
    if not categorical and not numeric:
        raise InvalidInput("data has no feature column besides the target", field="data")
    return categorical, numeric


def _check_inputs(
    data: Any, target: str, task: str | None, metric: str | None, families: list[str] | None
) -> tuple[Task, str, list[str]]:
    if not isinstance(data, pd.DataFrame):
        message = f"data must be a pandas DataFrame, got {type(data).__name__}"
        raise InvalidInput(message, field="data")
    if target not in data.columns:
        raise InvalidInput(f"target {target!r} is not a column of data", field="target")
    if data[target].isna().any():
        raise InvalidInput(f"target {target!r} has missing values", field="target")
    if task not in (None, "classification", "regression"):
        raise InvalidInput("task must be 'classification' or 'regression'", field="task")
    the_task: Task = task or _infer_task(data[target])  # type: ignore[assignment]
    scorer = _METRIC_ALIASES.get(metric or "", metric) or _DEFAULT_METRIC[the_task]
    if scorer not in get_scorer_names():
        raise InvalidInput(f"metric {metric!r} is not a scikit-learn scorer name", field="metric")
    chosen = list(families) if families is not None else available_families()
    for family in chosen:
        if family not in FAMILIES:
            raise InvalidInput(f"unknown family {family!r}: use {FAMILIES}", field="families")
        package = _NEEDS_PACKAGE.get(family)
        if package and not _installed(package):
            message = f"family {family!r} needs {package}: pip install {package}"
            raise InvalidInput(message, field="families")
    if not chosen or len(set(chosen)) != len(chosen):
        raise InvalidInput("families must be a non-empty list without repeats", field="families")
    return the_task, scorer, chosen


def _splitter(y: pd.Series, task: Task, cv: int, seed: int) -> KFold | StratifiedKFold:
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
        raise InvalidInput(f"cv must be an integer of at least 2, got {cv!r}", field="cv")
    if len(y) < 2 * cv:
        raise InvalidInput(f"{len(y)} rows are too few for cv={cv}", field="cv")
    if task == "regression":
        return KFold(cv, shuffle=True, random_state=seed)
    counts = y.value_counts()
    if counts.min() < cv:
        message = f"class {counts.idxmin()!r} has {counts.min()} rows; cv={cv} needs {cv} per class"
        raise InvalidInput(message, field="cv")
    return StratifiedKFold(cv, shuffle=True, random_state=seed)


@dataclass(frozen=True)
class _Problem:
    """The data and settings every family is scored on."""

    features: pd.DataFrame
    y: pd.Series
    columns: tuple[list[str], list[str]]
    task: Task
    scoring: str
    splitter: Any
    seed: int

    def pipeline(self, family: str, params: dict[str, Any]) -> Pipeline:
        """An unfitted pipeline of ``family`` with ``params``."""
        return _pipeline(family, self.task, params, self.columns, self.seed)

    def objective(self, family: str) -> Callable[[dict[str, Any]], dict[str, float]]:
        """The tuning objective of ``family``: its mean and spread over the folds."""

        def objective(params: dict[str, Any]) -> dict[str, float]:
            model, data = self.pipeline(family, params), (self.features, self.y)
            with warnings.catch_warnings():  # a fold without some class, a solver at max_iter
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                warnings.simplefilter("ignore", ConvergenceWarning)
                options = {"cv": self.splitter, "scoring": self.scoring, "error_score": "raise"}
                scores = cross_val_score(model, *data, **options)
            return {
                self.scoring: float(np.mean(scores)),
                f"{self.scoring}_std": float(np.std(scores)),
            }

        return objective


def automl(
    data: pd.DataFrame,
    target: str,
    *,
    task: Task | None = None,
    time_budget_s: float = 60,
    metric: str | None = None,
    families: list[str] | None = None,
    seed: int = 0,
    cv: int = 3,
    max_trials: int = 100,
) -> AutoMLResult:
    """Search model families for ``target`` and return the best, refit on all the data.

    Parameters
    ----------
    data : pandas.DataFrame
        Features and the target; non-numeric columns are treated as categorical.
    target : str
        The column to predict.
    task : {"classification", "regression"}, optional
        Inferred when omitted: non-numeric, boolean, or integer with at most 20 distinct
        values means classification.
    time_budget_s : float, default 60
        Soft budget for the search, shared out evenly over the families still to try; a
        trial that started finishes, and families left when it runs out are skipped. The
        final refit is not counted.
    metric : str, optional
        A scikit-learn scorer name (greater is better): ``f1_macro`` for classification and
        ``neg_root_mean_squared_error`` (alias ``neg_rmse``) for regression by default.
    families : list of str, optional
        Some of :data:`FAMILIES`; default :func:`available_families`.
    seed : int, default 0
        Seeds the samplers, the folds and the estimators.
    cv : int, default 3
        Cross-validation folds (stratified for classification).
    max_trials : int, default 100
        Cap on the trials of each family.

    Raises
    ------
    InvalidInput
        For unusable data or arguments, naming what is wrong.
    LoopmlError
        When no family produced a model.

    Examples
    --------
    >>> result = lm.automl(frame, "churned", time_budget_s=30)  # doctest: +SKIP
    >>> result.leaderboard[["family", "score"]]  # doctest: +SKIP
    """
    the_task, scoring, chosen = _check_inputs(data, target, task, metric, families)
    if not isinstance(time_budget_s, int | float) or not time_budget_s > 0:
        raise InvalidInput("time_budget_s must be a positive number", field="time_budget_s")
    features, y = data.drop(columns=[target]), data[target]
    splitter = _splitter(y, the_task, cv, seed)
    problem = _Problem(features, y, _split_columns(features), the_task, scoring, splitter, seed)
    deadline = time.monotonic() + float(time_budget_s)
    parent = fluent.active_run()
    with fluent.start_run("automl", nested=parent is not None) as run:
        config: dict[str, Any] = {"task": the_task, "metric": scoring, "target": target}
        config.update({"families": ",".join(chosen), "time_budget_s": time_budget_s})
        config.update({"cv": cv, "seed": seed, "max_trials": max_trials})
        fluent.log_params({f"automl.{k}": v for k, v in config.items()})
        rows = []
        for index, family in enumerate(chosen):
            share = (deadline - time.monotonic()) / (len(chosen) - index)
            if share <= 0 and index > 0:  # the first family always runs, so there is a model
                rows.append(_row(family, "skipped", 0.0))
                continue
            key = "linear_regression" if (family, the_task) == ("linear", "regression") else family
            study = f"automl-{run.run_id[:12]}-{family}"
            options = {"n_trials": max_trials, "metric": scoring, "seed": seed, "study_name": study}
            rows.append(_search(family, _SPACES[key], problem, share, options))
        board = pd.DataFrame(rows).sort_values("score", ascending=False, na_position="last")
        board = board.reset_index(drop=True)
        fluent.log_dict(board.to_dict(orient="records"), "automl/leaderboard.json")
        if board["status"].iloc[0] != "ok":
            statuses = dict(zip(board["family"], board["status"], strict=True))
            raise LoopmlError(f"no model family produced a model: {statuses}")
        best = board.iloc[0]
        model = problem.pipeline(best["family"], best["best_params"]).fit(features, y)
        fluent.log_metrics({f"best.{scoring}": float(best["score"])})
        fluent.set_tags({"loopml.automl.best_family": best["family"]})
        family, score = str(best["family"]), float(best["score"])
        return AutoMLResult(model, family, score, board, scoring, the_task, run.run_id)


def _row(family: str, status: str, started: float, **values: Any) -> dict[str, Any]:
    row = {"family": family, "score": math.nan, "score_std": math.nan, "n_trials": 0}
    row.update({"status": status, "best_params": {}, "run_id": None, **values})
    row["duration_s"] = round(time.monotonic() - started, 3) if started else 0.0
    return row


def _search(
    family: str, space: dict[str, Any], problem: _Problem, share: float, options: dict[str, Any]
) -> dict[str, Any]:
    """Tune one family in a nested run; return its leaderboard row."""
    started, run_id = time.monotonic(), None
    try:
        with fluent.start_run(f"automl-{family}", nested=True) as family_run:
            run_id = family_run.run_id
            objective, timeout_s = problem.objective(family), max(share, 1e-3)
            result = tune(objective, space, timeout_s=timeout_s, **options)
    except InvalidInput:
        raise
    except LoopmlError:  # every trial failed: the family run ends FAILED, the search goes on
        return _row(family, "failed", started, run_id=run_id)
    best = next(t for t in result.trials if t["number"] == result.best_trial_number)
    std = best["metrics"].get(f"{options['metric']}_std", math.nan)
    values = {"score": result.best_value, "score_std": std, "n_trials": result.n_trials}
    values.update({"best_params": result.best_params, "run_id": run_id})
    return _row(family, "ok", started, **values)
