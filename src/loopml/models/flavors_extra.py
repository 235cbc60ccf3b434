"""Model flavors for XGBoost, LightGBM and PyTorch, each stored in its library's own format.

- ``xgboost``: ``XGBClassifier``, ``XGBRegressor`` and ``Booster``, saved as native JSON
  (``model.json``) and rebuilt from a whitelist of xgboost classes.
- ``lightgbm``: ``LGBMClassifier``, ``LGBMRegressor`` and ``Booster``, saved as the booster's
  native text (``model.txt``); a classifier's labels are kept as JSON in the manifest so the
  loaded model answers with the original labels.
- ``torch``: a ``torch.nn.Module`` saved as TorchScript (``model.pt``: scripted, or traced on
  the input example when scripting fails), or else as a ``state_dict`` (``state_dict.pt``)
  plus an import reference to the module's class.

None of these formats is a pickle of arbitrary Python objects. Every library is imported only
when one of its models is saved or loaded, and :meth:`matches` never imports one: loopml works
without any of them installed.

The flavors join the registry through :func:`register_extra_flavors`, ahead of the scikit-learn
flavor (XGBoost and LightGBM estimators follow scikit-learn's API too).
"""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, PermissionDenied

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from loopml.models.flavors import Flavor

_INPUT_EXAMPLE = "input_example.json"
"""Written by :mod:`loopml.models.storage` before the flavor saves (kept in step with it)."""


def _loaded_module(name: str) -> Any:
    """The module ``name`` if something already imported it, else None (never imports)."""
    return sys.modules.get(name)


def _is_fitted(model: Any) -> bool:
    checker = getattr(model, "__sklearn_is_fitted__", None)
    return bool(checker()) if callable(checker) else True


def _describe(model: Any) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _read_input_example(directory: Path) -> pd.DataFrame | None:
    path = directory / _INPUT_EXAMPLE
    if not path.is_file():
        return None
    import pandas as pd

    return pd.read_json(io.StringIO(path.read_text()), orient="split")


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


# --------------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------------


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silence only torch's "`torch.jit.<name>` is deprecated" notices.

    The storage format is loopml's choice, so the notice tells the user nothing they can act
    on; any other warning still goes through.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"`torch\.jit\.\w+` is deprecated",
            category=DeprecationWarning,
        )
        yield


def _frame_to_tensor(frame: pd.DataFrame, columns: list[str] | None) -> Any:
    """A float32 CPU tensor of the frame's columns (``columns`` order when given)."""
    import numpy as np
    import torch

    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InvalidInput(
                f"input is missing column(s): {', '.join(missing)}", field=missing[0]
            )
        frame = frame[columns]
    for column in frame.columns:
        try:
            frame[column].to_numpy(dtype=np.float32)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"column {column!r} must hold numbers for a PyTorch model "
                f"(got {frame[column].dtype})",
                field=str(column),
            ) from None
    return torch.from_numpy(frame.to_numpy(dtype=np.float32))


class TorchModel:
    """A loaded PyTorch module whose ``predict`` takes a DataFrame.

    Parameters
    ----------
    module : torch.nn.Module
        A TorchScript module or a rebuilt ``nn.Module``, put in eval mode.
    columns : list of str, optional
        The input columns in the order the module expects; None to take the frame as is.
    """

    def __init__(self, module: Any, columns: list[str] | None) -> None:
        self.module = module
        self.columns = columns

    def predict(self, data: pd.DataFrame) -> np.ndarray[Any, Any]:
        """Run the module on the frame as a float32 tensor, without gradients.

        Parameters
        ----------
        data : pandas.DataFrame
            Numeric inputs.

        Returns
        -------
        numpy.ndarray
            The module's output tensor as an array.

        Raises
        ------
        InvalidInput
            When a column is missing or not numeric, or the module does not return a tensor.
        """
        import torch

        tensor = _frame_to_tensor(data, self.columns)
        with torch.no_grad():
            output = self.module(tensor)
        if not isinstance(output, torch.Tensor):
            raise InvalidInput(
                f"the PyTorch model returned a {type(output).__name__}, not a tensor",
                field="model",
            )
        return output.detach().cpu().numpy()


