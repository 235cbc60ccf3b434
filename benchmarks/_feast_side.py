#!/usr/bin/env python
"""Feast's half of the feature store benchmark; runs inside ``benchmarks/.venv-feast``.

``bench_features.py`` runs this file once per step, each time in a fresh process::

    .venv-feast/bin/python _feast_side.py --worker STEP SPEC_JSON

with ``STEP`` one of ``historical``, ``materialize`` or ``lookup`` and ``SPEC_JSON`` as
:func:`bench_features.run_tool_step` builds it. The definitions mirror loopml's exactly: one
entity ``entity`` keyed by ``entity_id`` (int64), and the views ``fast`` and ``slow`` over the
shared Parquet files with the same features and TTLs. The registry is a local file, the
provider ``local``, the offline store ``file`` (Dask) or ``duckdb`` (Ibis over DuckDB) as the
spec says, and the online store SQLite or Redis.

The timing, memory and latency bookkeeping is :mod:`bench_features`'s, shared with loopml's
worker, so both tools are measured the same way. Module-level imports are the standard
library and the sibling benchmark modules only; Feast is imported inside the steps.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import bench_features as bf
from _common import dist_version, emit_result


def _online_config(spec: dict[str, Any]) -> dict[str, Any]:
    target = spec.get("online")
    if target == "redis":
        host, port, db = spec["redis_host"], spec["redis_port"], spec["redis_db"]
        return {"type": "redis", "connection_string": f"{host}:{port},db={db}"}
    return {"type": "sqlite", "path": str(Path(spec["home"]) / "online_store.db")}


def _store(spec: dict[str, Any]) -> Any:
    """A FeatureStore on the spec's registry, offline store and online store."""
    from feast import FeatureStore, RepoConfig
    from feast.repo_config import RegistryConfig

    home = Path(spec["home"])
    config = RepoConfig(
        project="bench_features",
        provider="local",
        registry=RegistryConfig(registry_type="file", path=str(home / "registry.db")),
        offline_store={"type": spec["offline"]},
        online_store=_online_config(spec),
        entity_key_serialization_version=3,
        repo_path=str(home),
    )
    return FeatureStore(config=config)


def _definitions(spec: dict[str, Any]) -> list[Any]:
    """The entity and the two views, as :data:`bench_features.VIEWS` describes them."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    types = {"int64": Int64, "float64": Float64}
    entity = Entity(name="entity", join_keys=[bf.KEY], value_type=ValueType.INT64)
    out: list[Any] = [entity]
    for view in bf.VIEWS:
        source = FileSource(
            name=f"{view.name}_source",
            path=spec["sources"][view.name],
            timestamp_field=bf.SOURCE_TS,
        )
        out.append(
            FeatureView(
                name=view.name,
                entities=[entity],
                ttl=timedelta(seconds=view.ttl_seconds),
                schema=[Field(name=name, dtype=types[dtype]) for name, dtype in view.features],
                source=source,
                online=True,
            )
        )
    return out


def _references() -> list[str]:
    return [f"{view.name}:{name}" for view in bf.VIEWS for name, _ in view.features]


def _historical(spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    store = _store(spec)
    store.apply(_definitions(spec))
    entity_df = pd.read_parquet(spec["entities"])
    references = _references()

    def retrieve() -> Any:
        job = store.get_historical_features(
            entity_df=entity_df, features=references, full_feature_names=True
        )
        return job.to_df()

    seconds, result, memory = bf.measured(retrieve)
    bf.write_training_set(result, spec["output"])
    return {"seconds": seconds, "rows": len(result), **memory}


def _materialize(spec: dict[str, Any]) -> dict[str, Any]:
    store = _store(spec)
    # apply also creates the online store's tables; it is set-up, not materialization.
    store.apply(_definitions(spec))
    start, end = bf.window(spec)

    def materialize() -> None:
        store.materialize(start, end, feature_views=[view.name for view in bf.VIEWS])

    seconds, _, memory = bf.measured(materialize)
    return {"seconds": seconds, **memory}


def _lookup(spec: dict[str, Any]) -> dict[str, Any]:
    store = _store(spec)
    references = _references()

    def lookup(entity_ids: list[int]) -> dict[str, list[Any]]:
        rows = [{bf.KEY: entity_id} for entity_id in entity_ids]
        found: dict[str, list[Any]] = store.get_online_features(
            features=references, entity_rows=rows, full_feature_names=True
        ).to_dict()
        return found

    return bf.time_lookups(spec, lookup)


STEPS = {"historical": _historical, "materialize": _materialize, "lookup": _lookup}


def main(argv: list[str]) -> int:
    """Run one step (``--worker STEP SPEC_JSON``) and print its result for the parent."""
    if len(argv) != 3 or argv[0] != "--worker" or argv[1] not in STEPS:
        print(f"usage: _feast_side.py --worker {{{','.join(STEPS)}}} SPEC_JSON", file=sys.stderr)
        return 2
    spec = json.loads(argv[2])
    result = STEPS[argv[1]](spec)
    result.update(bf.versions({"feast": dist_version("feast", "?")}))
    return emit_result(result)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
