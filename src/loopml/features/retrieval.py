"""Point-in-time-correct training sets: ``get_historical_features``.

For each entity row and its event timestamp, each requested view contributes the latest
source row of that entity at or before the timestamp (never after: no future leakage), and
only while it is younger than the view's TTL. DuckDB computes this with an ``ASOF LEFT
JOIN`` straight over the views' Parquet files, so sources are scanned column by column and
never loaded whole into pandas. Output columns are the entity frame's columns followed by
one ``<view>__<feature>`` column per requested feature.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.config import load_settings
from loopml.errors import InvalidInput, NotFound
from loopml.features.definitions import (
    DTYPES,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    FeatureService,
    FeatureView,
    get_store,
)
from loopml.features.lineage import record_on_active_run

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.datasets import DatasetService
    from loopml.entities.data import DatasetVersion

FEATURE_VIEW_KIND = "feature_view"
_ROW = "__loopml_row"
_TS = "__loopml_ts"
_lock = threading.Lock()
_datasets: DatasetService | None = None
_datasets_key: tuple[str, str, str | None] | None = None


@dataclass(frozen=True)
class _Request:
    """One view's part of a retrieval: its stored definition and the features asked for."""

    name: str
    version: int
    definition: dict[str, Any]
    features: list[str]


def _dataset_service() -> DatasetService:
    global _datasets, _datasets_key
    settings = load_settings()
    key = (settings.resolved_store_uri, settings.resolved_artifact_uri, settings.tracking_uri)
    with _lock:
        if _datasets is None or key != _datasets_key:
            from loopml.data.datasets import DatasetService
            from loopml.store.registry import open_data_stores

            stores = open_data_stores(settings)
            _datasets = DatasetService(stores.datasets, stores.blobs)
            _datasets_key = key
        return _datasets


def _references(features: Sequence[str] | FeatureService | str) -> list[str]:
    if isinstance(features, FeatureService):
        return features.references()
    if isinstance(features, str):
        record = get_store().get_feature_definition(FEATURE_SERVICE, features)
        return list(record.definition["features"])
    items = list(features)
    if not items:
        raise InvalidInput("no features requested", field="features")
    refs = []
    for item in items:
        if isinstance(item, FeatureView):
            refs.append(item.name)
        elif isinstance(item, str):
            refs.append(item)
        else:
            raise InvalidInput(f"{item!r} is not 'view:feature'", field="features")
    return refs


def _requests(features: Sequence[str] | FeatureService | str) -> list[_Request]:
    """Resolve feature references against the stored (latest) view definitions."""
    store = get_store()
    by_view: dict[str, _Request] = {}
    for reference in _references(features):
        view_name, _, feature = reference.partition(":")
        if view_name not in by_view:
            try:
                record = store.get_feature_definition(FEATURE_VIEW, view_name)
            except NotFound as exc:
                raise InvalidInput(
                    f"unknown feature {reference!r}: no feature view {view_name!r} is applied",
                    field="features",
                ) from exc
            by_view[view_name] = _Request(view_name, record.version, record.definition, [])
        request = by_view[view_name]
        known = [f["name"] for f in request.definition["features"]]
        wanted = known if not feature else [feature]
        for name in wanted:
            if name not in known:
                raise InvalidInput(
                    f"unknown feature {reference!r}: view {view_name!r} has " + ", ".join(known),
                    field="features",
                )
            if name not in request.features:
                request.features.append(name)
    return list(by_view.values())


@contextmanager
def _source_path(source: str, lineage: dict[str, str]) -> Iterator[Path]:
    """The local Parquet file of a view's source: a path, or a registered dataset version."""
    path = Path(source)
    if source.endswith(".parquet") or path.is_file():
        if not path.is_file():
            raise InvalidInput(f"source {source} does not exist", field="source")
        yield path
        return
    service = _dataset_service()
    version: DatasetVersion = service.resolve(source)
    lineage[source] = version.uri
    with service.local_file(version) as local:
        yield local


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _check_source(connection: Any, request: _Request, relation: str) -> None:
    """Refuse a source missing columns, or whose timestamp has the wrong type or nulls."""
    definition = request.definition
    described = connection.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    types = {row[0]: str(row[1]).upper() for row in described}
    needed = [*definition["join_keys"], definition["timestamp_field"], *request.features]
    missing = [c for c in needed if c not in types]
    if missing:
        raise InvalidInput(
            f"source of feature view {request.name!r} has no column(s) {', '.join(missing)}",
            field="source",
        )
    timestamp = definition["timestamp_field"]
    if not types[timestamp].startswith("TIMESTAMP") and types[timestamp] != "DATE":
        raise InvalidInput(
            f"timestamp field {timestamp!r} of feature view {request.name!r} has type "
            f"{types[timestamp]}, not a timestamp",
            field="timestamp_field",
        )
    nulls = connection.execute(
        f"SELECT count(*) FROM {relation} WHERE {_quote(timestamp)} IS NULL"
    ).fetchone()[0]
    if nulls:
        raise InvalidInput(
            f"timestamp field {timestamp!r} of feature view {request.name!r} has {nulls} "
            "null value(s)",
            field="timestamp_field",
        )


