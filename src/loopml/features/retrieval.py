"""Point-in-time-correct training sets: ``get_historical_features``.

For each entity row and its event timestamp, each requested view contributes the latest
source row of that entity at or before the timestamp (never after: no future leakage), and
only while it is younger than the view's TTL. DuckDB computes this with an ``ASOF LEFT
JOIN`` straight over the views' Parquet files, so sources are scanned column by column and
never loaded whole into pandas. Output columns are the entity frame's columns followed by
one ``<view>__<feature>`` column per requested feature.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.datasets import get_service as get_datasets
from loopml.errors import InvalidInput, NotFound
from loopml.features.definitions import (
    DTYPES,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    FeatureService,
    FeatureView,
    current_store,
    latest_definition,
)
from loopml.features.lineage import record_on_active_run
from loopml.store.features_base import FeatureStore

if TYPE_CHECKING:
    import pandas as pd

    from loopml.entities.data import DatasetVersion

FEATURE_VIEW_KIND = "feature_view"
_ROW = "__loopml_row"
_TS = "__loopml_ts"
_ORDER = "__loopml_order"


@dataclass(frozen=True)
class _Request:
    """One view's part of a retrieval: its stored definition and the features asked for."""

    name: str
    version: int
    definition: dict[str, Any]
    features: list[str]


def _references(
    features: Sequence[str] | FeatureService | str, store: tuple[str, FeatureStore]
) -> list[str]:
    if isinstance(features, FeatureService):
        return features.references()
    if isinstance(features, str):
        record = latest_definition(FEATURE_SERVICE, features, store)
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
    """Resolve feature references against the latest view definitions (kept briefly)."""
    store = current_store()
    by_view: dict[str, _Request] = {}
    for reference in _references(features, store):
        view_name, _, feature = reference.partition(":")
        if view_name not in by_view:
            try:
                record = latest_definition(FEATURE_VIEW, view_name, store)
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
    service = get_datasets()
    version: DatasetVersion = service.resolve(source)
    lineage[source] = version.uri
    with service.local_file(version) as local:
        yield local


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _epoch_micros(column: str, duckdb_type: str) -> str:
    """SQL for a timestamp column as epoch microseconds in UTC (naive values taken as UTC).

    ``epoch_us`` of a ``TIMESTAMP WITH TIME ZONE`` is the instant itself; casting it to a
    naive ``TIMESTAMP`` first would go through the time zone library row by row, which
    costs more than the whole join on a large source.
    """
    if duckdb_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"epoch_us({column})"
    return f"epoch_us(CAST({column} AS TIMESTAMP))"


@dataclass(frozen=True)
class _SourceTimes:
    """What the join needs to know of a source's timestamp column, read in one scan.

    Attributes
    ----------
    duckdb_type : str
        The column's DuckDB type.
    rows : int
        Rows in the file.
    first, last : int
        The earliest and latest event time, in epoch microseconds (0 for an empty file).
    unit : int
        The coarsest of a second, a millisecond and a microsecond that divides every event
        time: the ordering key counts in it, so that it needs fewer bits.
    """

    duckdb_type: str
    rows: int
    first: int
    last: int
    unit: int


def _check_source(connection: Any, request: _Request, relation: str) -> _SourceTimes:
    """Refuse a source missing columns, or whose timestamp has the wrong type or nulls.

    Returns
    -------
    _SourceTimes
        The timestamp column's type, range and resolution.
    """
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
    micros = _epoch_micros(_quote(timestamp), types[timestamp])
    nulls, rows, first, last, seconds, millis = connection.execute(
        f"SELECT count(*) - count(t), count(*), min(t), max(t), bool_and(t % 1000000 = 0), "
        f"bool_and(t % 1000 = 0) FROM (SELECT {micros} AS t FROM {relation})"
    ).fetchone()
    if nulls:
        raise InvalidInput(
            f"timestamp field {timestamp!r} of feature view {request.name!r} has {nulls} "
            "null value(s)",
            field="timestamp_field",
        )
    unit = 1_000_000 if seconds else 1_000 if millis else 1
    return _SourceTimes(types[timestamp], rows, first or 0, last or 0, unit)


