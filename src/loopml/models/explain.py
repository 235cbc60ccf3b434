"""SHAP explanations of loaded models: per-row feature attributions and global importance.

The explainer follows the model type: :class:`shap.TreeExplainer` for tree ensembles
(scikit-learn forests and gradient boosting, XGBoost, LightGBM), :class:`shap.LinearExplainer`
for linear models, and otherwise a model-agnostic explainer that calls the model's
``predict_proba`` (classifiers) or ``predict`` with features masked by the background sample
stored at log time.

For a classifier each row is explained for the class the model predicts for it; the values
are in the units the explainer sees: log-odds (margins) for linear models and boosted trees,
probabilities for random forests and for the model-agnostic explainer. For a regressor they
explain the prediction. In every case ``base_value + sum(values) == explained output``.

Examples
--------
>>> loaded = lm.models.load("churn@champion")                    # doctest: +SKIP
>>> explanation = lm.models.explain(loaded, X.head(3))           # doctest: +SKIP
>>> explanation.values.shape                                     # doctest: +SKIP
(3, 4)
"""

from __future__ import annotations

import copy
import io
import json
import logging
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.models import signature as signatures
from loopml.models.storage import (
    BACKGROUND,
    INPUT_EXAMPLE,
    LoadedModel,
    load_logged_model,
    read_manifest,
)

if TYPE_CHECKING:
    from loopml.tracking.service import TrackingService

logger = logging.getLogger("loopml.models")
TREE, LINEAR, MODEL_AGNOSTIC = "tree", "linear", "model-agnostic"
IMPORTANCE_FILE = "importance.json"
#: Default budget of model evaluations per row for the sampling (permutation) explainer.
DEFAULT_MAX_EVALS = 256
#: Up to this many features the model-agnostic explainer enumerates every coalition (exact).
EXACT_MAX_FEATURES = 8
#: Background rows the model-agnostic explainer integrates over: each evaluation predicts
#: on all of them, so a row costs up to 256 x 50 predictions.
AGNOSTIC_BACKGROUND_ROWS = 50
#: Rows one call explains at most.
MAX_ROWS = 1000
#: Background rows global importance averages over (fewer for the costlier explainer).
IMPORTANCE_ROWS = {TREE: 200, LINEAR: 200, MODEL_AGNOSTIC: AGNOSTIC_BACKGROUND_ROWS}

