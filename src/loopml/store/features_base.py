"""The store interface of feature-store definitions: entities, feature views, services.

Definitions are versioned per ``(kind, name)``: storing a definition equal to the latest
version is a no-op, anything else becomes the next version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class FeatureDefinitionRecord:
    """One stored version of an entity, feature view or feature service definition.

    Attributes
    ----------
    kind : str
        ``entity``, ``feature_view`` or ``feature_service``.
    name : str
        Unique per kind.
    version : int
        Counts up from 1.
    definition : dict
        The validated definition as JSON-able data.
    created_time : int
        Epoch milliseconds.
    """

    kind: str
    name: str
    version: int
    definition: dict[str, Any]
    created_time: int


@runtime_checkable
class FeatureStore(Protocol):
    """Persists versioned feature-store definitions."""

    def put_feature_definition(
        self, kind: str, name: str, definition: dict[str, Any]
    ) -> tuple[FeatureDefinitionRecord, bool]:
        """Store ``definition`` as a new version unless it equals the latest; True if new."""
        ...

    def get_feature_definition(
        self, kind: str, name: str, version: int | None = None
    ) -> FeatureDefinitionRecord:
        """Return one version (the latest by default) or raise :class:`NotFound`."""
        ...

    def list_feature_definitions(self, kind: str | None = None) -> list[FeatureDefinitionRecord]:
        """Return the latest version of every definition, by kind and name."""
        ...

    def list_feature_definition_versions(
        self, kind: str, name: str
    ) -> list[FeatureDefinitionRecord]:
        """Return every version of one definition, oldest first."""
        ...


@dataclass(frozen=True)
class FeatureWatermark:
    """How far one feature view is materialized into one online store.

    Attributes
    ----------
    view : str
        The feature view name.
    target : str
        The online store, as its URI without credentials.
    view_version : int
        The view version materialized; a new version starts again from the beginning.
    watermark : int
        Epoch microseconds: every event before it has been written.
    updated_time : int
        Epoch milliseconds of the last commit.
    """

    view: str
    target: str
    view_version: int
    watermark: int
    updated_time: int


@runtime_checkable
class FeatureWatermarkStore(Protocol):
    """Persists materialization watermarks, one per feature view and online store."""

    def get_feature_watermark(self, view: str, target: str) -> FeatureWatermark | None:
        """Return the committed watermark, ``None`` when the view was never materialized."""
        ...

    def set_feature_watermark(
        self, view: str, target: str, view_version: int, watermark: int
    ) -> FeatureWatermark:
        """Store (insert or replace) the watermark of ``view`` in ``target``."""
        ...
