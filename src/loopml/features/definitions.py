"""Feature-store definitions in Python and their versioned storage.

An :class:`Entity` names the keys features are looked up by; a :class:`FeatureView` is a
timestamped source (a registered dataset or a Parquet file) with typed features and an
optional time-to-live; a :class:`FeatureService` is the named list of features a model uses.
:func:`apply` stores them: an unchanged definition keeps its version, a changed one becomes
the next version, and a change that would silently break training sets (a feature's dtype
or a join key) is refused unless ``force=True``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from loopml.config import load_settings
from loopml.errors import InvalidInput, NotFound
from loopml.store.features_base import FeatureDefinitionRecord, FeatureStore

ENTITY = "entity"
FEATURE_VIEW = "feature_view"
FEATURE_SERVICE = "feature_service"
KINDS = (ENTITY, FEATURE_VIEW, FEATURE_SERVICE)
# Declared dtypes and the DuckDB type each feature is cast to, so that a training set has
# the types its definition promises whatever the source file stored.
DTYPES: dict[str, str] = {
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Seconds a process reuses a view or service definition it read before reading it again:
#: an ``apply`` from another process is seen within this interval, one in this process at
#: once. Lookups resolve their features on every call, so this spares the metadata store a
#: query per view and call.
DEFINITIONS_CACHE_SECONDS = 10.0
_lock = threading.Lock()
_store: FeatureStore | None = None
_store_key: str | None = None
_latest_cache: dict[tuple[str, str, str], tuple[float, FeatureDefinitionRecord]] = {}


def check_identifier(value: Any, what: str, field_name: str) -> str:
    """Check a name is an identifier (letters, digits, ``_``), usable as a column name."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(
            f"{what} {value!r} must be an identifier: letters, digits and '_', "
            "not starting with a digit",
            field=field_name,
        )
    if "__" in value:
        # Output columns are named view__feature: a double underscore would be ambiguous.
        raise InvalidInput(f"{what} {value!r} must not contain '__'", field=field_name)
    return value


@dataclass(frozen=True)
class Entity:
    """What features describe, and the columns that identify it.

    Parameters
    ----------
    name : str
        An identifier, e.g. ``"driver"``.
    join_keys : sequence of str
        The key columns, e.g. ``["driver_id"]``; a single string is one key.
    description : str
        Free text.
    """

    name: str
    join_keys: Sequence[str]
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, "entity name", "name")
        keys = [self.join_keys] if isinstance(self.join_keys, str) else list(self.join_keys)
        if not keys:
            raise InvalidInput(
                f"entity {self.name!r} needs at least one join key", field="join_keys"
            )
        for key in keys:
            check_identifier(key, "join key", "join_keys")
        if len(set(keys)) != len(keys):
            raise InvalidInput(f"entity {self.name!r} repeats a join key", field="join_keys")
        object.__setattr__(self, "join_keys", tuple(keys))

    def to_definition(self) -> dict[str, Any]:
        """Return the JSON-able definition that is stored."""
        return {"join_keys": list(self.join_keys), "description": self.description}


@dataclass(frozen=True)
class Field:
    """A typed feature column of a view.

    Parameters
    ----------
    name : str
        The column in the source.
    dtype : str
        One of ``int32``, ``int64``, ``float32``, ``float64``, ``string``, ``bool``,
        ``timestamp``.
    """

    name: str
    dtype: str = "float64"

    def __post_init__(self) -> None:
        check_identifier(self.name, "feature name", "features")
        if self.dtype not in DTYPES:
            raise InvalidInput(
                f"feature {self.name!r} has dtype {self.dtype!r}; use one of " + ", ".join(DTYPES),
                field="dtype",
            )


