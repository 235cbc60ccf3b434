"""Request enrichment from the online store, for a model served with a feature service.

A ``/predict`` body then carries the entities' join keys (and any inputs that are not
features); the service's views are read from the online store in one batched lookup per
request (one round trip on Redis), and their values become ``<view>__<feature>`` columns,
the names :func:`~loopml.features.get_historical_features` gives them in training sets. A view's TTL
applies as in :func:`~loopml.features.get_online_features`: an entity whose latest row is
older than the TTL is refused like one never materialized.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from loopml.errors import InvalidInput
from loopml.features.online import OnlineStore, open_online_store
from loopml.features.online_lookup import read_views
from loopml.features.retrieval import _requests
from loopml.models import signature as signatures


@dataclass(frozen=True)
class _View:
    name: str
    join_keys: list[str]
    features: list[str]
    ttl_seconds: float | None


class FeatureEnricher:
    """Adds a feature service's online values to request frames.

    Parameters
    ----------
    service : str
        The name of an applied feature service.
    online_store : str, optional
        The online store URI; the SQLite store under ``LOOPML_HOME`` by default.

    Raises
    ------
    NotFound
        When no feature service of that name is applied.
    """

    def __init__(self, service: str, online_store: str | None = None) -> None:
        self.service = service
        self._uri = online_store
        self._views = [
            _View(
                r.name,
                list(r.definition["join_keys"]),
                list(r.features),
                r.definition.get("ttl_seconds"),
            )
            for r in _requests(service)
        ]
        self._store: OnlineStore | None = None
        self._lock = threading.Lock()

    @property
    def join_keys(self) -> list[str]:
        """The join key columns a request must carry, in first-use order."""
        return list(dict.fromkeys(k for v in self._views for k in v.join_keys))

    @property
    def columns(self) -> list[str]:
        """The ``<view>__<feature>`` columns the enricher adds."""
        return [f"{v.name}__{f}" for v in self._views for f in v.features]

    def request_signature(self, signature: dict[str, Any] | None) -> dict[str, Any]:
        """The signature a request body is checked against: join keys, then non-features.

        Join keys have no declared type (the online store matches ``1001`` and ``1001.0``),
        so they are accepted as any JSON value.
        """
        added = set(self.columns)
        inputs = [c for c in (signature or {}).get("inputs") or [] if c["name"] not in added]
        names = {c["name"] for c in inputs}
        keys = [{"name": k, "type": "any"} for k in self.join_keys if k not in names]
        return {**(signature or {}), "inputs": keys + inputs}

    def _online(self) -> OnlineStore:
        with self._lock:
            if self._store is None:
                self._store = open_online_store(self._uri)
            return self._store

    def enrich(
        self, frame: pd.DataFrame, signature: dict[str, Any] | None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Look the request's entities up and build the model's input frame.

        Parameters
        ----------
        frame : pandas.DataFrame
            The request's records: join keys and non-feature inputs.
        signature : dict or None
            The model's signature, which the enriched frame is checked against.

        Returns
        -------
        tuple of pandas.DataFrame
            The frame given to the model (in signature order), and the frame to log: the join
            keys followed by the model's inputs.

        Raises
        ------
        InvalidInput
            A missing join key value, or an entity the online store holds no row for or only
            one past the view's TTL (naming the key and its value), or enriched values the
            signature refuses.
        """
        enriched = frame.reset_index(drop=True).copy()
        store = self._online()
        now = datetime.now(UTC)
        entity_keys = []
        for view in self._views:
            for key in view.join_keys:
                if enriched[key].isna().any():
                    raise InvalidInput(f"join key {key!r} has a missing value", field=key)
            entity_keys.append(
                [
                    {k: _plain(row[k]) for k in view.join_keys}
                    for row in enriched[view.join_keys].to_dict("records")
                ]
            )
        reads = read_views(
            store,
            [
                (view.name, keys, view.features, view.ttl_seconds)
                for view, keys in zip(self._views, entity_keys, strict=True)
            ],
            now=now,
        )
        for view, keys, read in zip(self._views, entity_keys, reads, strict=True):
            found = read.values
            for entity, values, expired in zip(keys, found, read.expired, strict=True):
                if values is None:
                    shown = ", ".join(f"{k}={v!r}" for k, v in entity.items())
                    reason = (
                        f"its latest values are older than the view's TTL ({view.ttl_seconds:g} s)"
                        if expired
                        else "the entity is unknown or not materialized"
                    )
                    raise InvalidInput(
                        f"no online features of view {view.name!r} for {shown}: {reason}",
                        field=view.join_keys[0],
                    )
            for feature in view.features:
                enriched[f"{view.name}__{feature}"] = [v[feature] for v in found if v is not None]
        model_frame = signatures.enforce(enriched, signature)
        logged = pd.concat(
            [enriched[self.join_keys], model_frame.drop(columns=self.join_keys, errors="ignore")],
            axis=1,
        )
        return model_frame, logged

    def close(self) -> None:
        """Close the online store, if it was opened."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value the online store encodes keys from."""
    return value.item() if hasattr(value, "item") else value
