"""Online lookup: the latest materialized feature values of some entities.

:func:`get_online_features` reads what materialization wrote to the online store, one round
trip per feature view, and returns the same ``<view>__<feature>`` columns as a training set
from :func:`~loopml.features.get_historical_features`, so a model sees the same names in
training and in serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput
from loopml.features.materialize import _open
from loopml.features.retrieval import _requests

if TYPE_CHECKING:
    import pandas as pd

    from loopml.features.definitions import FeatureService
    from loopml.features.online import OnlineStore


def _rows(entity_rows: Any) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    import pandas as pd

    if isinstance(entity_rows, pd.DataFrame):
        frame = entity_rows.reset_index(drop=True)
    elif isinstance(entity_rows, list | tuple) and all(isinstance(r, dict) for r in entity_rows):
        frame = pd.DataFrame(list(entity_rows))
    else:
        raise InvalidInput(
            "entity rows are a list of dicts or a DataFrame of join key values",
            field="entity_rows",
        )
    records = [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
    return records, frame


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
    oldest = (now or datetime.now(UTC)) - timedelta(seconds=ttl_seconds)
    rows = store.read_timestamped(view, keys, features) if keys else []
    expired = [row is not None and row[1] < oldest for row in rows]
    kept = [None if row is None or old else row[0] for row, old in zip(rows, expired, strict=True)]
    return ViewRead(kept, expired)


def get_online_features(
    entity_rows: list[dict[str, Any]] | pd.DataFrame,
    features: Sequence[str] | FeatureService | str,
    *,
    online_store: str | OnlineStore | None = None,
) -> pd.DataFrame:
    """Look up the latest materialized feature values of some entities.

    Parameters
    ----------
    entity_rows : list of dict or pandas.DataFrame
        One row per entity: the join key values of the requested views' entities.
    features : list of str, FeatureService, or str
        ``"view:feature"`` (or ``"view"`` for all its features) references, a
        :class:`FeatureService`, or the name of an applied feature service.
    online_store : str or OnlineStore, optional
        An online store or its URI; ``LOOPML_ONLINE_STORE``, else the SQLite store under
        ``LOOPML_HOME``, by default.

    Returns
    -------
    pandas.DataFrame
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
    import pandas as pd

    requests = _requests(features)
    records, frame = _rows(entity_rows)
    # One instant for every view, so that a lookup's rows agree on what is expired.
    now = datetime.now(UTC)
    result = frame.copy()
    online, owned = _open(online_store)
    try:
        for request in requests:
            join_keys = list(request.definition["join_keys"])
            missing = [k for k in join_keys if k not in frame.columns]
            if missing:
                raise InvalidInput(
                    f"the entity rows have no join key {missing[0]!r} of view {request.name!r}",
                    field=missing[0],
                )
            keys = [{k: row[k] for k in join_keys} for row in records]
            ttl = request.definition.get("ttl_seconds")
            found = read_view(online, request.name, keys, request.features, ttl, now=now).values
            dtypes = {f["name"]: f["dtype"] for f in request.definition["features"]}
            for feature in request.features:
                values = [None if hit is None else hit.get(feature) for hit in found]
                column = pd.Series(values, dtype=object)
                # A numeric feature null for every entity (all expired, say) is NaN, like
                # one null among numbers, rather than a column of None.
                if column.isna().all() and dtypes.get(feature, "").startswith(("int", "float")):
                    column = column.astype("float64")
                result[f"{request.name}__{feature}"] = column
    finally:
        if owned:
            online.close()
    # Plain columns (int, float, bool) get their natural dtype back; missing values are NaN.
    return result.infer_objects()


__all__ = ["ViewRead", "get_online_features", "read_view"]