@dataclass(frozen=True)
class FeatureView:
    """Features of one or more entities, read from a timestamped source.

    Parameters
    ----------
    name : str
        An identifier; output columns are named ``<view>__<feature>``.
    entities : sequence of Entity
        The entities whose join keys identify a row of the source.
    source : str
        A registered dataset (``"driver_stats"`` for the latest version at retrieval time,
        ``"driver_stats@v3"`` pinned) or a Parquet file path.
    timestamp_field : str
        The source's event-time column.
    features : sequence of Field
        The features the view offers.
    ttl : timedelta or None
        How long a value stays valid after its event time; None means forever.
    """

    name: str
    entities: Sequence[Entity]
    source: str
    timestamp_field: str = "event_timestamp"
    features: Sequence[Field] = field(default_factory=tuple)
    ttl: timedelta | None = None
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, "feature view name", "name")
        entities = list(self.entities)
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise InvalidInput(
                f"feature view {self.name!r} needs a list of Entity objects", field="entities"
            )
        if not isinstance(self.source, str) or not self.source.strip():
            raise InvalidInput(
                f"feature view {self.name!r} needs a source: a dataset name or a Parquet path",
                field="source",
            )
        check_identifier(self.timestamp_field, "timestamp field", "timestamp_field")
        features = list(self.features)
        if not features or not all(isinstance(f, Field) for f in features):
            raise InvalidInput(
                f"feature view {self.name!r} needs a list of Field objects", field="features"
            )
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise InvalidInput(f"feature view {self.name!r} repeats a feature", field="features")
        clash = set(names) & (set(self.join_keys) | {self.timestamp_field})
        if clash:
            raise InvalidInput(
                f"feature(s) {', '.join(sorted(clash))} of {self.name!r} are also keys or the "
                "timestamp",
                field="features",
            )
        if self.ttl is not None:
            if not isinstance(self.ttl, timedelta):
                raise InvalidInput("ttl must be a timedelta or None", field="ttl")
            if self.ttl <= timedelta(0):
                raise InvalidInput(
                    f"ttl of feature view {self.name!r} must be positive, got {self.ttl}",
                    field="ttl",
                )
        object.__setattr__(self, "entities", tuple(entities))
        object.__setattr__(self, "features", tuple(features))

    @property
    def join_keys(self) -> tuple[str, ...]:
        """The join keys of all its entities, in order."""
        return tuple(key for entity in self.entities for key in entity.join_keys)

    def to_definition(self) -> dict[str, Any]:
        """Return the JSON-able definition that is stored."""
        return {
            "entities": [e.name for e in self.entities],
            "join_keys": list(self.join_keys),
            "source": self.source,
            "timestamp_field": self.timestamp_field,
            "features": [{"name": f.name, "dtype": f.dtype} for f in self.features],
            "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
            "description": self.description,
        }


@dataclass(frozen=True)
class FeatureService:
    """The named list of features a model uses.

    Parameters
    ----------
    name : str
        An identifier.
    features : sequence of FeatureView or str
        Whole views, ``"view"`` names, or single features as ``"view:feature"``.
    """

    name: str
    features: Sequence[FeatureView | str]
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, "feature service name", "name")
        items = list(self.features)
        if not items:
            raise InvalidInput(f"feature service {self.name!r} lists no features", field="features")
        for item in items:
            if not isinstance(item, FeatureView | str):
                raise InvalidInput(
                    f"feature service {self.name!r}: {item!r} is neither a FeatureView nor "
                    "'view:feature'",
                    field="features",
                )
        object.__setattr__(self, "features", tuple(items))

    def references(self) -> list[str]:
        """The listed features as ``view`` or ``view:feature`` strings."""
        return [i.name if isinstance(i, FeatureView) else i for i in self.features]

    def to_definition(self) -> dict[str, Any]:
        """Return the JSON-able definition that is stored."""
        return {"features": self.references(), "description": self.description}


Definition = Entity | FeatureView | FeatureService


def current_store() -> tuple[str, FeatureStore]:
    """The definition store of the current settings, and the key naming it."""
    global _store, _store_key
    settings = load_settings()
    key = f"{settings.resolved_store_uri}|{settings.tracking_uri}"
    with _lock:
        if _store is None or key != _store_key:
            from loopml.store.registry import open_feature_store

            _store = open_feature_store(settings)
            _store_key = key
        return key, _store


def get_store() -> FeatureStore:
    """The definition store of the current settings."""
    return current_store()[1]


def latest_definition(
    kind: str, name: str, store: tuple[str, FeatureStore] | None = None
) -> FeatureDefinitionRecord:
    """The latest stored version of a definition, as read at most a few seconds ago.

    A version read within :data:`DEFINITIONS_CACHE_SECONDS` is reused; :func:`apply` in this
    process forgets every kept version, so its changes are seen at once.

    Parameters
    ----------
    kind, name : str
        What to read.
    store : tuple of str and FeatureStore, optional
        The store and its key from :func:`current_store`, when the caller reads several
        definitions and resolves the settings once; the current one by default.

    Raises
    ------
    NotFound
        When no definition of that kind and name is stored (never kept: a definition
        applied since is found on the next call).
    """
    store_key, definitions = store or current_store()
    key = (store_key, kind, name)
    now = time.monotonic()
    kept = _latest_cache.get(key)
    if kept is not None and now - kept[0] < DEFINITIONS_CACHE_SECONDS:
        return kept[1]
    record = definitions.get_feature_definition(kind, name)
    _latest_cache[key] = (now, record)
    return record


def forget_definitions() -> None:
    """Drop the definitions :func:`latest_definition` keeps, so the next calls read them."""
    _latest_cache.clear()


def _kind(item: Any) -> str:
    if isinstance(item, Entity):
        return ENTITY
    if isinstance(item, FeatureView):
        return FEATURE_VIEW
    if isinstance(item, FeatureService):
        return FEATURE_SERVICE
    raise InvalidInput(
        f"cannot apply {type(item).__name__}: give Entity, FeatureView or FeatureService objects",
        field="definitions",
    )


