"""Model flavors: how each kind of model is written to files and read back, safely.

- ``sklearn``: scikit-learn estimators and pipelines, stored with skops (no pickle); loading
  trusts scikit-learn's own types and whatever the caller lists in ``trusted_types``.
- ``python``: a :class:`PythonModel` subclass, stored as its import path plus JSON state.
- ``pickle``: anything else, only when asked for, and loaded only with ``trusted=True``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Protocol

from loopml.errors import InvalidInput, PermissionDenied


class PythonModel:
    """Base class of custom models: implement :meth:`predict`.

    State is saved as JSON (by default the instance ``__dict__``); override
    :meth:`get_state` and :meth:`from_state` for anything else. The class itself is imported
    by its module path when the model loads, so it must live in an importable module.
    """

    def predict(self, data: Any) -> Any:
        """Predict for a DataFrame of inputs."""
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """JSON-able state to save."""
        return dict(vars(self))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PythonModel:
        """Rebuild an instance from :meth:`get_state` output."""
        instance = cls.__new__(cls)
        vars(instance).update(state)
        return instance


class Flavor(Protocol):
    """Writes a model to a folder and reads it back."""

    name: str

    def matches(self, model: Any) -> bool:
        """Whether this flavor handles the model."""
        ...

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write the model's files; return flavor details for the manifest."""
        ...

    def load(
        self, directory: Path, details: dict[str, Any], *, trusted: bool, trusted_types: list[str]
    ) -> Any:
        """Read a model written by :meth:`save`."""
        ...


class SklearnFlavor:
    """scikit-learn estimators and pipelines, via skops."""

    name = "sklearn"
    file = "model.skops"

    def matches(self, model: Any) -> bool:
        """Estimators from scikit-learn, or objects following its API."""
        return type(model).__module__.startswith("sklearn") or (
            hasattr(model, "get_params") and hasattr(model, "fit") and hasattr(model, "predict")
        )

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Dump with skops and record the types it will need trusted."""
        import skops.io as sio

        path = directory / self.file
        sio.dump(model, path)
        return {"file": self.file, "untrusted_types": sio.get_untrusted_types(file=path)}

    def load(
        self, directory: Path, details: dict[str, Any], *, trusted: bool, trusted_types: list[str]
    ) -> Any:
        """Load, refusing types outside scikit-learn's unless the caller trusts them."""
        import skops.io as sio

        path = directory / self.file
        needed = sio.get_untrusted_types(file=path)
        refused = sorted(set(needed) - set(trusted_types)) if not trusted else []
        if refused:
            raise PermissionDenied(
                f"the model needs types skops does not trust by default: {', '.join(refused)}; "
                "pass trusted_types=[...] naming them if you trust this model's source",
                field="trusted_types",
            )
        return sio.load(path, trusted=needed)


class PythonFlavor:
    """:class:`PythonModel` subclasses: import path plus JSON state."""

    name = "python"
    file = "python_model.json"

    def matches(self, model: Any) -> bool:
        """Instances of :class:`PythonModel`."""
        return isinstance(model, PythonModel)

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write the class path and the JSON state."""
        cls = type(model)
        if cls.__module__ == "__main__":
            raise InvalidInput(
                f"{cls.__qualname__} is defined in __main__: move it to an importable module "
                "so the model can be loaded elsewhere",
                field="model",
            )
        try:
            state = json.dumps(model.get_state())
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"the state of {cls.__qualname__} is not JSON-able ({exc}); override "
                "get_state() and from_state()",
                field="model",
            ) from exc
        reference = f"{cls.__module__}:{cls.__qualname__}"
        (directory / self.file).write_text(
            json.dumps({"class": reference, "state": json.loads(state)})
        )
        return {"file": self.file, "class": reference}

    def load(
        self, directory: Path, details: dict[str, Any], *, trusted: bool, trusted_types: list[str]
    ) -> Any:
        """Import the class and rebuild the instance."""
        data = json.loads((directory / self.file).read_text())
        module_name, _, qualname = data["class"].partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise InvalidInput(
                f"cannot import model class {data['class']!r}: {exc}", field="model"
            ) from exc
        if not (isinstance(target, type) and issubclass(target, PythonModel)):
            raise InvalidInput(f"{data['class']!r} is not a PythonModel", field="model")
        return target.from_state(data["state"])


class PickleFlavor:
    """Anything picklable: written only when asked for, read only with ``trusted=True``."""

    name = "pickle"
    file = "model.pkl"

    def matches(self, model: Any) -> bool:
        """Never chosen automatically."""
        return False

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Pickle the model."""
        import pickle

        with (directory / self.file).open("wb") as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return {"file": self.file}

    def load(
        self, directory: Path, details: dict[str, Any], *, trusted: bool, trusted_types: list[str]
    ) -> Any:
        """Unpickle, only for a caller who trusts the source."""
        if not trusted:
            raise PermissionDenied(
                "refusing to unpickle a model: pickle runs arbitrary code; pass trusted=True "
                "only for models from a source you trust",
                field="trusted",
            )
        import pickle

        with (directory / self.file).open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - the caller passed trusted=True


FLAVORS: dict[str, Flavor] = {f.name: f for f in (SklearnFlavor(), PythonFlavor(), PickleFlavor())}


def _register_extras() -> None:
    # Imported here: the extra flavors' module imports this one for the Flavor protocol.
    from loopml.models.flavors_extra import register_extra_flavors

    register_extra_flavors(FLAVORS)


_register_extras()


def choose_flavor(model: Any, flavor: str | None) -> Flavor:
    """The flavor for a model: the named one, else the first that matches."""
    if flavor is not None:
        if flavor not in FLAVORS:
            raise InvalidInput(
                f"unknown flavor {flavor!r}; known: {', '.join(FLAVORS)}", field="flavor"
            )
        return FLAVORS[flavor]
    for candidate in FLAVORS.values():
        if candidate.matches(model):
            return candidate
    raise InvalidInput(
        f"cannot log a {type(model).__module__}.{type(model).__qualname__}: supported are "
        "scikit-learn, XGBoost and LightGBM estimators, torch modules and "
        "lm.models.PythonModel subclasses (or flavor='pickle')",
        field="model",
    )
