#!/usr/bin/env python
"""Feature store benchmark: loopml's point-in-time join, materialization and lookups vs Feast.

Run it with the project's interpreter, after ``bash benchmarks/setup_feast.sh``::

    .venv/bin/python benchmarks/bench_features.py           # 1M entity rows, 10M feature rows
    .venv/bin/python benchmarks/bench_features.py --quick   # 100,000 / 1,000,000, a smoke run
    .venv/bin/python benchmarks/bench_features.py --write   # and replace the RESULTS.md section

One data set, generated with numpy from a fixed seed and written once to Parquet under a
temporary folder in ``benchmarks/.work/``, is read by both tools: an entity frame (entity id,
event timestamp, row id) and two feature views over the same entities, ``fast`` (80 % of the
feature rows, TTL 3 days) and ``slow`` (20 %, TTL 10 days), three int/float features each.

Every step runs, for each tool, in a **fresh process** (loopml's with this interpreter,
Feast's with ``.venv-feast/bin/python`` through ``_feast_side.py``), and the timer brackets
the library call alone:

1. historical retrieval: the point-in-time join of every entity row with both views, its
   wall time (median of ``--repeat`` processes per tool, the tools taking turns) and the
   process's peak RSS during the call; the two results are compared row by row, and a
   sample against a pandas ``merge_asof`` reference;
2. materialization of the latest values of every entity to SQLite (each tool's default
   file) and to Redis (a database of its own, flushed before and after);
3. online lookups of 1 and of 100 entities from each online store: p50 and p99 over
   ``--lookups`` calls after ``--warmup`` calls, and the values of a check set of entities
   against the newest rows of the generated data.

This file is also loopml's worker (``bench_features.py --worker STEP SPEC``) and holds the
measuring helpers ``_feast_side.py`` shares; its module-level imports are the standard
library and the sibling benchmark modules only.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bench_data
from _common import (
    BenchError,
    clean_env,
    dist_version,
    emit_result,
    exit_on_sigterm,
    run_worker_script,
)
from _report import (
    BENCH_DIR,
    Table,
    add_output_options,
    load_at_start,
    load_span,
    print_tables_plain,
    replace_section,
    run_facts,
    say,
    write_raw_json,
)

DEFAULT_FEAST_PYTHON = BENCH_DIR / ".venv-feast" / "bin" / "python"
FEAST_SIDE = BENCH_DIR / "_feast_side.py"
SECTION = "Feature store"
SEED = 20_240_601
STEP_TIMEOUT_S = 1200.0

KEY = "entity_id"
SOURCE_TS = "event_ts"
ENTITY_TS = "event_timestamp"
ROW_ID = "row_id"
SPAN_DAYS = 30
SPAN_MS = SPAN_DAYS * 86_400_000
CHECK_ENTITIES = 200
UNKNOWN_ENTITIES = 5
REFERENCE_SAMPLE = 2_000


@dataclass(frozen=True)
class View:
    """One generated feature view: its share of the feature rows, TTL and features."""

    name: str
    share: float
    ttl_seconds: int
    features: tuple[tuple[str, str], ...]


VIEWS = (
    View("fast", 0.8, 3 * 86_400, (("clicks", "int64"), ("spend", "float64"), ("ctr", "float64"))),
    View(
        "slow",
        0.2,
        10 * 86_400,
        (("account_age_days", "int64"), ("credit_score", "float64"), ("balance", "float64")),
    ),
)
FEATURE_COLUMNS = [f"{v.name}__{name}" for v in VIEWS for name, _ in v.features]


# --------------------------------------------------------------------------------------------
# Measuring, shared by loopml's worker and Feast's (_feast_side.py).
# --------------------------------------------------------------------------------------------


def measured(call: Callable[[], Any]) -> tuple[float, Any, dict[str, int | None]]:
    """Time ``call()`` and read this process's peak RSS during it (``VmHWM`` after a reset).

    ``ru_maxrss`` would not do: Linux carries the high-water mark of the memory a child had
    before ``exec`` (the parent's, copied or shared at fork) into it, so the harness's own
    memory, which holds the generated data, would leak into every worker's figure.
    """
    import pyarrow

    gc.collect()
    # Free pages of what was read before are handed back, the same for both tools.
    pyarrow.default_memory_pool().release_unused()
    before = bench_data._rss_kib("VmRSS")
    setup_peak = bench_data._rss_kib("VmHWM")
    reset = bench_data._reset_peak_rss()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    during = bench_data._rss_kib("VmHWM") if reset else None
    process = max(setup_peak or 0, during or 0) or None
    return (
        seconds,
        result,
        {"rss_before_kib": before, "peak_rss_kib": during, "process_kib": process},
    )


def write_training_set(frame: Any, path: str) -> None:
    """Keep the row id and the feature columns of a training set for the comparison."""
    frame[[ROW_ID, *FEATURE_COLUMNS]].to_parquet(path, index=False)


def window(spec: dict[str, Any]) -> tuple[datetime, datetime]:
    """The materialization window: every generated event is inside it."""
    return datetime.fromisoformat(spec["start"]), datetime.fromisoformat(spec["end"])


def plain(value: Any) -> float | None:
    """A looked-up value as a float, or None for a missing one (NaN, None, pandas NA)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _percentiles(seconds: list[float]) -> dict[str, float]:
    import numpy as np

    values = np.asarray(seconds)
    return {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "mean": float(values.mean()),
        "n": len(seconds),
    }


def time_lookups(
    spec: dict[str, Any], lookup: Callable[[list[int]], dict[str, list[Any]]]
) -> dict[str, Any]:
    """Warm up, then time single-entity and batch lookups; read the check entities last.

    ``lookup(entity_ids)`` returns ``{column: values}`` with at least the
    ``<view>__<feature>`` columns, in the order of ``entity_ids``.
    """
    ids = json.loads(Path(spec["lookup_ids"]).read_text(encoding="utf-8"))
    singles, batches = ids["single"], ids["batch"]
    for i in range(spec["warmup"]):
        lookup([singles[i % len(singles)]])
        lookup(batches[i % len(batches)])
    timings: dict[str, list[float]] = {"single": [], "batch": []}
    for name, calls in (("single", [[s] for s in singles]), ("batch", batches)):
        for entity_ids in calls:
            start = time.perf_counter()
            lookup(entity_ids)
            timings[name].append(time.perf_counter() - start)
    checked_at = time.time()
    found = lookup(ids["check"])
    return {
        "checked_at": checked_at,
        "single": _percentiles(timings["single"]),
        "batch": _percentiles(timings["batch"]),
        "batch_size": len(batches[0]),
        "check": {c: [plain(v) for v in found[c]] for c in FEATURE_COLUMNS},
    }


def versions(extra: dict[str, str]) -> dict[str, str]:
    """The library versions of this interpreter that the results line names."""
    return {
        "python": platform.python_version(),
        "pandas": dist_version("pandas", "?"),
        "pyarrow": dist_version("pyarrow", "?"),
        "duckdb": dist_version("duckdb", "?"),
        **extra,
    }


# --------------------------------------------------------------------------------------------
# loopml's worker: runs in the project's interpreter.
# --------------------------------------------------------------------------------------------


def _apply_loopml(spec: dict[str, Any]) -> None:
    import loopml as lm

    entity = lm.features.Entity("entity", [KEY])
    definitions: list[Any] = [entity]
    for view in VIEWS:
        definitions.append(
            lm.features.FeatureView(
                view.name,
                [entity],
                source=spec["sources"][view.name],
                timestamp_field=SOURCE_TS,
                features=[lm.features.Field(name, dtype) for name, dtype in view.features],
                ttl=timedelta(seconds=view.ttl_seconds),
            )
        )
    lm.features.apply(definitions)


def _loopml_online(spec: dict[str, Any]) -> str | None:
    if spec["online"] == "redis":
        return f"redis://{spec['redis_host']}:{spec['redis_port']}/{spec['redis_db']}"
    return None  # the default: online_store.db under LOOPML_HOME


def _loopml_historical(spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    import loopml as lm

    _apply_loopml(spec)
    entity_df = pd.read_parquet(spec["entities"])
    views = [view.name for view in VIEWS]
    seconds, result, memory = measured(
        lambda: lm.features.get_historical_features(entity_df, views)
    )
    write_training_set(result, spec["output"])
    return {"seconds": seconds, "rows": len(result), **memory}


def _loopml_materialize(spec: dict[str, Any]) -> dict[str, Any]:
    import loopml as lm

    _apply_loopml(spec)
    start, end = window(spec)
    online = _loopml_online(spec)
    seconds, changed, memory = measured(
        lambda: lm.features.materialize(start, end, online_store=online)
    )
    return {"seconds": seconds, "changed": changed, **memory}


def _loopml_lookup(spec: dict[str, Any]) -> dict[str, Any]:
    import loopml as lm
    from loopml.features.online import open_online_store

    # One open store for all calls, as a server keeps it; Feast keeps its connection too.
    store = open_online_store(_loopml_online(spec))
    views = [view.name for view in VIEWS]

    def lookup(entity_ids: list[int]) -> dict[str, list[Any]]:
        rows = [{KEY: entity_id} for entity_id in entity_ids]
        # Plain lists, like Feast's `.to_dict()`: neither side builds a DataFrame.
        found = lm.features.get_online_features(rows, views, online_store=store, as_dict=True)
        return {c: found[c] for c in FEATURE_COLUMNS}

    try:
        return time_lookups(spec, lookup)
    finally:
        store.close()


LOOPML_STEPS = {
    "historical": _loopml_historical,
    "materialize": _loopml_materialize,
    "lookup": _loopml_lookup,
}


def worker_main(step: str, spec_json: str) -> int:
    """Entry point of loopml's worker: run one step and print its result as JSON."""
    spec = json.loads(spec_json)
    result = LOOPML_STEPS[step](spec)
    result.update(versions({"loopml": dist_version("loopml", "?")}))
    return emit_result(result)


# --------------------------------------------------------------------------------------------
# The data set (parent).
# --------------------------------------------------------------------------------------------


@dataclass
class DataSet:
    """The generated Parquet files and what the checks need of the data in memory."""

    folder: Path
    start: datetime
    entities: int
    entity_rows: int
    view_rows: dict[str, int]
    paths: dict[str, Path]
    entity_frame: Any  # pandas DataFrame: entity_id, ts_ms, row_id
    views: dict[str, Any]  # view name -> pandas DataFrame: entity_id, ts_ms, features
    seconds: float


def _view_frame(rng: Any, view: View, rows: int, entities: int) -> Any:
    """``rows`` events of random entities at even milliseconds, no two of one entity at once."""
    import numpy as np
    import pandas as pd

    ids = rng.integers(1, entities + 1, size=rows, dtype=np.int64)
    ts = 2 * rng.integers(0, SPAN_MS // 2, size=rows, dtype=np.int64)
    # Two events of one entity at the same instant would test each tool's tie rule, not the
    # join: keep the first of each (entity, time) pair.
    _, first = np.unique(ids * SPAN_MS + ts, return_index=True)
    keep = np.sort(first)
    ids, ts = ids[keep], ts[keep]
    n = len(ids)
    columns: dict[str, Any] = {KEY: ids, "ts_ms": ts}
    if view.name == "fast":
        columns["clicks"] = rng.poisson(3.0, n).astype(np.int64)
        columns["spend"] = np.round(rng.lognormal(2.0, 1.0, n), 2)
        columns["ctr"] = rng.beta(2.0, 30.0, n)
    else:
        columns["account_age_days"] = rng.integers(0, 3650, n, dtype=np.int64)
        columns["credit_score"] = rng.normal(650.0, 80.0, n)
        columns["balance"] = np.round(rng.lognormal(7.0, 1.5, n), 2)
    # Sources are logs appended in event-time order.
    return pd.DataFrame(columns).sort_values("ts_ms", kind="stable", ignore_index=True)


def timeline_start() -> datetime:
    """The first instant of the generated events: 30 days before today's midnight (UTC).

    The events end where the run starts, as in a live store: the online stores see the
    newest values at their real age, and TTLs that are applied at lookup time keep some.
    """
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=SPAN_DAYS)


def _utc(start: datetime, ms: Any) -> Any:
    import pandas as pd

    return pd.to_datetime(start) + pd.to_timedelta(ms, unit="ms")


def generate(entities: int, feature_rows: int, seed: int, folder: Path) -> DataSet:
    """Generate the entity frame and both views and write them to Parquet in ``folder``."""
    import numpy as np

    started = time.perf_counter()
    start = timeline_start()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    views: dict[str, Any] = {}
    paths: dict[str, Path] = {}
    for view in VIEWS:
        frame = _view_frame(rng, view, round(feature_rows * view.share), entities)
        views[view.name] = frame
        out = frame.drop(columns="ts_ms")
        out.insert(1, SOURCE_TS, _utc(start, frame["ts_ms"]))
        paths[view.name] = folder / f"{view.name}.parquet"
        out.to_parquet(paths[view.name], index=False)
    # Entity rows at odd milliseconds, features at even ones: no event lands exactly on an
    # entity row's time or on a TTL boundary, where "at or before" rules could differ.
    entity_frame = _entity_frame(rng, entities)
    out = entity_frame[[KEY]].copy()
    out[ENTITY_TS] = _utc(start, entity_frame["ts_ms"])
    out[ROW_ID] = entity_frame[ROW_ID]
    paths["entities"] = folder / "entities.parquet"
    out.to_parquet(paths["entities"], index=False)
    return DataSet(
        folder=folder,
        start=start,
        entities=entities,
        entity_rows=len(entity_frame),
        view_rows={name: len(frame) for name, frame in views.items()},
        paths=paths,
        entity_frame=entity_frame,
        views=views,
        seconds=time.perf_counter() - started,
    )


def _entity_frame(rng: Any, rows: int) -> Any:
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            KEY: rng.integers(1, rows + 1, size=rows, dtype=np.int64),
            "ts_ms": 2 * rng.integers(0, SPAN_MS // 2, size=rows, dtype=np.int64) + 1,
            ROW_ID: np.arange(rows, dtype=np.int64),
        }
    )


def lookup_ids(data: DataSet, count: int, batch: int, seed: int, path: Path) -> list[int]:
    """Write the entities of the timed lookups and of the check; return the check's ids."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    check = rng.choice(data.entities, size=min(CHECK_ENTITIES, data.entities), replace=False) + 1
    # A few entities that were never written: both tools must answer them with nulls.
    unknown = np.arange(data.entities + 1, data.entities + 1 + UNKNOWN_ENTITIES)
    ids = {
        "single": rng.integers(1, data.entities + 1, size=count).tolist(),
        "batch": rng.integers(1, data.entities + 1, size=(count, batch)).tolist(),
        "check": [*check.tolist(), *unknown.tolist()],
    }
    path.write_text(json.dumps(ids), encoding="utf-8")
    return list(ids["check"])


@dataclass
class Newest:
    """The newest generated row of each check entity: per feature its value, per view its age."""

    values: dict[str, list[float | None]]
    epoch_ms: dict[str, list[float | None]]


def expected_online(data: DataSet, check: list[int]) -> Newest:
    """The newest value of each check entity per feature, straight from the generated rows."""
    start_ms = data.start.timestamp() * 1000
    newest = Newest({}, {})
    for view in VIEWS:
        frame = data.views[view.name]
        rows = frame[frame[KEY].isin(check)].sort_values("ts_ms", kind="stable")
        latest = rows.groupby(KEY).last()
        times = latest["ts_ms"].to_dict()
        newest.epoch_ms[view.name] = [
            None if e not in times else start_ms + times[e] for e in check
        ]
        for name, _ in view.features:
            values = latest[name].to_dict()
            newest.values[f"{view.name}__{name}"] = [plain(values.get(e)) for e in check]
    return newest


def reference_join(data: DataSet, rows: int, seed: int) -> Any:
    """A pandas ``merge_asof`` of a sample of entity rows: the expected training rows."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + 2)
    size = min(rows, data.entity_rows)
    sample = data.entity_frame.iloc[np.sort(rng.choice(data.entity_rows, size, replace=False))]
    result = sample[[ROW_ID]].copy().set_index(ROW_ID)
    left = sample.sort_values("ts_ms")
    for view in VIEWS:
        frame = data.views[view.name]
        right = frame[frame[KEY].isin(sample[KEY])].rename(columns={"ts_ms": "source_ms"})
        joined = pd.merge_asof(
            left,
            right.sort_values("source_ms"),
            left_on="ts_ms",
            right_on="source_ms",
            by=KEY,
            direction="backward",
        ).set_index(ROW_ID)
        fresh = joined["ts_ms"] - joined["source_ms"] <= view.ttl_seconds * 1000
        for name, _ in view.features:
            result[f"{view.name}__{name}"] = joined[name].where(fresh).astype("float64")
    return result.sort_index()


# --------------------------------------------------------------------------------------------
# Running the steps (parent).
# --------------------------------------------------------------------------------------------


@dataclass
class ToolRun:
    """Every step of one tool: results by step key, or the error that stopped one."""

    tool: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def seconds(self, step: str) -> float | None:
        """The timed seconds of a step, None if it did not run."""
        result = self.results.get(step)
        return None if result is None else float(result["seconds"])


def worker_env(tool: str, home: Path) -> dict[str, str]:
    """The environment of a worker: no caller settings, telemetry off, its own home."""
    env = clean_env({"FEAST_USAGE": "False"})
    if tool == "loopml":
        env["LOOPML_HOME"] = str(home)
    return env


def run_step(
    run: ToolRun, key: str, python: Path, step: str, spec: dict[str, Any], home: Path
) -> dict[str, Any] | None:
    """Run one step in a fresh process; record its result or its error."""
    script = __file__ if run.tool == "loopml" else str(FEAST_SIDE)
    say(f"[{run.tool}] {key}")
    try:
        result: dict[str, Any] = run_worker_script(
            python,
            script,
            [step, json.dumps(spec)],
            env=worker_env(run.tool, home),
            cwd=home,
            timeout=STEP_TIMEOUT_S,
            what=f"{run.tool} {key}",
        )
    except BenchError as exc:
        run.errors[key] = str(exc)
        say(f"  FAILED: {exc}")
        return None
    run.results[key] = result
    if "seconds" in result:
        peak = bench_data.fmt_mib(result.get("peak_rss_kib"))
        say(f"  {bench_data.fmt_s(result['seconds'])}, peak RSS during the call {peak}")
    else:
        say(
            f"  1 entity p50 {fmt_ms(result['single']['p50'])}, "
            f"{result['batch_size']} entities p50 {fmt_ms(result['batch']['p50'])}"
        )
    return result


def flush_redis(url: str) -> None:
    """Empty one Redis database the benchmark owns."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_reachable(url: str) -> str | None:
    """None when Redis answers at ``url``, else why not."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def tool_spec(
    tool: str,
    args: argparse.Namespace,
    data: DataSet,
    work: Path,
    ids_path: Path,
    redis_db: int | None,
) -> dict[str, Any]:
    """What every step of one tool is told, with a home folder of its own."""
    home = work / tool
    home.mkdir()
    end = data.start + timedelta(milliseconds=SPAN_MS + 1)
    return {
        "home": str(home),
        "sources": {v.name: str(data.paths[v.name]) for v in VIEWS},
        "entities": str(data.paths["entities"]),
        "output": str(home / "training.parquet"),
        "offline": args.feast_offline,
        "online": "sqlite",
        "start": data.start.isoformat(),
        "end": end.isoformat(),
        "lookup_ids": str(ids_path),
        "warmup": args.warmup,
        "redis_host": args.redis_host,
        "redis_port": args.redis_port,
        "redis_db": redis_db,
    }


