"""The model registry, the fluent way: ``lm.registry.register(...)``, ``set_alias(...)``.

Examples
--------
>>> import loopml as lm
>>> info = lm.log_model(model, "model", input_example=X.head())        # doctest: +SKIP
>>> v = lm.registry.register(info.uri, "churn")                          # doctest: +SKIP
>>> lm.registry.set_alias("churn", "champion", v.version, reason="beats v1")  # doctest: +SKIP
>>> lm.models.load("churn@champion").predict(X)                          # doctest: +SKIP
"""

from __future__ import annotations

import threading
from typing import Any

from loopml.entities.registry import AuditEntry, ModelVersion, RegisteredModel
from loopml.registry import gating as _gating  # noqa: F401 - registers the gate hooks
from loopml.registry.service import RegistryService

_lock = threading.Lock()
_cache: dict[tuple[str, ...], RegistryService] = {}


def get_service() -> RegistryService:
    """The registry service for the current settings."""
    from loopml.config import load_settings
    from loopml.store.registry import open_registry_stores
    from loopml.tracking.fluent import get_service as tracking_service

    settings = load_settings()
    key = (settings.resolved_store_uri, settings.resolved_artifact_uri, settings.tracking_uri or "")
    tracking = tracking_service()
    with _lock:
        service = _cache.get(key)
        if service is None or service.tracking is not tracking:
            stores = open_registry_stores(settings)
            service = RegistryService(stores.registry, tracking, stores.lineage)
            _cache.clear()
            _cache[key] = service
        return service


def register(
    model_uri: str, name: str, *, description: str = "", tags: dict[str, Any] | None = None
) -> ModelVersion:
    """Register a logged model as a new version."""
    return get_service().register(model_uri, name, description=description, tags=tags)


def get_model_version(name: str, version: int) -> ModelVersion:
    """One version."""
    return get_service().get_version(name, version)


def resolve(spec: str) -> ModelVersion:
    """The version ``name@alias`` or ``name/3`` names."""
    return get_service().resolve(spec)


def list_models() -> list[RegisteredModel]:
    """Every registered model."""
    return get_service().list_models()


def versions(name: str) -> list[ModelVersion]:
    """A model's versions, oldest first."""
    return get_service().versions(name)


def set_alias(name: str, alias: str, version: int, *, reason: str = "") -> int | None:
    """Point an alias at a version (``champion`` needs a reason); audited."""
    return get_service().set_alias(name, alias, version, reason=reason)


def delete_alias(name: str, alias: str, *, reason: str = "") -> int:
    """Remove an alias; audited."""
    return get_service().delete_alias(name, alias, reason=reason)


def archive(name: str, version: int, *, reason: str = "") -> None:
    """Archive a version; audited."""
    get_service().archive(name, version, reason=reason)


def transition(name: str, version: int, status: str, *, reason: str = "") -> None:
    """Move a version to ``READY`` or ``ARCHIVED``."""
    service = get_service()
    if status == "ARCHIVED":
        service.archive(name, version, reason=reason)
    elif status == "READY":
        service.restore(name, version, reason=reason)
    else:
        from loopml.errors import InvalidInput

        raise InvalidInput("status must be READY or ARCHIVED", field="status")


def audit(name: str) -> list[AuditEntry]:
    """Every change to a model, oldest first."""
    return get_service().audit(name)


def card(name: str, version: int, *, format: str = "markdown") -> str:
    """The version's model card (Markdown or HTML)."""
    return get_service().card(name, version, format=format)


__all__ = [
    "RegistryService",
    "archive",
    "audit",
    "card",
    "delete_alias",
    "get_model_version",
    "get_service",
    "list_models",
    "register",
    "resolve",
    "set_alias",
    "transition",
    "versions",
]
