"""Materialization: the latest feature values per entity, from the sources to an online store.

For each feature view, DuckDB picks in one pass over the source's Parquet file the newest
row of every entity whose event time falls in ``[start, end)`` (the same tie rule as
training sets: of several rows at one instant, the last in the file), and streams them in
record batches to the online store, which commits each chunk on its own. Online stores keep
the newest row per entity by event time, so a run can be repeated or resumed and converges
to the same state.

:func:`materialize_incremental` walks each view from its stored watermark (where the last
run stopped) to ``end`` in event-time windows, and commits the watermark after each window
is written: a run that dies resumes from the last committed window, and a rerun with the
same ``end`` writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput
from loopml.features.definitions import DTYPES, FEATURE_VIEW, get_store
from loopml.features.retrieval import _check_source, _literal, _quote, _Request, _source_path
from loopml.store.features_base import FeatureDefinitionRecord, FeatureWatermarkStore

if TYPE_CHECKING:
    import pandas as pd

    from loopml.features.online import OnlineStore


def _naive_utc(value: Any, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a datetime, got {type(value).__name__}", field=field)
    moment: datetime = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


_EPOCH = datetime(1970, 1, 1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _open(online_store: str | OnlineStore | None) -> tuple[Any, bool]:
    """The online store to write, and whether this call opened (and must close) it."""
    from loopml.config import load_settings
    from loopml.features.online import open_online_store

    if online_store is not None and not isinstance(online_store, str):
        return online_store, False
    return open_online_store(online_store or load_settings().online_store), True


def _target(store: Any) -> str:
    """A stable name of an online store, without credentials, to key watermarks by."""
    from loopml.features.online import RedisOnlineStore, SqliteOnlineStore

    if isinstance(store, SqliteOnlineStore):
        return f"sqlite:///{store.path.resolve()}"
    if isinstance(store, RedisOnlineStore):
        return store.display
    return str(getattr(store, "name", type(store).__name__))


def _records(views: Sequence[str] | None) -> list[FeatureDefinitionRecord]:
    store = get_store()
    if views is None:
        return store.list_feature_definitions(FEATURE_VIEW)
    return [store.get_feature_definition(FEATURE_VIEW, name) for name in views]


def _request(record: FeatureDefinitionRecord) -> _Request:
    features = [f["name"] for f in record.definition["features"]]
    return _Request(record.name, record.version, record.definition, features)


def _latest_rows(
    connection: Any, request: _Request, relation: str, start: datetime, end: datetime, rows: int
) -> Iterator[pd.DataFrame]:
    definition = request.definition
    keys = ", ".join(_quote(k) for k in definition["join_keys"])
    ts = _quote(definition["timestamp_field"])
    dtypes = {f["name"]: f["dtype"] for f in definition["features"]}
    features = ", ".join(
        f"CAST({_quote(f)} AS {DTYPES[dtypes[f]]}) AS {_quote(f)}" for f in request.features
    )
    query = (
        f"SELECT {keys}, CAST({ts} AS TIMESTAMP) AS {ts}, {features} FROM {relation} "
        f"WHERE CAST({ts} AS TIMESTAMP) >= ? AND CAST({ts} AS TIMESTAMP) < ? "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} "
        f"ORDER BY {ts} DESC, file_row_number DESC) = 1"
    )
    reader = connection.execute(query, [start, end]).to_arrow_reader(rows)
    for batch in reader:
        yield batch.to_pandas()


def materialize(
    start: datetime,
    end: datetime,
    *,
    views: Sequence[str] | None = None,
    online_store: str | OnlineStore | None = None,
    chunk_rows: int = 50_000,
    progress: bool = False,
) -> dict[str, int]:
    """Write the latest values of each entity with events in ``[start, end)`` online.

    Parameters
    ----------
    start, end : datetime
        The event-time window; timezone-aware values are converted to UTC, naive ones are
        taken as UTC.
    views : sequence of str, optional
        The feature views to materialize (all applied views by default).
    online_store : str or OnlineStore, optional
        An online store or its URI (``sqlite:///...``, ``redis://...``); the SQLite store
        under ``LOOPML_HOME`` by default.
    chunk_rows : int
        Rows per committed chunk.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        Per view, the number of entities whose stored row changed.

    Raises
    ------
    InvalidInput
        ``start`` not before ``end``, an unknown view, or a bad source (see
        :func:`get_historical_features`).
    """
    from loopml.features.online import materialize_frame

    begin, finish = _naive_utc(start, "start"), _naive_utc(end, "end")
    if begin >= finish:
        raise InvalidInput(f"start {start} must be before end {end}", field="start")
    records = _records(views)
    online, owned = _open(online_store)
    changed: dict[str, int] = {}
    try:
        for record in records:
            definition = record.definition
            request = _request(record)
            with _source(definition, request) as (connection, relation):
                changed[record.name] = materialize_frame(
                    online,
                    record.name,
                    _latest_rows(connection, request, relation, begin, finish, chunk_rows),
                    list(definition["join_keys"]),
                    request.features,
                    definition["timestamp_field"],
                    chunk_rows=chunk_rows,
                    progress=progress,
                )
    finally:
        if owned:
            online.close()
    return changed


def materialize_incremental(
    end: datetime,
    *,
    views: Sequence[str] | None = None,
    online_store: str | OnlineStore | None = None,
    chunk: timedelta = timedelta(days=1),
    chunk_rows: int = 50_000,
    progress: bool = False,
) -> dict[str, int]:
    """Materialize each view from where its last run stopped up to ``end``.

    A view's watermark is kept in the metadata store per online store. The first run of a
    view (or of a new view version) starts at its earliest event. Events from the watermark
    to ``end`` are written in windows of ``chunk`` event time; the watermark moves to the
    end of a window only once the window is written, so an interrupted run resumes from
    the last committed window, and a rerun with the same ``end`` writes nothing. Rows that
    arrive later with an event time before the watermark are not picked up; run
    :func:`materialize` over their window for a backfill.

    Parameters
    ----------
    end : datetime
        Materialize events before this instant (timezone-aware values are converted to
        UTC, naive ones are taken as UTC).
    views : sequence of str, optional
        The feature views to materialize (all applied views by default).
    online_store : str or OnlineStore, optional
        An online store or its URI; ``LOOPML_ONLINE_STORE``, else the SQLite store under
        ``LOOPML_HOME``, by default.
    chunk : timedelta
        Event time per committed window.
    chunk_rows : int
        Rows per online-store write within a window.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        Per view, the entity rows that changed in the online store, summed over windows
        (an entity updated in two windows counts twice).

    Raises
    ------
    InvalidInput
        A bad ``end`` or ``chunk``, an unknown view, or a bad source.
    """
    from loopml.features.online import materialize_frame

    finish = _naive_utc(end, "end")
    if not isinstance(chunk, timedelta) or chunk <= timedelta(0):
        raise InvalidInput(f"chunk must be a positive timedelta, got {chunk!r}", field="chunk")
    store = get_store()
    if not isinstance(store, FeatureWatermarkStore):
        raise InvalidInput("this metadata store cannot keep watermarks", field="store")
    records = _records(views)
    online, owned = _open(online_store)
    target = _target(online)
    changed: dict[str, int] = {}
    try:
        for record in records:
            request = _request(record)
            definition = record.definition
            ts = _quote(definition["timestamp_field"])
            changed[record.name] = 0
            with _source(definition, request) as (connection, relation):
                mark = store.get_feature_watermark(record.name, target)
                if mark is not None and mark.view_version == record.version:
                    begin = _EPOCH + timedelta(microseconds=mark.watermark)
                else:
                    first = connection.execute(
                        f"SELECT min(CAST({ts} AS TIMESTAMP)) FROM {relation}"
                    ).fetchone()
                    begin = first[0] if first and first[0] is not None else finish
                while begin < finish:
                    stop = min(begin + chunk, finish)
                    rows = _latest_rows(connection, request, relation, begin, stop, chunk_rows)
                    changed[record.name] += materialize_frame(
                        online,
                        record.name,
                        rows,
                        list(definition["join_keys"]),
                        request.features,
                        definition["timestamp_field"],
                        chunk_rows=chunk_rows,
                        progress=progress,
                    )
                    store.set_feature_watermark(record.name, target, record.version, _micros(stop))
                    begin = stop
                if mark is None or mark.view_version != record.version:
                    # An empty source still records that it was looked at up to `end`.
                    store.set_feature_watermark(
                        record.name, target, record.version, _micros(max(begin, finish))
                    )
    finally:
        if owned:
            online.close()
    return changed


@contextmanager
def _source(definition: dict[str, Any], request: _Request) -> Iterator[tuple[Any, str]]:
    """A DuckDB connection (UTC) and the checked Parquet relation of a view's source."""
    import duckdb

    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        with _source_path(definition["source"], {}) as path:
            relation = f"read_parquet({_literal(str(path))}, file_row_number = true)"
            _check_source(connection, request, relation)
            yield connection, relation
    finally:
        connection.close()


def watermark(view: str, online_store: str | OnlineStore | None = None) -> datetime | None:
    """Return how far ``view`` is materialized into an online store (naive UTC).

    Parameters
    ----------
    view : str
        The feature view name.
    online_store : str or OnlineStore, optional
        As in :func:`materialize_incremental`.

    Returns
    -------
    datetime or None
        Every event before it is online; ``None`` if the view was never materialized
        incrementally there.
    """
    store = get_store()
    if not isinstance(store, FeatureWatermarkStore):
        return None
    online, owned = _open(online_store)
    try:
        mark = store.get_feature_watermark(view, _target(online))
    finally:
        if owned:
            online.close()
    return None if mark is None else _EPOCH + timedelta(microseconds=mark.watermark)
