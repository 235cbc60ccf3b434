"""Labels read off the probabilities equal ``predict`` wherever the server derives them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from loopml.serving._predict import make_predictor


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, Any]:
    return load_iris(return_X_y=True, as_frame=True)


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression(max_iter=500),
        RandomForestClassifier(n_estimators=10, random_state=0),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        CalibratedClassifierCV(SVC(), ensemble=False),
    ],
    ids=["logistic", "forest", "pipeline", "calibrated-svc"],
)
def test_answers_equal_predict_and_predict_proba(
    iris: tuple[pd.DataFrame, Any], model: Any
) -> None:
    X, y = iris
    model.fit(X, y)
    labels, probabilities = make_predictor(model, True, X.head())(X)
    assert labels == model.predict(X).tolist()
    assert np.allclose(probabilities, model.predict_proba(X))


def test_a_listed_classifier_calls_only_predict_proba(
    iris: tuple[pd.DataFrame, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    predict = make_predictor(model, True, X.head())
    monkeypatch.setattr(model, "predict", lambda frame: pytest.fail("predict was called"))
    labels, probabilities = predict(X)
    assert len(labels) == len(X) and probabilities is not None


def test_models_without_probabilities_answer_labels_only(iris: tuple[pd.DataFrame, Any]) -> None:
    X, y = iris
    model = SVC().fit(X, y)
    labels, probabilities = make_predictor(model, False, X.head())(X)
    assert labels == model.predict(X).tolist() and probabilities is None
