"""Helpers shared by the XGBoost, LightGBM and PyTorch flavors."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


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