def run_historical(
    runs: dict[str, ToolRun], pythons: dict[str, Path], specs: dict[str, Any], repeat: int
) -> None:
    """Time the point-in-time join ``repeat`` times per tool, the tools taking turns.

    Taking turns spreads the load of a shared machine over both tools alike. The step's
    result keeps the median time, the largest peak RSS and every time.
    """
    seconds: dict[str, list[float]] = {tool: [] for tool in runs}
    peaks: dict[str, list[dict[str, Any]]] = {tool: [] for tool in runs}
    for _ in range(repeat):
        for tool, run in runs.items():
            if "historical" in run.errors:
                continue
            home = Path(specs[tool]["home"])
            result = run_step(run, "historical", pythons[tool], "historical", specs[tool], home)
            if result is not None:
                seconds[tool].append(float(result["seconds"]))
                peaks[tool].append(result)
    for tool, run in runs.items():
        if "historical" in run.errors:
            run.results.pop("historical", None)
        elif seconds[tool]:
            run.results["historical"].update(
                {
                    "seconds": statistics.median(seconds[tool]),
                    "all_seconds": seconds[tool],
                    **{
                        key: max(int(r[key] or 0) for r in peaks[tool])
                        for key in ("peak_rss_kib", "process_kib")
                    },
                }
            )


