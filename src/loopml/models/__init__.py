"""Model flavors, safe storage, loading and explanations: ``lm.log_model``, ``lm.models.load``."""

from __future__ import annotations

from typing import Any

from loopml.models.explain import Explanation, explain, global_importance
from loopml.models.flavors import PythonModel
from loopml.models.signature import infer_signature
from loopml.models.storage import LoadedModel, ModelInfo


def log_model(
    model: Any,
    name: str = "model",
    *,
    signature: dict[str, Any] | None = None,
    input_example: Any = None,
    flavor: str | None = None,
    registered_model_name: str | None = None,
    background: Any = None,
) -> ModelInfo:
    """Store a model in the active run (scikit-learn, PythonModel, or pickle on request).

    The signature is inferred from ``input_example`` when not given. ``background`` (a
    DataFrame, at most 200 rows kept, sampled with a fixed seed) is the sample explanations
    integrate over; without it the input example serves. With ``registered_model_name`` the
    model is also registered as a new version.
    """
    from loopml.models.storage import log_model as store_model
    from loopml.tracking.fluent import _run_id, get_service

    info = store_model(
        get_service(),
        _run_id(),
        model,
        name,
        flavor=flavor,
        signature=signature,
        input_example=input_example,
        background=background,
    )
    if registered_model_name is not None:
        from loopml.registry import register

        register(info.uri, registered_model_name)
    return info


def load(
    spec: str, *, trusted: bool = False, trusted_types: list[str] | None = None
) -> LoadedModel:
    """Load ``name@alias``, ``name/3``, ``models:/...`` or ``runs:/<id>/<path>``."""
    from loopml.registry import get_service

    return get_service().load(spec, trusted=trusted, trusted_types=trusted_types)


__all__ = [
    "Explanation",
    "LoadedModel",
    "ModelInfo",
    "PythonModel",
    "explain",
    "global_importance",
    "infer_signature",
    "load",
    "log_model",
]
