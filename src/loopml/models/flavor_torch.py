"""The PyTorch flavor: TorchScript, or a tensors-only ``state_dict`` plus a class reference."""

from __future__ import annotations

import importlib
import inspect
import pickle
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, PermissionDenied

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

from loopml.models._flavor_common import _describe, _loaded_module, _read_input_example

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
            When none of these ways can store the module.
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

    def predict_example(self, model: Any, data: pd.DataFrame) -> Any:
        """Run the module on the example in eval mode, as the loaded model will (for signatures).

        Parameters
        ----------
        model : torch.nn.Module
            The module being logged; its train/eval mode is left as it was.
        data : pandas.DataFrame
            The input example.

        Returns
        -------
        numpy.ndarray
            The module's output.
        """
        was_training = model.training
        model.eval()
        try:
            return TorchModel(model, None).predict(data)
        finally:
            model.train(was_training)

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
        PermissionDenied
            When ``state_dict.pt`` holds anything that ``weights_only`` loading refuses.
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