def run_online(run: ToolRun, python: Path, spec: dict[str, Any], args: argparse.Namespace) -> None:
    """Materialize to each online store, then time lookups from it; Redis is flushed around."""
    home = Path(spec["home"])
    targets = ["sqlite"] + (["redis"] if spec["redis_db"] is not None else [])
    for target in targets:
        step_spec = {**spec, "online": target}
        url = f"redis://{args.redis_host}:{args.redis_port}/{spec['redis_db']}"
        if target == "redis":
            flush_redis(url)
        try:
            if run_step(run, f"materialize-{target}", python, "materialize", step_spec, home):
                run_step(run, f"lookup-{target}", python, "lookup", step_spec, home)
        finally:
            if target == "redis":
                flush_redis(url)


# --------------------------------------------------------------------------------------------
# Checks and tables (parent).
# --------------------------------------------------------------------------------------------


def fmt_ms(seconds: float) -> str:
    """Format a latency: ``85 µs``, ``1.23 ms``, ``12.3 ms``."""
    us = seconds * 1e6
    if us < 1000:
        return f"{us:.0f} µs"
    return f"{us / 1000:.2f} ms" if us < 10_000 else f"{us / 1000:.1f} ms"


def ratio(feast: float | None, loopml: float | None, less: str = "faster") -> str:
    """``Feast / loopml`` as ``4.2x faster`` (or ``1.5x slower``) for loopml."""
    if feast is None or loopml is None or loopml <= 0 or feast <= 0:
        return "—"
    value = feast / loopml
    more = {"faster": "slower", "less": "more"}[less]
    return f"{value:.1f}x {less}" if value >= 1 else f"{1 / value:.1f}x {more}"