_SKLEARN_TREES = frozenset(
    {
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "ExtraTreeClassifier",
        "ExtraTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
    }
)
_import_lock = threading.Lock()
_cache_lock = threading.Lock()
_explainers: weakref.WeakKeyDictionary[LoadedModel, _Prepared] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Explanation:
    """SHAP values of some rows, one output per row.

    Attributes
    ----------
    feature_names : list of str
        The columns, in signature order.
    values : numpy.ndarray
        Shape ``(n_rows, n_features)``: each feature's contribution to the explained output.
    base_values : numpy.ndarray
        Shape ``(n_rows,)``: the explained output's expected value over the background
        sample (over the training data, for trees).
    explainer : str
        ``"tree"``, ``"linear"`` or ``"model-agnostic"``.
    classes : list or None
        For a classifier, the class each row is explained for (its predicted class).
    """

    feature_names: list[str]
    values: np.ndarray[Any, Any]
    base_values: np.ndarray[Any, Any]
    explainer: str
    classes: list[Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (``values`` as one list per row)."""
        return {
            "feature_names": list(self.feature_names),
            "base_values": self.base_values.tolist(),
            "values": self.values.tolist(),
            "explainer": self.explainer,
            "classes": None if self.classes is None else _plain(self.classes),
        }


@dataclass(frozen=True)
class _Prepared:
    """A model's explainer, or for model-agnostic ones what builds it around a call's codec."""

    kind: str
    explainer: Any
    features: list[str]
    codec: _Codec | None = None
    factory: Callable[[_Codec], Any] | None = None


class _Codec:
    """Numbers for shap's masker, which compares values arithmetically.

    Numeric columns pass through as floats; any other column (strings, booleans, datetimes)
    becomes the code of each distinct value, decoded back before the model sees the rows.
    The codec built on the background is shared; each call extends a copy of it, so values
    seen in requests are forgotten afterwards.
    """

    def __init__(self, sample: pd.DataFrame) -> None:
        self.features = [str(c) for c in sample.columns]
        self.dtypes = {str(c): sample[c].dtype for c in sample.columns}
        self.coded = {
            name
            for name, dtype in self.dtypes.items()
            if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype)
        }
        self._codes: dict[str, dict[Any, int]] = {name: {} for name in self.coded}
        self._values: dict[str, list[Any]] = {name: [] for name in self.coded}

    def extended(self) -> _Codec:
        """A copy that knows this codec's codes and learns new ones without changing it."""
        clone = copy.copy(self)
        clone._codes = {name: dict(codes) for name, codes in self._codes.items()}
        clone._values = {name: list(values) for name, values in self._values.items()}
        return clone

    def _code(self, name: str, value: Any) -> int:
        key = None if pd.isna(value) else value
        codes = self._codes[name]
        if key not in codes:
            self._values[name].append(key)
            codes[key] = len(self._values[name]) - 1
        return codes[key]

    def encode(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """The rows as a float array, non-numeric values replaced by their codes."""
        out = np.empty((len(frame), len(self.features)), dtype=float)
        for index, name in enumerate(self.features):
            if name in self.coded:
                out[:, index] = [self._code(name, v) for v in frame[name].tolist()]
            else:
                out[:, index] = frame[name].to_numpy(dtype=float)
        return out

    def decode(self, array: np.ndarray[Any, Any]) -> pd.DataFrame:
        """The DataFrame with the original values and dtypes that ``array`` encodes."""
        columns: dict[str, Any] = {}
        for index, name in enumerate(self.features):
            column = array[:, index]
            if name in self.coded:
                values = self._values[name]
                decoded = pd.Series([values[int(k)] for k in column], dtype=object)
                columns[name] = decoded.astype(self.dtypes[name])
            else:
                columns[name] = pd.Series(column).astype(self.dtypes[name])
        return pd.DataFrame(columns)


def _shap() -> Any:
    """Import shap, silencing the warnings its plotting module triggers at import time."""
    with _import_lock, warnings.catch_warnings():
        # shap's colour maps call matplotlib setters newer matplotlib flags as pending
        # deprecation; nothing here plots, and the warning is not the caller's to act on.
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module=r"shap\.")
        import shap
    return shap


def _plain(values: Any) -> list[Any]:
    return list(np.asarray(values).tolist())


def _tree_model(model: Any) -> Any | None:
    """The object TreeExplainer reads for a tree ensemble, or None for other models."""
    booster = getattr(model, "booster", None)
    if booster is not None and type(model).__module__.startswith("loopml.models."):
        # The LightGBM and XGBoost flavors load a wrapper around the native booster.
        model = booster
    module = type(model).__module__
    if module.startswith(("sklearn.ensemble", "sklearn.tree")):
        return model if type(model).__name__ in _SKLEARN_TREES else None
    if module.split(".")[0] in ("xgboost", "lightgbm"):
        return model
    return None


def _is_linear(model: Any) -> bool:
    return (
        type(model).__module__.startswith("sklearn.linear_model")
        and hasattr(model, "coef_")
        and hasattr(model, "intercept_")
    )


def explainer_kind(loaded: LoadedModel) -> str:
    """Which explainer :func:`explain` uses for a model, before trying it.

    Parameters
    ----------
    loaded : LoadedModel
        A model from ``lm.models.load``.

    Returns
    -------
    str
        ``"tree"``, ``"linear"`` or ``"model-agnostic"``. A tree model shap cannot read
        (e.g. a multi-class scikit-learn gradient boosting) falls back to model-agnostic
        when explained.
    """
    if _tree_model(loaded.model) is not None:
        return TREE
    return LINEAR if _is_linear(loaded.model) else MODEL_AGNOSTIC


def _features(loaded: LoadedModel, background: pd.DataFrame | None) -> list[str]:
    inputs = (loaded.signature or {}).get("inputs") or []
    if inputs:
        return [str(c["name"]) for c in inputs]
    if background is not None:
        return [str(c) for c in background.columns]
    raise InvalidInput(
        "the model has neither a signature nor a background sample, so its features are "
        "unknown; log it with input_example=... to explain it",
        field="model",
    )


def _background(loaded: LoadedModel) -> pd.DataFrame | None:
    # Models logged before background samples existed still carry their input example.
    sample = loaded.background if loaded.background is not None else loaded.input_example
    if sample is None or sample.empty:
        return None
    return signatures.enforce(sample, loaded.signature)


def _check_frame(data: Any, loaded: LoadedModel, features: list[str]) -> pd.DataFrame:
    frame = signatures.enforce(data, loaded.signature)
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise InvalidInput(f"input is missing column(s): {', '.join(missing)}", field=missing[0])
    if frame.empty:
        raise InvalidInput("there are no rows to explain", field="data")
    if len(frame) > MAX_ROWS:
        raise InvalidInput(
            f"at most {MAX_ROWS} rows are explained per call, got {len(frame)}", field="data"
        )
    return frame[features].reset_index(drop=True)


def _model_function(model: Any, codec: _Codec) -> Callable[..., Any]:
    """The model as a function of the masked arrays shap builds, fed back as DataFrames."""
    predict = model.predict_proba if _is_classifier(model) else model.predict

    def function(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        output = predict(codec.decode(values))
        try:
            return np.asarray(output, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"the model's outputs are not numbers, so they cannot be explained ({exc})",
                field="model",
            ) from exc

    return function


def _is_classifier(model: Any) -> bool:
    return hasattr(model, "classes_") and hasattr(model, "predict_proba")


def _prepare(loaded: LoadedModel) -> _Prepared:
    with _cache_lock:
        cached = _explainers.get(loaded)
    if cached is not None:
        return cached
    shap = _shap()
    background = _background(loaded)
    features = _features(loaded, background)
    prepared = None
    tree = _tree_model(loaded.model)
    if tree is not None:
        try:
            # Path-dependent: exact for trees and needs no background sample.
            prepared = _Prepared(TREE, shap.TreeExplainer(tree), features)
        except Exception:  # noqa: BLE001 - shap rejects tree models it cannot parse
            prepared = None
    if prepared is None:
        if background is None:
            raise InvalidInput(
                f"{loaded.source} has no background sample, which a "
                f"{type(loaded.model).__name__} needs to be explained; log it with "
                "input_example=... or background=...",
                field="model",
            )
        sample = background[features]
        model = loaded.model
        if _is_linear(model):
            prepared = _Prepared(LINEAR, shap.LinearExplainer(model, sample), features)
        else:
            if hasattr(model, "classes_") and not hasattr(model, "predict_proba"):
                raise InvalidInput(
                    f"the {type(model).__name__} classifier has no predict_proba, which the "
                    "model-agnostic explainer needs",
                    field="model",
                )
            sample = _rows(sample, AGNOSTIC_BACKGROUND_ROWS)
            codec = _Codec(sample)
            masker = shap.maskers.Independent(
                codec.encode(sample), max_samples=AGNOSTIC_BACKGROUND_ROWS
            )
            algorithm = (
                shap.explainers.Exact
                if len(features) <= EXACT_MAX_FEATURES
                else shap.explainers.Permutation
            )

            def factory(call_codec: _Codec) -> Any:
                return algorithm(_model_function(model, call_codec), masker)

            prepared = _Prepared(MODEL_AGNOSTIC, None, features, codec, factory)
    with _cache_lock:
        _explainers[loaded] = prepared
    return prepared


def _rows(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """At most ``limit`` rows, drawn with a fixed seed so repeated calls agree."""
    return frame if len(frame) <= limit else frame.sample(n=limit, random_state=0)


def _predicted_index(model: Any, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    if hasattr(model, "predict_proba"):
        return np.asarray(np.argmax(np.asarray(model.predict_proba(frame)), axis=1), dtype=int)
    # Classifiers without probabilities (RidgeClassifier...) predict one of classes_.
    positions = {label: i for i, label in enumerate(np.asarray(model.classes_).tolist())}
    labels = np.asarray(model.predict(frame)).tolist()
    return np.asarray([positions[label] for label in labels], dtype=int)


def _run(prepared: _Prepared, frame: pd.DataFrame, max_evals: int) -> Any:
    if prepared.codec is None or prepared.factory is None:
        if prepared.kind == TREE:
            # Additivity is a property of the algorithm (and tested); the check re-predicts.
            return prepared.explainer(frame, check_additivity=False)
        return prepared.explainer(frame)
    codec = prepared.codec.extended()
    encoded = codec.encode(frame)
    explainer = prepared.factory(codec)
    if len(prepared.features) <= EXACT_MAX_FEATURES:
        return explainer(encoded, silent=True)
    evals = max(max_evals, 2 * len(prepared.features) + 1)
    return explainer(encoded, max_evals=evals, silent=True)


def explain(loaded: LoadedModel, data: Any, *, max_evals: int = DEFAULT_MAX_EVALS) -> Explanation:
    """SHAP values of each row of ``data`` for a loaded model.

    Parameters
    ----------
    loaded : LoadedModel
        A model from ``lm.models.load``.
    data : pandas.DataFrame or list of dict or dict
        The rows to explain; checked against the model's signature first.
    max_evals : int
        Model evaluations per row for the sampling explainer, used by the model-agnostic
        explainer when the model has more than ten features (at least ``2 * n + 1``).

    Returns
    -------
    Explanation
        Values of shape ``(n_rows, n_features)``; for a classifier, of each row's
        predicted class.

    Raises
    ------
    InvalidInput
        When the input does not match the signature (naming the column), or the model
        needs a background sample it was logged without, or it has several outputs.
    """
    if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 1:
        raise InvalidInput("max_evals must be a positive integer", field="max_evals")
    prepared = _prepare(loaded)
    frame = _check_frame(data, loaded, prepared.features)
    result = _run(prepared, frame, max_evals)
    values = np.asarray(result.values, dtype=float)
    rows = np.arange(len(frame))
    base = np.broadcast_to(
        np.asarray(result.base_values, dtype=float), values.shape[:1] + values.shape[2:]
    )
    model = loaded.model
    classes = None
    if hasattr(model, "classes_"):
        index = _predicted_index(model, frame)
        classes = _plain(np.asarray(model.classes_)[index])
        if values.ndim == 3:
            values, base = values[rows, :, index], base[rows, index]
        else:
            # One margin for two classes: the other class's log-odds are its negation.
            sign = np.where(index == len(model.classes_) - 1, 1.0, -1.0)
            values, base = values * sign[:, None], base * sign
    elif values.ndim == 3:
        if values.shape[2] != 1:
            raise InvalidInput(
                f"the model has {values.shape[2]} outputs; only single-output models and "
                "classifiers are explained",
                field="model",
            )
        values, base = values[:, :, 0], base[:, 0]
    return Explanation(
        list(prepared.features), np.array(values), np.array(base), prepared.kind, classes
    )


def global_importance(loaded: LoadedModel, *, max_rows: int | None = None) -> dict[str, float]:
    """Mean absolute SHAP value of each feature over the model's background sample.

    Parameters
    ----------
    loaded : LoadedModel
        A model logged with a background sample (or an input example).
    max_rows : int, optional
        Background rows explained at most (by default 200, or 50 for the model-agnostic
        explainer), drawn with a fixed seed.

    Returns
    -------
    dict
        ``{feature: mean |SHAP|}``, largest first.

    Raises
    ------
    InvalidInput
        When the model has no background sample to average over.
    """
    return _importance(loaded, max_rows)[0]


def _importance(loaded: LoadedModel, max_rows: int | None) -> tuple[dict[str, float], int, str]:
    background = _background(loaded)
    if background is None:
        raise InvalidInput(
            f"{loaded.source} has no background sample to compute importance over",
            field="model",
        )
    limit = max_rows if max_rows is not None else IMPORTANCE_ROWS[_prepare(loaded).kind]
    explanation = explain(loaded, _rows(background, limit))
    means = np.abs(explanation.values).mean(axis=0).tolist()
    ranked = sorted(zip(explanation.feature_names, means, strict=True), key=_by_value)
    importance = {name: float(value) for name, value in ranked}
    return importance, len(explanation.values), explanation.explainer


def _by_value(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


def importance_path(artifact_path: str) -> str:
    """Where a logged model's global importance is kept among its run's artifacts."""
    return f"explanations/{artifact_path.strip('/')}/{IMPORTANCE_FILE}"


def stored_importance(
    tracking: TrackingService,
    run_id: str,
    artifact_path: str,
    *,
    trusted: bool = False,
    trusted_types: list[str] | None = None,
    refresh: bool = False,
    compute: bool = True,
) -> dict[str, Any]:
    """A logged model's global importance, computed on first use and kept as an artifact.

    The record names the sha256 of the sample it was computed over, so it is recomputed
    if that sample ever differs from the one the model's manifest lists.

    Parameters
    ----------
    tracking : TrackingService
        Holds the run and its artifacts.
    run_id, artifact_path : str
        The logged model (``runs:/<run_id>/<artifact_path>``).
    trusted, trusted_types
        Passed to the model loader when the importance has to be computed.
    refresh : bool
        Recompute even when a matching record exists.
    compute : bool, default True
        Compute it when no matching record is kept; False only reads (SHAP can take
        seconds, more on the first call in a process).

    Returns
    -------
    dict
        ``{"importance": {feature: mean |SHAP|} (largest first), "rows", "explainer",
        "sample_sha256"}``.

    Raises
    ------
    InvalidInput
        When the model has no background sample (nor input example).
    """
    files = read_manifest(tracking, run_id, artifact_path)["files"]
    sample_sha = files.get(BACKGROUND) or files.get(INPUT_EXAMPLE)
    if sample_sha is None:
        raise InvalidInput(
            f"runs:/{run_id}/{artifact_path} was logged without a background sample or an "
            "input example",
            field="model",
        )
    path = importance_path(artifact_path)
    if not refresh:
        try:
            record: dict[str, Any] = json.loads(b"".join(tracking.read_artifact(run_id, path)))
        except (NotFound, ValueError):
            record = {}
        if record.get("sample_sha256") == sample_sha and isinstance(record.get("importance"), dict):
            return record
    if not compute:
        raise NotFound(
            f"the importance of runs:/{run_id}/{artifact_path} is not computed yet",
            field="importance",
        )
    loaded = load_logged_model(
        tracking, run_id, artifact_path, trusted=trusted, trusted_types=trusted_types
    )
    importance, rows, kind = _importance(loaded, None)
    record = {
        "importance": importance,
        "rows": rows,
        "explainer": kind,
        "sample_sha256": sample_sha,
    }
    try:
        tracking.log_artifact_stream(run_id, path, io.BytesIO(json.dumps(record).encode()))
    except LoopmlError as exc:
        # Keeping the result is an optimisation: without it the next card recomputes.
        logger.warning("could not keep the importance of runs:/%s/%s: %s", run_id, path, exc)
    return record