def _view_query(request: _Request, relation: str, timestamp_field: str) -> str:
    """The ASOF join of the entity rows with one view's source, TTL applied."""
    definition = request.definition
    keys = definition["join_keys"]
    dtypes = {f["name"]: f["dtype"] for f in definition["features"]}
    ts = _quote(definition["timestamp_field"])
    # Several source rows of one entity at the same instant: the last one in the file wins,
    # so that the result does not depend on how DuckDB happens to order the scan.
    source = (
        f"SELECT {', '.join(_quote(k) for k in keys)}, CAST({ts} AS TIMESTAMP) AS {_TS}, "
        + ", ".join(f"{_quote(f)}" for f in request.features)
        + f" FROM {relation} QUALIFY row_number() OVER (PARTITION BY "
        + ", ".join(_quote(k) for k in keys)
        + f", {ts} ORDER BY file_row_number DESC) = 1"
    )
    condition = " AND ".join(f"e.{_quote(k)} = s.{_quote(k)}" for k in keys)
    entity_ts = f"CAST(e.{_quote(timestamp_field)} AS TIMESTAMP)"
    ttl = definition.get("ttl_seconds")
    fresh = (
        "TRUE"
        if ttl is None
        else f"s.{_TS} >= {entity_ts} - to_microseconds({int(ttl * 1_000_000)})"
    )
    columns = ", ".join(
        f"CASE WHEN {fresh} THEN CAST(s.{_quote(f)} AS {DTYPES[dtypes[f]]}) END "
        f"AS {_quote(request.name + '__' + f)}"
        for f in request.features
    )
    return (
        f"SELECT e.{_ROW}, {columns} FROM entity_rows e ASOF LEFT JOIN ({source}) s "
        f"ON {condition} AND {entity_ts} >= s.{_TS} ORDER BY e.{_ROW}"
    )


def _check_entity_frame(entity_df: Any, keys: set[str], timestamp_field: str) -> None:
    import pandas as pd

    if not isinstance(entity_df, pd.DataFrame):
        raise InvalidInput("entity_df must be a pandas DataFrame", field="entity_df")
    if timestamp_field not in entity_df.columns:
        raise InvalidInput(
            f"the entity frame has no event timestamp column {timestamp_field!r}",
            field=timestamp_field,
        )
    column = entity_df[timestamp_field]
    if not pd.api.types.is_datetime64_any_dtype(column):
        raise InvalidInput(
            f"entity column {timestamp_field!r} must hold timestamps, not {column.dtype}",
            field=timestamp_field,
        )
    if column.isna().any():
        raise InvalidInput(f"entity column {timestamp_field!r} has nulls", field=timestamp_field)
    for key in sorted(keys):
        if key not in entity_df.columns:
            raise InvalidInput(f"the entity frame has no join key column {key!r}", field=key)
    if _ROW in entity_df.columns:
        raise InvalidInput(f"column name {_ROW!r} is reserved", field=_ROW)


def get_historical_features(
    entity_df: pd.DataFrame,
    features: Sequence[str] | FeatureService | str,
    *,
    timestamp_field: str = "event_timestamp",
    register_as: str | None = None,
) -> pd.DataFrame:
    """Build a point-in-time-correct training set.

    Parameters
    ----------
    entity_df : pandas.DataFrame
        One row per training example: the join keys of the views' entities and an event
        timestamp.
    features : list of str, FeatureService, or str
        ``"view:feature"`` (or ``"view"`` for all its features) references, a
        :class:`FeatureService`, or the name of an applied feature service.
    timestamp_field : str
        The entity frame's event-time column.
    register_as : str, optional
        Also register the result as a version of this dataset, tagged with the feature
        view versions and linked to them in the lineage graph.

    Notes
    -----
    Inside an active run, the run is tagged with the feature service (when ``features``
    names an applied one) and the view versions read, ``features.service`` and
    ``features.views``; a model version registered from the run inherits them.

    Returns
    -------
    pandas.DataFrame
        ``entity_df``'s columns, in its row order, plus one ``<view>__<feature>`` column per
        feature: the latest value at or before the row's timestamp within the view's TTL,
        else null.

    Raises
    ------
    InvalidInput
        A missing timestamp or join key column, an unknown feature, a source whose timestamp
        column has nulls or is not a timestamp.
    """
    import duckdb

    requests = _requests(features)
    keys = {k for r in requests for k in r.definition["join_keys"]}
    _check_entity_frame(entity_df, keys, timestamp_field)
    result = entity_df.reset_index(drop=True).copy()
    frame = result[[*sorted(keys), timestamp_field]].copy()
    frame[_ROW] = range(len(frame))
    lineage: dict[str, str] = {}
    connection = duckdb.connect(":memory:")
    try:
        # Tz-aware timestamps are compared in UTC, like the naive ones stored by most sources.
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("entity_rows", frame)
        with ExitStack() as stack:
            for request in requests:
                path = stack.enter_context(_source_path(request.definition["source"], lineage))
                relation = f"read_parquet({_literal(str(path))}, file_row_number = true)"
                _check_source(connection, request, relation)
                try:
                    table = connection.execute(
                        _view_query(request, relation, timestamp_field)
                    ).to_arrow_table()
                except duckdb.Error as exc:
                    raise InvalidInput(
                        f"cannot join feature view {request.name!r}: {exc}", field="features"
                    ) from exc
                joined = table.drop_columns([_ROW]).to_pandas()
                for column in joined.columns:
                    result[column] = joined[column].to_numpy()
    finally:
        connection.close()
    if register_as is not None:
        _register(result, register_as, requests, lineage)
    record_on_active_run(features, [(r.name, r.version) for r in requests])
    return result


def _register(
    result: pd.DataFrame, name: str, requests: list[_Request], sources: dict[str, str]
) -> None:
    """Register the training set with tags and lineage naming the view versions."""
    from loopml.data.datasets import DATASET_KIND

    service = _dataset_service()
    views = ",".join(f"{r.name}@v{r.version}" for r in requests)
    tags = {"features.views": views}
    if sources:
        tags["features.sources"] = ",".join(sorted(sources.values()))
    stored = service.register(name, result, tags=tags)
    for request in requests:
        service.store.add_lineage(
            FEATURE_VIEW_KIND,
            f"{request.name}@v{request.version}",
            DATASET_KIND,
            stored.uri,
            "input",
        )