def _latest(store: FeatureStore, kind: str, name: str) -> FeatureDefinitionRecord | None:
    try:
        return store.get_feature_definition(kind, name)
    except NotFound:
        return None


def _incompatibilities(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Changes that would make old training sets and new ones disagree silently."""
    problems = []
    if kind in (ENTITY, FEATURE_VIEW) and old.get("join_keys") != new.get("join_keys"):
        problems.append(f"join keys {old.get('join_keys')} -> {new.get('join_keys')}")
    if kind == FEATURE_VIEW:
        before = {f["name"]: f["dtype"] for f in old.get("features", [])}
        for feature in new.get("features", []):
            was = before.get(feature["name"])
            if was is not None and was != feature["dtype"]:
                problems.append(f"feature {feature['name']!r} dtype {was} -> {feature['dtype']}")
    return problems


def _check_service(store: FeatureStore, service: dict[str, Any], views: dict[str, Any]) -> None:
    for reference in service["features"]:
        view_name, _, feature = reference.partition(":")
        view = views.get(view_name)
        if view is None:
            record = _latest(store, FEATURE_VIEW, view_name)
            if record is None:
                raise InvalidInput(
                    f"feature service lists {reference!r} but view {view_name!r} is not applied",
                    field="features",
                )
            view = record.definition
        if feature and feature not in {f["name"] for f in view["features"]}:
            raise InvalidInput(
                f"feature view {view_name!r} has no feature {feature!r}", field="features"
            )


def apply(
    definitions: Iterable[Definition], *, force: bool = False
) -> list[FeatureDefinitionRecord]:
    """Store definitions, each as a new version when it changed.

    Entities are stored first, then views, then services, so one call can define all three.
    Every definition is checked before anything is stored.

    Parameters
    ----------
    definitions : iterable of Entity, FeatureView or FeatureService
        What to store; the entities a view uses are stored with it.
    force : bool
        Store incompatible changes (a feature's dtype, a join key) too.

    Returns
    -------
    list of FeatureDefinitionRecord
        The stored (or unchanged) version of each definition, entities first.

    Raises
    ------
    InvalidInput
        On an incompatible change without ``force``, a service naming an unknown feature, or
        two different definitions under one name.
    """
    store = get_store()
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for item in list(definitions):
        pending: list[Definition] = (
            [*item.entities, item] if isinstance(item, FeatureView) else [item]
        )
        for each in pending:
            key = (_kind(each), each.name)
            definition = each.to_definition()
            if key in items and items[key] != definition:
                raise InvalidInput(
                    f"two different definitions of {key[0].replace('_', ' ')} {key[1]!r}",
                    field="definitions",
                )
            items[key] = definition
    if not items:
        raise InvalidInput("nothing to apply", field="definitions")
    views = {name: d for (kind, name), d in items.items() if kind == FEATURE_VIEW}
    for (kind, name), definition in items.items():
        if kind == FEATURE_SERVICE:
            _check_service(store, definition, views)
        latest = _latest(store, kind, name)
        problems = [] if latest is None else _incompatibilities(kind, latest.definition, definition)
        if problems and not force:
            raise InvalidInput(
                f"incompatible change to {kind.replace('_', ' ')} {name!r} "
                f"(v{latest.version if latest else 0}): {'; '.join(problems)}; "
                "give it a new name, or apply with force=True",
                field=name,
            )
    ordered = sorted(items.items(), key=lambda pair: KINDS.index(pair[0][0]))
    try:
        return [store.put_feature_definition(k, n, d)[0] for (k, n), d in ordered]
    finally:
        forget_definitions()


def list_definitions(kind: str | None = None) -> list[FeatureDefinitionRecord]:
    """Return the latest version of every stored definition (of one kind, if given)."""
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    return get_store().list_feature_definitions(kind)


def get(
    name: str, *, kind: str | None = None, version: int | None = None
) -> FeatureDefinitionRecord:
    """Return a stored definition by name: a feature view, service or entity.

    Raises
    ------
    NotFound
        When nothing of that name (and kind) is stored.
    InvalidInput
        When several kinds share the name and ``kind`` is not given.
    """
    store = get_store()
    if kind is not None:
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
        return store.get_feature_definition(kind, name, version)
    found = [r for k in KINDS if (r := _latest(store, k, name)) is not None]
    if not found:
        raise NotFound(
            f"no entity, feature view or feature service is named {name!r}", field="name"
        )
    if len(found) > 1:
        kinds = ", ".join(r.kind for r in found)
        raise InvalidInput(f"{name!r} names several definitions ({kinds}): give kind", field="kind")
    return (
        found[0] if version is None else store.get_feature_definition(found[0].kind, name, version)
    )
