"""One model call per batch: class labels read off the probabilities where that is exact.

A served classifier answers both labels and probabilities. For the scikit-learn estimators
named here, ``predict`` is by construction the class of the largest probability (the
argmax of the same scores), so the server calls ``predict_proba`` once and derives the
labels instead of scoring every batch twice; on small models that halves the model time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: scikit-learn classifiers whose ``predict`` is ``classes_[argmax(predict_proba)]``.
ARGMAX_CLASSIFIERS = frozenset(
    {
        "BernoulliNB",
        "CategoricalNB",
        "ComplementNB",
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "ExtraTreesClassifier",
        "GaussianNB",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
        "LogisticRegression",
        "MLPClassifier",
        "MultinomialNB",
        "RandomForestClassifier",
    }
)

Predictor = Callable[[pd.DataFrame], tuple[Sequence[Any], Sequence[Sequence[float]] | None]]


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)  # a scikit-learn Pipeline
    return steps[-1][1] if steps else model


def _jsonable(values: Any) -> list[Any]:
    return list(np.asarray(values).tolist())


def make_predictor(model: Any, has_proba: bool, example: pd.DataFrame | None) -> Predictor:
    """The batch function of a served model: labels, and probabilities when it has them.

    Labels come from the probabilities only for the classifiers in
    :data:`ARGMAX_CLASSIFIERS` (directly or as a pipeline's last step) with one output
    column, and only when that gives exactly ``predict``'s answer on the input example.
    """
    final = _final_estimator(model)
    classes = getattr(final, "classes_", None)
    derive = (
        has_proba
        and type(final).__name__ in ARGMAX_CLASSIFIERS
        and type(final).__module__.startswith("sklearn.")
        and classes is not None
        and np.ndim(classes) == 1
    )
    if derive and example is not None and len(example):
        expected = np.asarray(model.predict(example))
        derived = np.asarray(classes)[np.argmax(model.predict_proba(example), axis=1)]
        derive = bool(np.array_equal(expected, derived))

    def predict(frame: pd.DataFrame) -> tuple[Sequence[Any], Sequence[Sequence[float]] | None]:
        if derive:
            probabilities = np.asarray(model.predict_proba(frame))
            labels = np.asarray(classes)[np.argmax(probabilities, axis=1)]
            return _jsonable(labels), _jsonable(probabilities)
        predictions = _jsonable(model.predict(frame))
        return predictions, (_jsonable(model.predict_proba(frame)) if has_proba else None)

    return predict
