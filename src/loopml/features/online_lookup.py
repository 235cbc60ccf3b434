"""Online lookup: the latest materialized feature values of some entities.

:func:`get_online_features` reads what materialization wrote to the online store, one round
trip per feature view, and returns the same ``<view>__<feature>`` columns as a training set
from :func:`~loopml.features.get_historical_features`, so a model sees the same names in
training and in serving.
"""

from __future__ import annotations

from collections.abc import Sequence
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
        feature; null for an entity never materialized. The views' TTL is not applied: the
        value is the latest one written.

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
            found = online.read(request.name, keys, request.features) if keys else []
            for feature in request.features:
                values = [None if hit is None else hit.get(feature) for hit in found]
                result[f"{request.name}__{feature}"] = pd.Series(values, dtype=object)
    finally:
        if owned:
            online.close()
    # Plain columns (int, float, bool) get their natural dtype back; missing values are NaN.
    return result.infer_objects()


__all__ = ["get_online_features"]