def compare_training(loopml_path: Path, feast_path: Path | None, reference: Any) -> dict[str, Any]:
    """Rows and non-null counts per tool, rows where the tools differ, the sample's agreement.

    A row missing from one result, or returned more than once, counts as differing: the
    comparison is by row id against the entity frame's rows.
    """
    import numpy as np
    import pandas as pd

    def load(path: Path) -> tuple[Any, int, int]:
        frame = pd.read_parquet(path).set_index(ROW_ID).sort_index()
        repeated = frame.index.duplicated()
        frame = frame[~repeated]
        return frame[FEATURE_COLUMNS].astype("float64"), len(repeated), int(repeated.sum())

    def differing(a: Any, b: Any) -> Any:
        """Per row: one side null and the other not, or different values, in any column."""
        left, right = a.to_numpy(), b.to_numpy()
        both = ~np.isnan(left) & ~np.isnan(right)
        return (np.isnan(left) != np.isnan(right)) | (both & (left != right))

    lm, lm_rows, lm_repeated = load(loopml_path)
    out: dict[str, Any] = {
        "rows": {"loopml": lm_rows},
        "repeated": {"loopml": lm_repeated},
        "non_null": {"loopml": lm.notna().sum().astype(int).to_dict()},
        "reference_rows": len(reference),
        "reference_mismatch": {
            "loopml": int(differing(lm.reindex(reference.index), reference).any(axis=1).sum())
        },
    }
    if feast_path is not None and feast_path.exists():
        fe, fe_rows, fe_repeated = load(feast_path)
        out["rows"]["Feast"] = fe_rows
        out["repeated"]["Feast"] = fe_repeated
        out["non_null"]["Feast"] = fe.notna().sum().astype(int).to_dict()
        out["reference_mismatch"]["Feast"] = int(
            differing(fe.reindex(reference.index), reference).any(axis=1).sum()
        )
        ids = lm.index.union(fe.index)
        only_one = int(len(ids) - len(lm.index.intersection(fe.index)))
        common = lm.index.intersection(fe.index)
        diff = differing(lm.loc[common], fe.loc[common])
        out["missing_rows"] = {
            "loopml": int(len(ids.difference(lm.index))),
            "Feast": int(len(ids.difference(fe.index))),
        }
        out["differing_rows"] = int(diff.any(axis=1).sum()) + only_one + lm_repeated + fe_repeated
        out["differing_cells"] = dict(zip(FEATURE_COLUMNS, diff.sum(axis=0).tolist(), strict=True))
    return out


