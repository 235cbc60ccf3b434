"""The XGBoost flavor: native JSON, rebuilt from a whitelist of xgboost classes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

from loopml.models._flavor_common import _describe, _is_fitted, _loaded_module

# --------------------------------------------------------------------------------------------
# XGBoost
# --------------------------------------------------------------------------------------------


class XGBoostBoosterModel:
    """A loaded ``xgboost.Booster`` with a ``predict`` that takes a DataFrame.

    Parameters
    ----------
    booster : xgboost.Booster
        The loaded booster.
    """

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, data: pd.DataFrame) -> np.ndarray[Any, Any]:
        """Predict through a ``DMatrix`` built from the frame.

        Parameters
        ----------
        data : pandas.DataFrame
            Inputs, one column per feature.

        Returns
        -------
        numpy.ndarray
            Whatever the booster's objective outputs (probabilities, values, margins).
        """
        import numpy as np
        import xgboost

        return np.asarray(self.booster.predict(xgboost.DMatrix(data)))


class XGBoostFlavor:
    """XGBoost models as native JSON: no pickle on save or load."""

    name = "xgboost"
    file = "model.json"
    classes = ("XGBClassifier", "XGBRegressor", "Booster")
    """The only xgboost classes a model is rebuilt as."""

    def _class_name(self, model: Any) -> str | None:
        xgboost = _loaded_module("xgboost")
        if xgboost is None:
            return None
        # Nearest whitelisted class: XGBRFClassifier is an XGBClassifier, and so on.
        for name in self.classes:
            if isinstance(model, getattr(xgboost, name)):
                return name
        return None

    def matches(self, model: Any) -> bool:
        """Whether ``model`` is an ``XGBClassifier``, an ``XGBRegressor`` or a ``Booster``.

        Parameters
        ----------
        model : Any
            The object being logged.

        Returns
        -------
        bool
            False whenever xgboost has not been imported.
        """
        return self._class_name(model) is not None

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write ``model.json`` with ``save_model``.

        Parameters
        ----------
        model : Any
            A fitted xgboost estimator or booster.
        directory : pathlib.Path
            The folder that receives ``model.json``.

        Returns
        -------
        dict
            ``{"file", "class"}``, the class being ``xgboost.<name>``.

        Raises
        ------
        InvalidInput
            When the model is not an xgboost model this flavor handles, or is not fitted.
        """
        name = self._class_name(model)
        if name is None:
            raise InvalidInput(
                f"the xgboost flavor cannot store a {_describe(model)}; supported are "
                f"{', '.join('xgboost.' + c for c in self.classes)}",
                field="model",
            )
        if not _is_fitted(model):
            raise InvalidInput(f"the {name} is not fitted; fit it before logging", field="model")
        model.save_model(str(directory / self.file))
        return {"file": self.file, "class": f"xgboost.{name}"}

    def predict_example(self, model: Any, data: pd.DataFrame) -> Any:
        """Predict with the model as logged, the way the loaded model will (for signatures).

        Parameters
        ----------
        model : Any
            The xgboost model being logged.
        data : pandas.DataFrame
            The input example.

        Returns
        -------
        Any
            The predictions; a booster's go through a ``DMatrix``.
        """
        if self._class_name(model) == "Booster":
            return XGBoostBoosterModel(model).predict(data)
        return model.predict(data)

    def load(
        self, directory: Path, details: dict[str, Any], *, trusted: bool, trusted_types: list[str]
    ) -> Any:
        """Rebuild the recorded xgboost class and ``load_model`` the JSON into it.

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
        Any
            The estimator itself, or an :class:`XGBoostBoosterModel` for a booster.

        Raises
        ------
        InvalidInput
            When the recorded class is not one of :attr:`classes`.
        """
        recorded = str(details.get("class", ""))
        module, _, name = recorded.partition(".")
        if module != "xgboost" or name not in self.classes:
            raise InvalidInput(
                f"refusing to rebuild an XGBoost model as {recorded!r}; allowed: "
                f"{', '.join('xgboost.' + c for c in self.classes)}",
                field="flavor_details",
            )
        import xgboost

        model = getattr(xgboost, name)()
        model.load_model(str(directory / self.file))
        return XGBoostBoosterModel(model) if name == "Booster" else model
