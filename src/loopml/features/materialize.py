"""Materialization: the latest feature values per entity, from the sources to an online store.

For each feature view, DuckDB picks in one pass over the source's Parquet file the newest
row of every entity whose event time falls in ``[start, end)`` (the same tie rule as
training sets: of several rows at one instant, the last in the file), and streams them in
record batches to the online store, which commits each chunk on its own. Online stores keep
the newest row per entity by event time, so a run can be repeated or resumed and converges
to the same state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput
from loopml.features.definitions import DTYPES, FEATURE_VIEW, get_store
from loopml.features.retrieval import _check_source, _literal, _quote, _Request, _source_path

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
    import duckdb

    from loopml.features.online import materialize_frame, open_online_store

    begin, finish = _naive_utc(start, "start"), _naive_utc(end, "end")
    if begin >= finish:
        raise InvalidInput(f"start {start} must be before end {end}", field="start")
    store = get_store()
    if views is None:
        records = store.list_feature_definitions(FEATURE_VIEW)
    else:
        records = [store.get_feature_definition(FEATURE_VIEW, name) for name in views]
    target = open_online_store(online_store) if not hasattr(online_store, "write") else None
    online: Any = target if target is not None else online_store
    changed: dict[str, int] = {}
    try:
        for record in records:
            definition = record.definition
            request = _Request(
                record.name,
                record.version,
                definition,
                [f["name"] for f in definition["features"]],
            )
            connection = duckdb.connect(":memory:")
            try:
                connection.execute("SET TimeZone = 'UTC'")
                with _source_path(definition["source"], {}) as path:
                    relation = f"read_parquet({_literal(str(path))}, file_row_number = true)"
                    _check_source(connection, request, relation)
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
                connection.close()
    finally:
        if target is not None:
            target.close()
    return changed