def compare_online(result: dict[str, Any], newest: Newest) -> tuple[int, int]:
    """Check entities with every value right, and views answered null for being past the TTL.

    A value is right when it is the entity's newest one, or null when the entity has none or
    its newest is older than the view's TTL when the lookup ran: a store that applies the TTL
    online answers null there, one that does not answers the value, and both are right.
    """
    found, checked_ms = result["check"], result["checked_at"] * 1000
    right, expired = 0, 0
    for i in range(len(next(iter(newest.values.values())))):
        ok = True
        for view in VIEWS:
            when = newest.epoch_ms[view.name][i]
            stale = when is not None and when < checked_ms - view.ttl_seconds * 1000
            columns = [f"{view.name}__{name}" for name, _ in view.features]
            got = [found[c][i] for c in columns]
            want = [newest.values[c][i] for c in columns]
            if got == want:
                continue
            if stale and all(v is None for v in got):
                expired += 1
                continue
            ok = False
        right += ok
    return right, expired


def _both(
    runs: dict[str, ToolRun], step: str, get: Callable[[dict[str, Any]], float | None]
) -> tuple[float | None, float | None]:
    lm, fe = (
        runs["loopml"].results.get(step),
        runs["Feast"].results.get(step) if "Feast" in runs else None,
    )
    return (get(lm) if lm else None, get(fe) if fe else None)


def main_table(args: argparse.Namespace, data: DataSet, runs: dict[str, ToolRun]) -> Table:
    """One row per measured quantity: loopml, Feast and the ratio."""
    fmt_s, fmt_mib = bench_data.fmt_s, bench_data.fmt_mib
    feast_run = runs.get("Feast")

    def cell(step: str, value: float | None, fmt: Callable[[Any], str]) -> str:
        if value is not None:
            return fmt(value)
        if feast_run is not None and step in feast_run.errors:
            return "failed"
        return "—"

    rows: list[list[str]] = []
    joined = f"{data.entity_rows:,} entity rows x {sum(data.view_rows.values()):,} feature rows"
    lm_s, fe_s = _both(runs, "historical", lambda r: r["seconds"])
    rows.append(
        [
            f"Historical retrieval ({joined}), wall time, median of {args.repeat}",
            fmt_s(lm_s or 0),
            cell("historical", fe_s, fmt_s),
            ratio(fe_s, lm_s),
        ]
    )
    for label, key in (("during the call", "peak_rss_kib"), ("of the process", "process_kib")):
        lm_m, fe_m = _both(runs, "historical", lambda r, k=key: r.get(k))
        rows.append(
            [
                f"Historical retrieval, peak RSS {label}",
                fmt_mib(lm_m),
                cell("historical", fe_m, fmt_mib),
                ratio(fe_m, lm_m, "less"),
            ]
        )
    for target, name in (("sqlite", "SQLite"), ("redis", "Redis")):
        step = f"materialize-{target}"
        if step not in runs["loopml"].results:
            continue
        lm_s, fe_s = _both(runs, step, lambda r: r["seconds"])
        rows.append(
            [
                f"Materialize latest values of {data.entities:,} entities x 2 views → {name}",
                fmt_s(lm_s or 0),
                cell(step, fe_s, fmt_s),
                ratio(fe_s, lm_s),
            ]
        )
    for target, name in (("sqlite", "SQLite"), ("redis", "Redis")):
        step = f"lookup-{target}"
        if step not in runs["loopml"].results:
            continue
        for kind, size in (("single", 1), ("batch", args.batch)):
            lm_r, fe_r = runs["loopml"].results[step][kind], None
            if feast_run is not None and step in feast_run.results:
                fe_r = feast_run.results[step][kind]
            rows.append(
                [
                    f"Online lookup from {name}, {size} entit{'y' if size == 1 else 'ies'} x 6 "
                    f"features, p50 / p99 of {args.lookups}",
                    f"{fmt_ms(lm_r['p50'])} / {fmt_ms(lm_r['p99'])}",
                    cell(step, None, str)
                    if fe_r is None
                    else f"{fmt_ms(fe_r['p50'])} / {fmt_ms(fe_r['p99'])}",
                    ratio(fe_r["p50"] if fe_r else None, lm_r["p50"]) + (" (p50)" if fe_r else ""),
                ]
            )
    head = ["Step", "loopml", f"Feast ({args.feast_offline} offline store)", "Feast / loopml"]
    return head, rows


