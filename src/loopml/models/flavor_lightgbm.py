"""The LightGBM flavor: the booster's native text, with classifier labels kept as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

from loopml.models._flavor_common import _describe, _is_fitted, _loaded_module

# --------------------------------------------------------------------------------------------
# LightGBM
# --------------------------------------------------------------------------------------------


class LightGBMModel:
    """A LightGBM booster loaded from native text, with the scikit-learn ``predict``.

    Parameters
    ----------
    booster : lightgbm.Booster
        The loaded booster.
    """

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, data: pd.DataFrame) -> np.ndarray[Any, Any]:
        """The booster's output (values for a regressor).

        Parameters
        ----------
        data : pandas.DataFrame
            Inputs, one column per feature.

        Returns
        -------
        numpy.ndarray
            The booster's predictions.
        """
        import numpy as np

        return np.asarray(self.booster.predict(data))


class LightGBMClassifierModel(LightGBMModel):
    """A LightGBM classifier: labels from ``predict``, probabilities from ``predict_proba``.

    Parameters
    ----------
    booster : lightgbm.Booster
        The loaded booster.
    classes : numpy.ndarray
        The classifier's ``classes_``, in the order of the booster's outputs.
    raw : bool
        True for a custom (callable) objective, where scikit-learn's ``LGBMClassifier``
        returns the booster's raw scores from both methods; kept the same here.
    """

    def __init__(self, booster: Any, classes: np.ndarray[Any, Any], raw: bool = False) -> None:
        super().__init__(booster)
        self.classes_ = classes
        self.raw = raw

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray[Any, Any]:
        """Class probabilities, one column per class in ``classes_`` order.

        Parameters
        ----------
        data : pandas.DataFrame
            Inputs, one column per feature.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_rows, n_classes)`` (raw scores for a custom objective).
        """
        import numpy as np

        result = np.asarray(self.booster.predict(data))
        if self.raw or result.ndim != 1:
            return result
        return np.vstack((1.0 - result, result)).transpose()

    def predict(self, data: pd.DataFrame) -> np.ndarray[Any, Any]:
        """The most probable class of each row, as the original label.

        Parameters
        ----------
        data : pandas.DataFrame
            Inputs, one column per feature.

        Returns
        -------
        numpy.ndarray
            Labels drawn from ``classes_`` (raw scores for a custom objective).
        """
        import numpy as np

        probabilities = self.predict_proba(data)
        if self.raw:
            return probabilities
        return np.asarray(self.classes_[np.argmax(probabilities, axis=1)])


def _classes_to_json(classes: Any) -> dict[str, Any]:
    import numpy as np

    array = np.asarray(classes)
    if array.dtype.kind in "biuf":
        return {"classes": array.tolist(), "classes_dtype": array.dtype.str}
    values = array.tolist()
    if array.dtype.kind in "OU" and all(isinstance(v, str) for v in values):
        return {"classes": values, "classes_dtype": "object" if array.dtype.kind == "O" else "str"}
    raise InvalidInput(
        f"the classifier's classes have type {array.dtype}; only numbers, booleans and strings "
        "can be stored with a LightGBM model",
        field="model",
    )


def _classes_from_json(details: dict[str, Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    values = details.get("classes")
    dtype = str(details.get("classes_dtype", ""))
    if not isinstance(values, list) or not values:
        raise InvalidInput("the LightGBM classifier's classes are missing", field="flavor_details")
    if dtype == "object":
        return np.asarray(values, dtype=object)
    if dtype == "str":
        return np.asarray(values, dtype=str)
    if len(dtype) < 2 or dtype.lstrip("<>|=")[:1] not in ("b", "i", "u", "f"):
        raise InvalidInput(f"unsupported classes dtype {dtype!r}", field="flavor_details")
    return np.asarray(values, dtype=np.dtype(dtype))


class LightGBMFlavor:
    """LightGBM models as the booster's native text: no pickle on save or load."""

    name = "lightgbm"
    file = "model.txt"

    def _kind(self, model: Any) -> str | None:
        lightgbm = _loaded_module("lightgbm")
        if lightgbm is None:
            return None
        if isinstance(model, lightgbm.LGBMClassifier):
            return "classifier"
        if isinstance(model, lightgbm.LGBMRegressor):
            return "regressor"
        if isinstance(model, lightgbm.Booster):
            return "booster"
        return None

    def matches(self, model: Any) -> bool:
        """Whether ``model`` is an ``LGBMClassifier``, an ``LGBMRegressor`` or a ``Booster``.

        Parameters
        ----------
        model : Any
            The object being logged.

        Returns
        -------
        bool
            False whenever lightgbm has not been imported.
        """
        return self._kind(model) is not None

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write the booster's ``model.txt``; for a classifier, record its classes.

        Parameters
        ----------
        model : Any
            A fitted LightGBM estimator or booster.
        directory : pathlib.Path
            The folder that receives ``model.txt``.

        Returns
        -------
        dict
            ``{"file", "kind"}``, plus ``classes``, ``classes_dtype`` and ``raw`` for a
            classifier.

        Raises
        ------
        InvalidInput
            When the model is not a LightGBM model this flavor handles, is not fitted, or
            has classes that JSON cannot hold.
        """
        kind = self._kind(model)
        if kind is None:
            raise InvalidInput(
                f"the lightgbm flavor cannot store a {_describe(model)}; supported are "
                "lightgbm.LGBMClassifier, lightgbm.LGBMRegressor and lightgbm.Booster",
                field="model",
            )
        if not _is_fitted(model):
            raise InvalidInput(
                f"the {type(model).__name__} is not fitted; fit it before logging", field="model"
            )
        booster = model if kind == "booster" else model.booster_
        booster.save_model(str(directory / self.file))
        details: dict[str, Any] = {"file": self.file, "kind": kind}
        if kind == "classifier":
            details.update(_classes_to_json(model.classes_))
            details["raw"] = callable(getattr(model, "objective_", None))
        return details

    def predict_example(self, model: Any, data: pd.DataFrame) -> Any:
        """Predict with the model as logged, the way the loaded model will (for signatures).

        Parameters
        ----------
        model : Any
            The LightGBM model being logged.
        data : pandas.DataFrame
            The input example.

        Returns
        -------
        Any
            The model's ``predict`` output.
        """
        return model.predict(data)

    def load(
        self, directory: Path, details: dict[str, Any], *, trusted: bool, trusted_types: list[str]
    ) -> Any:
        """Read the booster from ``model.txt`` and wrap it.

        Parameters
        ----------
        directory : pathlib.Path
            The verified model files.
        details : dict
            What :meth:`save` returned.
        trusted, trusted_types
            Unused: the native format runs no code when loaded.

        Returns
        -------
        LightGBMModel
            A :class:`LightGBMClassifierModel` for a classifier.

        Raises
        ------
        InvalidInput
            When the recorded kind or classes are not understood.
        """
        kind = details.get("kind")
        if kind not in ("classifier", "regressor", "booster"):
            raise InvalidInput(f"unknown LightGBM model kind {kind!r}", field="flavor_details")
        import lightgbm

        booster = lightgbm.Booster(model_file=str(directory / self.file))
        if kind == "classifier":
            return LightGBMClassifierModel(
                booster, _classes_from_json(details), raw=bool(details.get("raw", False))
            )
        return LightGBMModel(booster)