def _class_reference(cls: type) -> str | None:
    """``module:qualname`` when the class can be imported by that name later, else None."""
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return None
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    required = [
        p
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    return None if required else f"{cls.__module__}:{cls.__qualname__}"


def _import_module_class(reference: str) -> type:
    import torch

    module_name, _, qualname = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidInput(
            f"cannot import the model class {reference!r}: {exc}", field="model"
        ) from exc
    if not (isinstance(target, type) and issubclass(target, torch.nn.Module)):
        raise InvalidInput(f"{reference!r} is not a torch.nn.Module", field="model")
    return target


class TorchFlavor:
    """PyTorch modules as TorchScript, or as a ``state_dict`` plus the module's class.

    Saving tries, in order: ``torch.jit.script``; ``torch.jit.trace`` on the input example
    (in eval mode); and, when the module's class is importable and takes no required
    constructor arguments, its ``state_dict`` (tensors only) with a ``module:qualname``
    reference. A trace that torch warns may be wrong is set aside for the ``state_dict``
    when that is possible.
    """

    name = "torch"
    script_file = "model.pt"
    state_file = "state_dict.pt"

    def matches(self, model: Any) -> bool:
        """Whether ``model`` is a ``torch.nn.Module``.

        Parameters
        ----------
        model : Any
            The object being logged.

        Returns
        -------
        bool
            False whenever torch has not been imported.
        """
        torch = _loaded_module("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write ``model.pt`` (TorchScript) or ``state_dict.pt``.

        Parameters
        ----------
        model : torch.nn.Module
            The module; its train/eval mode is left as it was.
        directory : pathlib.Path
            The folder that receives the file; an ``input_example.json`` already in it is
            used for tracing and fixes the input column order.

        Returns
        -------
        dict
            ``{"format": "torchscript", "file", "method", "columns"}`` or
            ``{"format": "state_dict", "file", "class", "columns"}``.

        Raises
        ------
        InvalidInput
            When the module is none of the above can store it.
        """
        import torch

        if not isinstance(model, torch.nn.Module):
            raise InvalidInput(f"the torch flavor cannot store a {_describe(model)}", field="model")
        example = _read_input_example(directory)
        columns = [str(c) for c in example.columns] if example is not None else None
        reference = _class_reference(type(model))
        problems: list[str] = []
        was_training = model.training
        model.eval()
        try:
            with _quiet_torchscript():
                try:
                    compiled: Any = torch.jit.script(model)
                    method = "script"
                except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
                    compiled, method = None, ""
                    problems.append(f"torch.jit.script failed: {_first_line(exc)}")
                if compiled is None and example is not None:
                    compiled = self._trace(model, example, columns, problems, reference)
                    method = "trace"
                if compiled is not None:
                    torch.jit.save(compiled, str(directory / self.script_file))
                    return {
                        "format": "torchscript",
                        "file": self.script_file,
                        "method": method,
                        "columns": columns,
                    }
        finally:
            model.train(was_training)
        return self._save_state_dict(model, directory, columns, reference, problems)

    @staticmethod
    def _trace(
        model: Any,
        example: pd.DataFrame,
        columns: list[str] | None,
        problems: list[str],
        reference: str | None,
    ) -> Any:
        """Trace on the example; None if that fails, or torch doubts it and a fallback exists."""
        import torch

        tracer_warning: type[Warning] = torch.jit.TracerWarning  # type: ignore[attr-defined]
        inputs = _frame_to_tensor(example, columns)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", tracer_warning)
            try:
                with torch.no_grad():
                    traced = torch.jit.trace(model, inputs)  # type: ignore[no-untyped-call]
            except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
                problems.append(f"torch.jit.trace failed: {_first_line(exc)}")
                traced = None
        doubts = [w for w in caught if issubclass(w.category, tracer_warning)]
        if traced is not None and doubts and reference is not None:
            problems.append(f"torch.jit.trace may be wrong: {doubts[0].message}")
            return None
        for record in caught:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
        return traced

    def _save_state_dict(
        self,
        model: Any,
        directory: Path,
        columns: list[str] | None,
        reference: str | None,
        problems: list[str],
    ) -> dict[str, Any]:
        import torch

        state = model.state_dict()
        if reference is None:
            problems.append(
                f"its class {type(model).__qualname__} cannot be rebuilt from a state_dict (it "
                "must live in an importable module and take no required constructor arguments)"
            )
        elif not all(isinstance(v, torch.Tensor) for v in state.values()):
            problems.append("its state_dict holds values other than tensors")
        else:
            tensors = {key: value.detach().cpu() for key, value in state.items()}
            torch.save(tensors, str(directory / self.state_file))
            return {
                "format": "state_dict",
                "file": self.state_file,
                "class": reference,
                "columns": columns,
            }
        if not any(p.startswith("torch.jit.trace") for p in problems):
            problems.append("no input_example was given to trace it with")
        raise InvalidInput(
            f"cannot store the {_describe(model)} without pickle: " + "; ".join(problems),
            field="model",
        )

    def load(
        self, directory: Path, details: dict[str, Any], *, trusted: bool, trusted_types: list[str]
    ) -> Any:
        """Load TorchScript with ``torch.jit.load``, or rebuild the class from its state_dict.

        Parameters
        ----------
        directory : pathlib.Path
            The verified model files.
        details : dict
            What :meth:`save` returned.
        trusted, trusted_types
            Unused: neither format unpickles Python objects (the state_dict is read with
            ``weights_only=True``).

        Returns
        -------
        TorchModel
            The module in eval mode, on the CPU.

        Raises
        ------
        InvalidInput
            When the format is unknown or the class cannot be imported or rebuilt.
        """
        import torch

        kind = details.get("format")
        raw_columns = details.get("columns")
        columns = [str(c) for c in raw_columns] if isinstance(raw_columns, list) else None
        if kind == "torchscript":
            with _quiet_torchscript():
                module = torch.jit.load(  # type: ignore[no-untyped-call]
                    str(directory / self.script_file), map_location="cpu"
                )
        elif kind == "state_dict":
            try:
                state = torch.load(
                    str(directory / self.state_file), map_location="cpu", weights_only=True
                )
            except pickle.UnpicklingError as exc:
                raise PermissionDenied(
                    f"refusing to load {self.state_file}: it holds more than tensors "
                    f"({_first_line(exc)})",
                    field="model",
                ) from exc
            if not isinstance(state, dict) or not all(
                isinstance(v, torch.Tensor) for v in state.values()
            ):
                raise InvalidInput(
                    f"{self.state_file} is not a state_dict of tensors", field="model"
                )
            cls = _import_module_class(str(details.get("class", "")))
            try:
                module = cls()
                module.load_state_dict(state, strict=True)
            except (TypeError, RuntimeError) as exc:
                raise InvalidInput(
                    f"cannot rebuild {details.get('class')!r} from its state_dict: "
                    f"{_first_line(exc)}",
                    field="model",
                ) from exc
        else:
            raise InvalidInput(f"unknown PyTorch model format {kind!r}", field="flavor_details")
        module.eval()
        return TorchModel(module, columns)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------


def extra_flavors() -> list[Flavor]:
    """New instances of the flavors this module defines, in the order they are tried.

    Returns
    -------
    list of Flavor
        XGBoost, LightGBM, PyTorch.
    """
    return [XGBoostFlavor(), LightGBMFlavor(), TorchFlavor()]


def register_extra_flavors(registry: dict[str, Flavor]) -> None:
    """Add the XGBoost, LightGBM and PyTorch flavors ahead of the scikit-learn flavor.

    ``choose_flavor`` takes the first flavor that matches, and XGBoost and LightGBM
    estimators also look like scikit-learn ones, so these go before ``sklearn``. Calling this
    again changes nothing.

    Parameters
    ----------
    registry : dict
        Flavor name to flavor, in the order they are tried; updated in place.
    """
    extras = {flavor.name: flavor for flavor in extra_flavors()}
    reordered: dict[str, Flavor] = {}
    for name, flavor in registry.items():
        if name == "sklearn":
            for extra_name, extra in extras.items():
                reordered[extra_name] = registry.get(extra_name, extra)
        if name not in extras:
            reordered[name] = flavor
    for extra_name, extra in extras.items():
        reordered.setdefault(extra_name, registry.get(extra_name, extra))
    registry.clear()
    registry.update(reordered)