def checks_table(
    data: DataSet, runs: dict[str, ToolRun], training: dict[str, Any], online: dict[str, Any]
) -> Table:
    """What each tool returned: non-null counts, differences, and the reference checks."""
    tools = [t for t in ("loopml", "Feast") if t in training["non_null"]]
    rows: list[list[str]] = [
        [f"Training set: rows returned (of {data.entity_rows:,} entity rows)"]
        + [f"{training['rows'][t]:,}" for t in tools]
    ]
    if any(training["repeated"].values()):
        rows.append(
            ["Training set: row ids returned more than once"]
            + [f"{training['repeated'][t]:,}" for t in tools]
        )
    for column in FEATURE_COLUMNS:
        rows.append(
            [f"Training set: non-null `{column}`"]
            + [f"{training['non_null'][t][column]:,}" for t in tools]
        )
    sample = training["reference_rows"]
    rows.append(
        [f"Training set: rows of a {sample:,}-row sample equal to pandas merge_asof + TTL"]
        + [f"{sample - training['reference_mismatch'][t]:,} / {sample:,}" for t in tools]
    )
    if "Feast" in tools:
        same = f"{data.entity_rows - min(training['differing_rows'], data.entity_rows):,}"
        rows.append(
            [f"Training set: rows identical in both tools (of {data.entity_rows:,})", same, same]
        )
    for step, (found, total) in online.items():
        cells = ["—" if found.get(t) is None else f"{found[t][0]} / {total}" for t in tools]
        rows.append([f"{step}: check entities with every value right", *cells])
        cells = ["—" if found.get(t) is None else f"{found[t][1]}" for t in tools]
        rows.append([f"{step}: check entity views answered null, past the TTL", *cells])
    return ["Check", *tools], rows


def targets_table(runs: dict[str, ToolRun], training: dict[str, Any], data: DataSet) -> Table:
    """DESIGN.md's feature store target: a point-in-time join faster than Feast, same rows."""
    lm_s, fe_s = _both(runs, "historical", lambda r: r["seconds"])
    differing = training.get("differing_rows")
    if fe_s is None or differing is None:
        measured_cell, met = "Feast did not produce a training set", "not measured"
    else:
        identical = differing == 0
        measured_cell = f"loopml {ratio(fe_s, lm_s)}, " + (
            "all rows identical" if identical else f"{differing:,} rows differ"
        )
        met = "yes" if fe_s > lm_s and identical else "**no**"
    return (
        ["Target", "Measured", "Target value", "Met"],
        [
            [
                f"point-in-time join, {data.entity_rows:,} entity rows x "
                f"{sum(data.view_rows.values()):,} feature rows vs Feast",
                measured_cell,
                "faster, identical rows",
                met,
            ]
        ],
    )


def build_notes(
    args: argparse.Namespace, data: DataSet, runs: dict[str, ToolRun], training: dict[str, Any]
) -> list[str]:
    """What was measured and how, and every failure on either side."""
    views = "; ".join(
        f"`{v.name}`: {data.view_rows[v.name]:,} rows, TTL {v.ttl_seconds // 86_400} days, "
        + ", ".join(f"{n} ({t})" for n, t in v.features)
        for v in VIEWS
    )
    out = [
        f"Data (seed {args.seed}, generated in {data.seconds:.1f} s, Parquet): "
        f"{data.entity_rows:,} entity rows (entity id drawn from {data.entities:,} entities, "
        "event time uniform over the 30 days before today at odd milliseconds, a row id) and "
        f"two views over the same entities, events at even milliseconds: {views}. Both tools "
        "read the same files; the join keys and types, TTLs and features are defined identically.",
        "Every step is one fresh process per tool; the timer brackets the library call only "
        "(imports, `apply` of the definitions and reading the entity Parquet file into pandas "
        "are before it). Peak RSS during the call is `VmHWM` after resetting it through "
        "`/proc/self/clear_refs` just before the call; of the process, the larger of that and "
        "the high-water mark before the reset. The same helper measures both tools.",
        "loopml: `lm.features.get_historical_features(entity_df, ['fast', 'slow'])` (DuckDB "
        "ASOF join over the Parquet files); `lm.features.materialize(start, end, "
        "online_store=...)` to the default SQLite file under `LOOPML_HOME` and to "
        f"`redis://{args.redis_host}:{args.redis_port}/{args.redis_dbs[0]}`; "
        "`lm.features.get_online_features(rows, ['fast', 'slow'], online_store=store, "
        "as_dict=True)` (plain lists, like Feast's `.to_dict()`) with one store opened for all "
        "lookups.",
    ]
    feast = runs.get("Feast")
    if feast is None:
        out.append(f"Feast was not measured: {args.feast_skipped}.")
    else:
        out.append(
            f"Feast {next(iter(feast.results.values()), {}).get('feast', '?')}: a local file "
            f"registry, provider `local`, offline store `{args.feast_offline}`; "
            "`store.get_historical_features(entity_df, features=[...], "
            "full_feature_names=True).to_df()`; `store.materialize(start, end)` to its `sqlite` "
            f"online store and to its `redis` online store (`{args.redis_host}:{args.redis_port},"
            f"db={args.redis_dbs[1]}`); `store.get_online_features(features=[...], "
            "entity_rows=[...]).to_dict()`."
        )
        for step, error in feast.errors.items():
            tail = " | ".join(error.strip().splitlines()[-4:])
            out.append(f"Feast's `{step}` step failed: {tail}")
    out.append(
        f"Online lookups: {args.warmup} warm-up calls of each size, then {args.lookups} calls "
        f"of 1 entity and {args.lookups} of {args.batch} entities, random entities (the same "
        "for both tools) and all 6 features of both views per call; the client runs in the "
        "worker process, so each latency is the whole public call. The check reads "
        f"{CHECK_ENTITIES} random entities and {UNKNOWN_ENTITIES} never written ones and "
        "compares every value with the newest generated row of the entity (nulls for the "
        "unknown ones)."
    )
    times = [
        f"{tool} "
        + " / ".join(bench_data.fmt_s(t) for t in run.results["historical"]["all_seconds"])
        for tool, run in runs.items()
        if "all_seconds" in run.results.get("historical", {})
    ]
    out.append(
        f"Historical retrieval: {args.repeat} fresh processes per tool, the tools taking turns "
        f"so that a shared machine's load falls on both alike; times: {'; '.join(times)}. The "
        "peak RSS rows show the largest of the runs."
    )
    missing = training.get("missing_rows", {})
    for tool, count in missing.items():
        if count:
            out.append(
                f"{tool}'s training set lacks {count:,} of the entity rows (by row id); they "
                "count as differing rows."
            )
    if training.get("differing_cells"):
        cells = {c: n for c, n in training["differing_cells"].items() if n}
        if cells:
            out.append(f"Cells where the two training sets differ: {cells}.")
    out.append(
        "A looked-up value is right when it is the entity's newest generated one, or null when "
        "the entity has none or, for a store that applies the view's TTL at lookup time, when "
        "the newest is older than the TTL. The events end at today's midnight (UTC), so the "
        "newest values have their real age when they are looked up; the rows 'answered null, "
        "past the TTL' show which tool applies the TTL online."
    )
    if runs["loopml"].results.get("materialize-sqlite", {}).get("changed"):
        changed = runs["loopml"].results["materialize-sqlite"]["changed"]
        out.append(
            "Entities written per view by loopml's materialization: "
            + ", ".join(f"{k} {v:,}" for k, v in changed.items())
            + "."
        )
    return out


