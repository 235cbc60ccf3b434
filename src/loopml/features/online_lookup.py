"""Online lookup: the latest materialized feature values of some entities.

:func:`get_online_features` reads what materialization wrote to the online store (every view
in one round trip on Redis, one query per view on SQLite), and returns the same
``<view>__<feature>`` columns as a training set from
:func:`~loopml.features.get_historical_features`, so a model sees the same names in training
and in serving. The views' definitions come from a short-lived per-process cache
(:func:`~loopml.features.definitions.latest_definition`), so a lookup does not query the
metadata store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, overload

from loopml.errors import InvalidInput
from loopml.features.materialize import _open
from loopml.features.retrieval import _requests

if TYPE_CHECKING:
    import pandas as pd

    from loopml.features.definitions import FeatureService
    from loopml.features.online import OnlineStore


def _rows(entity_rows: Any) -> tuple[list[dict[str, Any]], dict[Any, Any]]:
    """The entity rows as records, and as columns (list or Series per column)."""
    import pandas as pd

    if isinstance(entity_rows, pd.DataFrame):
        frame = entity_rows.reset_index(drop=True)
        records = [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
        return records, {name: frame[name] for name in frame.columns}
    if not isinstance(entity_rows, list | tuple) or not all(
        isinstance(r, dict) for r in entity_rows
    ):
        raise InvalidInput(
            "entity rows are a list of dicts or a DataFrame of join key values",
            field="entity_rows",
        )
    records = [{str(k): v for k, v in row.items()} for row in entity_rows]
    names = list(dict.fromkeys(k for row in records for k in row))
    if all(len(row) == len(names) for row in records):
        return records, {name: [row[name] for row in records] for name in names}
    # Rows with different keys: pandas fills the gaps as it does for any list of dicts.
    frame = pd.DataFrame(records)
    return records, {name: frame[name] for name in frame.columns}


@dataclass(frozen=True)
class ViewRead:
    """The online rows of one view's entities, TTL applied.

    Attributes
    ----------
    values : list of dict or None
        Per entity, in order: its features, or ``None`` when it has no row or its row is
        expired.
    expired : list of bool
        Per entity: whether a row exists but is older than the view's TTL.
    """

    values: list[dict[str, Any] | None]
    expired: list[bool]


def read_view(
    store: OnlineStore,
    view: str,
    keys: list[dict[str, Any]],
    features: list[str],
    ttl_seconds: float | None,
    *,
    now: datetime | None = None,
) -> ViewRead:
    """Read one view's rows from an online store, dropping the ones past the view's TTL.

    Parameters
    ----------
    store : OnlineStore
        Where materialization wrote the view.
    view : str
        The view's name.
    keys : list of dict
        One dict of join key values per entity.
    features : list of str
        The features to read (all of them when empty).
    ttl_seconds : float or None
        The view's TTL; ``None`` keeps every row whatever its age.
    now : datetime, optional
        The instant ages are measured from (timezone-aware); the current time by default.

    Returns
    -------
    ViewRead
        The values per entity, ``None`` for a missing or expired row, and which were
        expired.
    """
    if ttl_seconds is None:
        values = store.read(view, keys, features) if keys else []
        return ViewRead(values, [False] * len(values))
    rows = store.read_timestamped(view, keys, features) if keys else []
    return _expire(rows, ttl_seconds, now)


def _expire(
    rows: list[tuple[dict[str, Any], datetime] | None],
    ttl_seconds: float | None,
    now: datetime | None,
) -> ViewRead:
    """Drop the rows older than ``ttl_seconds`` at ``now``."""
    if ttl_seconds is None:
        return ViewRead([None if row is None else row[0] for row in rows], [False] * len(rows))
    oldest = (now or datetime.now(UTC)) - timedelta(seconds=ttl_seconds)
    expired = [row is not None and row[1] < oldest for row in rows]
    kept = [None if row is None or old else row[0] for row, old in zip(rows, expired, strict=True)]
    return ViewRead(kept, expired)


def read_views(
    store: OnlineStore,
    reads: Sequence[tuple[str, list[dict[str, Any]], list[str], float | None]],
    *,
    now: datetime | None = None,
) -> list[ViewRead]:
    """Read several views like :func:`read_view`, in one round trip when the store can.

    Parameters
    ----------
    store : OnlineStore
        Where materialization wrote the views. A store with a ``read_timestamped_views``
        method (the Redis store) answers every view in one round trip; any other is read
        a view at a time.
    reads : sequence of tuple
        Per view: its name, the join key values per entity, the features to read and its
        TTL in seconds (or ``None``).
    now : datetime, optional
        The instant ages are measured from (timezone-aware); the current time by default.

    Returns
    -------
    list of ViewRead
        One per view, in order.
    """
    batched = getattr(store, "read_timestamped_views", None)
    if batched is None:
        return [read_view(store, v, k, f, ttl, now=now) for v, k, f, ttl in reads]
    rows = batched([(view, keys, features) for view, keys, features, _ in reads])
    return [_expire(found, read[3], now) for found, read in zip(rows, reads, strict=True)]


@overload
def get_online_features(
    entity_rows: list[dict[str, Any]] | pd.DataFrame,
    features: Sequence[str] | FeatureService | str,
    *,
    online_store: str | OnlineStore | None = None,
    as_dict: Literal[False] = False,
) -> pd.DataFrame: ...


@overload
def get_online_features(
    entity_rows: list[dict[str, Any]] | pd.DataFrame,
    features: Sequence[str] | FeatureService | str,
    *,
    online_store: str | OnlineStore | None = None,
    as_dict: Literal[True],
) -> dict[str, list[Any]]: ...


def get_online_features(
    entity_rows: list[dict[str, Any]] | pd.DataFrame,
    features: Sequence[str] | FeatureService | str,
    *,
    online_store: str | OnlineStore | None = None,
    as_dict: bool = False,
) -> pd.DataFrame | dict[str, list[Any]]:
    """Look up the latest materialized feature values of some entities.

    Parameters
    ----------
    entity_rows : list of dict or pandas.DataFrame
        One row per entity: the join key values of the requested views' entities.
    features : list of str, FeatureService, or str
        ``"view:feature"`` (or ``"view"`` for all its features) references, a
        :class:`FeatureService`, or the name of an applied feature service. View and
        service definitions read in the last
        :data:`~loopml.features.definitions.DEFINITIONS_CACHE_SECONDS` are reused.
    online_store : str or OnlineStore, optional
        An online store or its URI; ``LOOPML_ONLINE_STORE``, else the SQLite store under
        ``LOOPML_HOME``, by default.
    as_dict : bool
        Return ``{column: [value per entity]}`` of plain Python values (``None`` where the
        DataFrame has a null) instead of a DataFrame: the same columns, without the cost of
        building a DataFrame, which dominates a lookup of a few entities.

    Returns
    -------
    pandas.DataFrame or dict
        The entity rows' columns, in their order, plus one ``<view>__<feature>`` column per
        feature; null for an entity never materialized, and for a view whose latest value
        is older than its TTL (relative to now).

    Raises
    ------
    InvalidInput
        An unknown feature, or an entity row without a join key of a requested view.
    StoreUnavailable
        When the online store cannot be reached.
    """
    requests = _requests(features)
    records, entity_columns = _rows(entity_rows)
    # One instant for every view, so that a lookup's rows agree on what is expired.
    now = datetime.now(UTC)
    found_columns: dict[str, list[Any]] = {}
    numeric: set[str] = set()
    reads = []
    for request in requests:
        join_keys = list(request.definition["join_keys"])
        missing = [k for k in join_keys if k not in entity_columns]
        if missing:
            raise InvalidInput(
                f"the entity rows have no join key {missing[0]!r} of view {request.name!r}",
                field=missing[0],
            )
        keys = [{k: row.get(k) for k in join_keys} for row in records]
        reads.append((request.name, keys, request.features, request.definition.get("ttl_seconds")))
    online, owned = _open(online_store)
    try:
        views_read = (
            read_views(online, reads, now=now) if records else [ViewRead([], []) for _ in reads]
        )
    finally:
        if owned:
            online.close()
    for request, read in zip(requests, views_read, strict=True):
        found = read.values
        dtypes = {f["name"]: f["dtype"] for f in request.definition["features"]}
        for feature in request.features:
            column = f"{request.name}__{feature}"
            found_columns[column] = [None if hit is None else hit.get(feature) for hit in found]
            if dtypes.get(feature, "").startswith(("int", "float")):
                numeric.add(column)
    if as_dict:
        plain = {
            name: values.tolist() if hasattr(values, "tolist") else list(values)
            for name, values in entity_columns.items()
        }
        return {**plain, **found_columns}
    return _frame(entity_columns, found_columns, numeric)


def _frame(
    entity_columns: dict[Any, Any], found_columns: dict[str, list[Any]], numeric: set[str]
) -> pd.DataFrame:
    """The lookup as a DataFrame, built in one go rather than a column at a time."""
    import pandas as pd

    columns: dict[Any, Any] = dict(entity_columns)
    for name, values in found_columns.items():
        # A numeric feature null for every entity (all expired, say) is NaN, like one null
        # among numbers, rather than a column of None.
        if name in numeric and all(v is None for v in values):
            columns[name] = [math.nan] * len(values)
        else:
            columns[name] = values
    # Plain columns (int, float, bool) get their natural dtype back; missing values are NaN.
    return pd.DataFrame(columns).infer_objects()


__all__ = ["ViewRead", "get_online_features", "read_view", "read_views"]
