"""Training/serving skew: the feature values a model was served against offline recomputation.

A model served with a feature service logs, with each prediction, the entity keys and the
``<view>__<feature>`` values read from the online store. :func:`check_skew` takes a sample of
those rows and recomputes the same features with :func:`get_historical_features` at each
prediction's timestamp; a value that differs means the online store served something a
training set built at that instant would not have held (a stale or missed materialization,
a value written online by hand, a TTL the online store does not apply).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput
from loopml.features.definitions import FeatureService
from loopml.features.retrieval import _requests, get_historical_features

if TYPE_CHECKING:
    import pandas as pd

_EVENT = "event_timestamp"


@dataclass(frozen=True)
class FeatureSkew:
    """How often one feature's served value differed from its offline recomputation."""

    feature: str
    compared: int
    mismatches: int

    @property
    def rate(self) -> float:
        """Mismatches over compared rows (0.0 when nothing was compared)."""
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class SkewReport:
    """The result of :func:`check_skew`.

    Attributes
    ----------
    rows : int
        Logged prediction rows compared.
    features : list of FeatureSkew
        Per ``<view>__<feature>`` column, in the service's order.
    examples : pandas.DataFrame
        Up to ``max_examples`` mismatching rows per feature: the join keys, ``timestamp``,
        ``feature``, ``served`` and ``offline``.
    """

    rows: int
    features: list[FeatureSkew]
    examples: pd.DataFrame = field(repr=False)

    @property
    def mismatches(self) -> int:
        """Mismatching values over all features."""
        return sum(f.mismatches for f in self.features)

    def to_frame(self) -> pd.DataFrame:
        """One row per feature: ``feature``, ``compared``, ``mismatches``, ``rate``."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "feature": f.feature,
                    "compared": f.compared,
                    "mismatches": f.mismatches,
                    "rate": f.rate,
                }
                for f in self.features
            ],
            columns=["feature", "compared", "mismatches", "rate"],
        )


def _same(served: Any, offline: Any, rel_tol: float) -> bool:
    served_missing = served is None or (isinstance(served, float) and math.isnan(served))
    offline_missing = offline is None or (isinstance(offline, float) and math.isnan(offline))
    if served_missing or offline_missing:
        return served_missing and offline_missing
    if isinstance(served, int | float) and isinstance(offline, int | float):
        return math.isclose(float(served), float(offline), rel_tol=rel_tol, abs_tol=1e-12)
    return bool(served == offline)


def _plain(value: Any) -> Any:
    """A numpy scalar or pandas missing value as a plain Python value."""
    import pandas as pd

    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def check_skew(
    predictions: pd.DataFrame,
    features: Sequence[str] | FeatureService | str,
    *,
    sample: int | None = 200,
    seed: int = 0,
    timestamp_field: str = "timestamp",
    rel_tol: float = 1e-9,
    max_examples: int = 5,
) -> SkewReport:
    """Compare served feature values with their point-in-time offline recomputation.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Logged predictions of a model served with a feature service, e.g.
        ``lm.monitoring.predictions("eta")``: the join keys, the ``<view>__<feature>``
        columns and each row's ``timestamp``.
    features : list of str, FeatureService, or str
        The features to check, as for :func:`get_historical_features` (usually the name of
        the feature service the model is served with); only those logged are compared.
    sample : int, optional
        Rows drawn at random (``None``: all of them).
    seed : int
        Seeds the sample.
    timestamp_field : str
        The predictions' time column.
    rel_tol : float
        Relative tolerance for numbers.
    max_examples : int
        Mismatching rows kept per feature in :attr:`SkewReport.examples`.

    Returns
    -------
    SkewReport
        Per-feature compared rows, mismatch counts and rates, and examples.

    Raises
    ------
    InvalidInput
        A predictions frame without the timestamp or a join key column, with none of the
        features, or a bad ``sample``.
    """
    import pandas as pd

    if not isinstance(predictions, pd.DataFrame):
        raise InvalidInput("predictions must be a pandas DataFrame", field="predictions")
    if sample is not None and (
        isinstance(sample, bool) or not isinstance(sample, int) or sample < 1
    ):
        raise InvalidInput("sample must be a positive integer or None", field="sample")
    requests = _requests(features)
    keys = list(dict.fromkeys(k for r in requests for k in r.definition["join_keys"]))
    for column in [timestamp_field, *keys]:
        if column not in predictions.columns:
            raise InvalidInput(
                f"the predictions have no {column!r} column: was the model served with a "
                "feature service?",
                field=column,
            )
    columns = [
        f"{r.name}__{f}" for r in requests for f in r.features if f"{r.name}__{f}" in predictions
    ]
    if not columns:
        raise InvalidInput(
            "the predictions hold none of the features: was the model served with this "
            "feature service?",
            field="features",
        )
    rows = predictions
    if sample is not None and len(rows) > sample:
        rows = rows.sample(sample, random_state=seed)
    rows = rows.reset_index(drop=True)
    entities = rows[keys].copy()
    entities[_EVENT] = pd.to_datetime(rows[timestamp_field], utc=True)
    offline = get_historical_features(entities, [c.replace("__", ":", 1) for c in columns])
    results: list[FeatureSkew] = []
    examples: list[dict[str, Any]] = []
    for column in columns:
        served = [_plain(v) for v in rows[column]]
        recomputed = [_plain(v) for v in offline[column]]
        differ = [
            i
            for i, (a, b) in enumerate(zip(served, recomputed, strict=True))
            if not _same(a, b, rel_tol)
        ]
        results.append(FeatureSkew(column, len(rows), len(differ)))
        for i in differ[:max_examples]:
            example = {k: _plain(rows[k].iloc[i]) for k in keys}
            example.update(
                timestamp=entities[_EVENT].iloc[i],
                feature=column,
                served=served[i],
                offline=recomputed[i],
            )
            examples.append(example)
    frame = pd.DataFrame(examples, columns=[*keys, "timestamp", "feature", "served", "offline"])
    return SkewReport(len(rows), results, frame)