def commentary(
    args: argparse.Namespace, runs: dict[str, ToolRun], training: dict[str, Any]
) -> list[str]:
    """The verdict on DESIGN.md's target and what else the numbers say, from the numbers."""
    feast = runs.get("Feast")
    lm_s, fe_s = _both(runs, "historical", lambda r: r["seconds"])
    differing = training.get("differing_rows")
    if feast is None or fe_s is None or differing is None:
        return [
            "DESIGN.md target (point-in-time join faster than Feast, identical rows): not "
            "measured, Feast produced no training set in this run."
        ]
    met = fe_s > lm_s and differing == 0
    out = [
        "DESIGN.md target (point-in-time join faster than Feast, identical rows): "
        + ("**met**" if met else "**not met**")
        + f": loopml took {bench_data.fmt_s(lm_s)} and Feast's {args.feast_offline} offline "
        f"store {bench_data.fmt_s(fe_s)} (medians; loopml {ratio(fe_s, lm_s)}), and "
        + ("every row is identical." if differing == 0 else f"{differing:,} rows differ.")
    ]
    slower = []
    for step, name in (
        ("materialize-sqlite", "materializing to SQLite"),
        ("materialize-redis", "materializing to Redis"),
    ):
        lm_t, fe_t = _both(runs, step, lambda r: r["seconds"])
        if lm_t is not None and fe_t is not None:
            slower.append(f"{name} loopml is {ratio(fe_t, lm_t)}")
    if slower:
        out.append("No target for materialization; " + "; ".join(slower) + ".")
    slower = []
    for target, name in (("sqlite", "SQLite"), ("redis", "Redis")):
        step = f"lookup-{target}"
        if step not in feast.results or step not in runs["loopml"].results:
            continue
        for kind, size in (("single", 1), ("batch", args.batch)):
            lm_p50 = runs["loopml"].results[step][kind]["p50"]
            fe_p50 = feast.results[step][kind]["p50"]
            if lm_p50 > fe_p50:
                entities = "1 entity" if size == 1 else f"{size} entities"
                slower.append(f"{entities} from {name} ({fmt_ms(lm_p50)} vs {fmt_ms(fe_p50)})")
    if slower:
        out.append(
            "No target for online lookups, and loopml's p50 is slower than Feast's for "
            + ", ".join(slower)
            + "."
        )
    elif any(f"lookup-{t}" in feast.results for t in ("sqlite", "redis")):
        out.append(
            "No target for online lookups; loopml's p50 is at or below Feast's for every "
            "store and lookup size measured."
        )
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    d = " (default: %(default)s)"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--quick", action="store_true", help="100,000 entity rows, 1,000,000 feature rows"
    )
    p.add_argument("--entities", type=int, default=1_000_000, help="entity rows and entities" + d)
    p.add_argument("--feature-rows", type=int, default=10_000_000, help="rows of both views" + d)
    p.add_argument("--seed", type=int, default=SEED, help="data seed" + d)
    p.add_argument(
        "--repeat", type=int, default=3, help="historical retrievals per tool, taking turns" + d
    )
    p.add_argument("--lookups", type=int, default=500, help="timed lookups of each size" + d)
    p.add_argument("--warmup", type=int, default=50, help="warm-up lookups of each size" + d)
    p.add_argument("--batch", type=int, default=100, help="entities per batch lookup" + d)
    p.add_argument(
        "--feast-offline",
        choices=["duckdb", "file"],
        default="duckdb",
        help="Feast's offline store: DuckDB through Ibis, or the Dask-based file store" + d,
    )
    p.add_argument("--feast-python", type=Path, default=DEFAULT_FEAST_PYTHON)
    p.add_argument("--skip-feast", action="store_true", help="measure loopml only")
    p.add_argument("--skip-redis", action="store_true", help="SQLite online stores only")
    p.add_argument("--redis-host", default="127.0.0.1", help="Redis host" + d)
    p.add_argument("--redis-port", type=int, default=6379, help="Redis port" + d)
    p.add_argument(
        "--redis-dbs",
        type=int,
        nargs=2,
        default=[13, 14],
        metavar=("LOOPML", "FEAST"),
        help="Redis databases the benchmark flushes and uses, one per tool" + d,
    )
    add_output_options(p, raw_json="every raw result")
    args = p.parse_args(argv)
    if args.quick:
        args.entities, args.feature_rows = 100_000, 1_000_000
    if min(args.entities, args.repeat, args.lookups, args.warmup, args.batch) < 1:
        p.error("--entities, --repeat, --lookups, --warmup and --batch must be positive")
    if args.feature_rows < 10:
        p.error("--feature-rows must be at least 10")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the data, run every step for both tools, print and optionally write."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if len(raw) == 3 and raw[0] == "--worker":
        return worker_main(raw[1], raw[2])
    args = parse_args(raw)
    exit_on_sigterm()
    started = time.perf_counter()
    feast_python = Path(os.path.abspath(args.feast_python))
    args.feast_skipped = None
    if args.skip_feast:
        args.feast_skipped = "--skip-feast"
    elif not feast_python.exists():
        args.feast_skipped = f"{feast_python} does not exist (bash benchmarks/setup_feast.sh)"
        say(f"warning: {args.feast_skipped}; measuring loopml only")
    redis_dbs: dict[str, int | None] = {"loopml": None, "Feast": None}
    if not args.skip_redis:
        why = redis_reachable(f"redis://{args.redis_host}:{args.redis_port}/0")
        if why:
            say(f"warning: Redis is not reachable ({why}); SQLite online stores only")
            args.skip_redis = True
        else:
            redis_dbs = dict(zip(("loopml", "Feast"), args.redis_dbs, strict=True))
    load_start = load_at_start()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="features-", dir=args.work_dir.resolve()))
    try:
        say(f"data: {args.entities:,} entity rows, {args.feature_rows:,} feature rows in {work}")
        data = generate(args.entities, args.feature_rows, args.seed, work / "data")
        say(f"  generated in {data.seconds:.1f} s: {data.view_rows}")
        ids_path = work / "lookup_ids.json"
        check = lookup_ids(data, args.lookups, args.batch, args.seed, ids_path)
        expected = expected_online(data, check)
        reference = reference_join(data, REFERENCE_SAMPLE, args.seed)
        pythons = {"loopml": Path(sys.executable)}
        if args.feast_skipped is None:
            pythons["Feast"] = feast_python
        runs = {tool: ToolRun(tool) for tool in pythons}
        specs = {
            tool: tool_spec(tool, args, data, work, ids_path, redis_dbs[tool]) for tool in runs
        }
        run_historical(runs, pythons, specs, args.repeat)
        if runs["loopml"].errors:
            raise BenchError(f"loopml failed: {runs['loopml'].errors}")
        for tool, run in runs.items():
            run_online(run, pythons[tool], specs[tool], args)
            if tool == "loopml" and run.errors:
                raise BenchError(f"loopml failed: {run.errors}")
        feast_training = work / "Feast" / "training.parquet"
        training = compare_training(
            work / "loopml" / "training.parquet",
            feast_training if "historical" in runs.get("Feast", ToolRun("")).results else None,
            reference,
        )
        online: dict[str, Any] = {}
        for target, name in (("sqlite", "SQLite"), ("redis", "Redis")):
            step = f"lookup-{target}"
            if step in runs["loopml"].results:
                online[f"Online lookup from {name}"] = (
                    {
                        tool: compare_online(run.results[step], expected)
                        if step in run.results
                        else None
                        for tool, run in runs.items()
                    },
                    len(check),
                )
    except BenchError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    tables: list[tuple[str, Table]] = [
        ("", main_table(args, data, runs)),
        ("What the tools returned:", checks_table(data, runs, training, online)),
        ("Target (DESIGN.md, section 5):", targets_table(runs, training, data)),
    ]
    notes = [*commentary(args, runs, training), *build_notes(args, data, runs, training)]
    print()
    print_tables_plain(tables)
    for line in notes:
        print(f"* {line}")
    total = time.perf_counter() - started
    print(f"\nTotal benchmark time: {total:.0f} s")
    if args.json:
        write_raw_json(
            args.json,
            args,
            {
                "results": {t: r.results for t, r in runs.items()},
                "errors": {t: r.errors for t, r in runs.items()},
                "training": training,
            },
        )
    if args.write:
        lm = runs["loopml"].results["historical"]
        versions_line = (
            f"loopml {lm['loopml']}, pandas {lm['pandas']}, pyarrow {lm['pyarrow']}, "
            f"DuckDB {lm['duckdb']}, Python {lm['python']}"
        )
        feast = runs.get("Feast")
        if feast is not None and feast.results:
            fe = next(iter(feast.results.values()))
            versions_line += (
                f"; Feast {fe['feast']} (pandas {fe['pandas']}, pyarrow {fe['pyarrow']}, "
                f"DuckDB {fe['duckdb']})"
            )
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        replace_section(
            args.results,
            SECTION,
            f"{SECTION}: loopml vs Feast — {now}",
            run_facts(
                versions_line,
                load_span(load_start),
                f"{total:.0f} s",
                ["python", "benchmarks/bench_features.py", *raw],
            ),
            tables,
            notes,
        )
        say(f"wrote the '{SECTION}' section of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