def _wide_keys(times: _SourceTimes) -> bool:
    """Whether ordering keys need a HUGEINT: the time span leaves no room for positions."""
    scale = 1 << max(1, (times.rows - 1).bit_length())
    return ((times.last - times.first) // times.unit + 2) * scale >= 1 << 62


def _ordering_keys(times: _SourceTimes, source_ts: str, entity_ts: str) -> tuple[str, str]:
    """SQL of the ASOF ordering key of a source row and of an entity row.

    Of several source rows of one entity at the same instant the last one in the file wins,
    so that the result does not depend on how DuckDB happens to order the scan. Rather than
    deduplicating the source first (a window over every source row), the row's position in
    the file is folded into the ordering key: ``time * 2**bits + file row`` orders source
    rows by time, then by position, and an entity row's key ``time * 2**bits + 2**bits - 1``
    sits after every source row of its instant, so the ASOF match is the last row of the
    latest instant at or before the entity's time.

    The key is a BIGINT when the source's time span, counted in its resolution, leaves room
    for the row positions (then entity times are clamped into the span, which changes no
    match); otherwise a HUGEINT, which sorts more slowly.
    """
    scale = 1 << max(1, (times.rows - 1).bit_length())
    span = (times.last - times.first) // times.unit
    if _wide_keys(times):
        return (
            f"CAST({source_ts} AS HUGEINT) * {scale} + file_row_number",
            f"CAST({entity_ts} AS HUGEINT) * {scale} + {scale - 1}",
        )
    unit, first = times.unit, times.first // times.unit
    source_units = f"{source_ts} // {unit}" if unit > 1 else source_ts
    # Floor division: an entity time between two grid points belongs to the earlier one.
    entity_units = (
        f"({entity_ts} - (({entity_ts} % {unit}) + {unit}) % {unit}) // {unit}"
        if unit > 1
        else entity_ts
    )
    clamped = f"least(greatest({entity_units} - {first}, -1), {span})"
    return (
        f"({source_units} - {first}) * {scale} + file_row_number",
        f"{clamped} * {scale} + {scale - 1}",
    )


def _key_time(times: _SourceTimes, key: str) -> str:
    """SQL of the event time (epoch microseconds) of a source row, from its ordering key."""
    scale = 1 << max(1, (times.rows - 1).bit_length())
    if _wide_keys(times):
        # Floor division: a negative time's key is below time * scale.
        return f"CAST(({key} - (({key} % {scale}) + {scale}) % {scale}) // {scale} AS BIGINT)"
    first = times.first // times.unit
    return f"({key} // {scale} + {first}) * {times.unit}"


def _view_query(request: _Request, relation: str, times: _SourceTimes) -> str:
    """The ASOF join of the entity rows with one view's source, TTL applied."""
    definition = request.definition
    keys = definition["join_keys"]
    dtypes = {f["name"]: f["dtype"] for f in definition["features"]}
    source_ts = _epoch_micros(_quote(definition["timestamp_field"]), times.duckdb_type)
    source_key, entity_key = _ordering_keys(times, source_ts, f"e.{_TS}")
    source = (
        f"SELECT {', '.join(_quote(k) for k in keys)}, {source_key} AS {_ORDER}, "
        + ", ".join(_quote(f) for f in request.features)
        + f" FROM {relation}"
    )
    condition = " AND ".join(f"e.{_quote(k)} = s.{_quote(k)}" for k in keys)
    ttl = definition.get("ttl_seconds")
    # The matched row's time is read back from its key rather than carried through the sort.
    fresh = (
        "TRUE"
        if ttl is None
        else f"{_key_time(times, f's.{_ORDER}')} >= e.{_TS} - {int(ttl * 1_000_000)}"
    )
    columns = ", ".join(
        f"CASE WHEN {fresh} THEN CAST(s.{_quote(f)} AS {DTYPES[dtypes[f]]}) END "
        f"AS {_quote(request.name + '__' + f)}"
        for f in request.features
    )
    return (
        f"SELECT {columns} FROM entity_rows e ASOF LEFT JOIN ({source}) s "
        f"ON {condition} AND {entity_key} >= s.{_ORDER} ORDER BY e.{_ROW}"
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
        # Rows are put back in entity order by the ORDER BY; without this setting DuckDB
        # would also keep every intermediate result in scan order, at a cost in time.
        connection.execute("SET preserve_insertion_order = false")
        connection.register("entity_input", frame)
        described = connection.execute("DESCRIBE entity_input").fetchall()
        entity_type = next(str(row[1]) for row in described if row[0] == timestamp_field)
        entity_ts = _epoch_micros(_quote(timestamp_field), entity_type.upper())
        connection.execute(
            "CREATE VIEW entity_rows AS SELECT "
            + "".join(f"{_quote(k)}, " for k in sorted(keys))
            + f"{entity_ts} AS {_TS}, {_ROW} FROM entity_input"
        )
        with ExitStack() as stack:
            for request in requests:
                path = stack.enter_context(_source_path(request.definition["source"], lineage))
                relation = f"read_parquet({_literal(str(path))}, file_row_number = true)"
                times = _check_source(connection, request, relation)
                try:
                    table = connection.execute(
                        _view_query(request, relation, times)
                    ).to_arrow_table()
                except duckdb.Error as exc:
                    raise InvalidInput(
                        f"cannot join feature view {request.name!r}: {exc}", field="features"
                    ) from exc
                for column, values in zip(table.column_names, table.columns, strict=True):
                    result[column] = values.to_pandas().to_numpy()
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

    service = get_datasets()
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
