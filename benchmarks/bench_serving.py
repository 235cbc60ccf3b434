#!/usr/bin/env python
"""Side-by-side model-serving benchmark: ``loopml serve`` against ``mlflow models serve``.

Run it with the project's interpreter, after ``bash benchmarks/setup_anchors.sh`` has put
MLflow into ``benchmarks/.venv-anchors``::

    .venv/bin/python benchmarks/bench_serving.py            # print the tables
    .venv/bin/python benchmarks/bench_serving.py --write    # and append them to RESULTS.md

One small scikit-learn model (a seeded ``LogisticRegression`` on a synthetic 10-feature
classification set) is trained once here and pickled. A worker in the project's venv logs and
registers it in a temporary loopml store, a worker in the anchor venv logs the same pickle
with MLflow; each tool then serves it from its own CLI with its default settings on
127.0.0.1. One client (httpx, threads, in this process) sends the same single-row request to
each server at concurrency 1 and 8 after a warm-up, and the floor, a bare in-process
``model.predict`` of that row, is timed here too. Both servers are stopped at the end, also
on errors and on Ctrl-C.

This file is also the worker: the parent calls it again as ``bench_serving.py --worker
KIND SPEC`` with the interpreter of the tool under test, so its module-level imports are the
standard library and the sibling helpers (``_report``, ``bench_tracking``) only.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    clean_env,
    dist_version,
    emit_result,
    exit_on_sigterm,
    free_port,
    run_code,
    run_worker_script,
    running_server,
)
from _report import (
    BENCH_DIR,
    Table,
    add_output_options,
    append_section,
    load_at_start,
    load_span,
    print_tables_plain,
    run_facts,
    say,
)

DEFAULT_ANCHOR_PYTHON = BENCH_DIR / ".venv-anchors" / "bin" / "python"

MODEL_NAME = "bench-serving"
SEED = 20240601
N_FEATURES = 10
N_TRAIN = 2000
SERVER_START_TIMEOUT_S = 120.0
WORKER_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 10.0
TARGET_OVERHEAD_S = 0.001
TARGET_RPS_RATIO = 5.0

# --------------------------------------------------------------------------------------------
# Worker half: runs inside the interpreter of the tool under test.
# --------------------------------------------------------------------------------------------


def _example_frame(spec: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame(spec["example_rows"], columns=spec["columns"])


def _load_pickle(path: str) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301 - our own file, written by the parent


def _worker_loopml(spec: dict[str, Any]) -> dict[str, Any]:
    """Log the pickled model with loopml, register it and point ``champion`` at it."""
    import loopml as lm

    model = _load_pickle(spec["model"])
    with lm.start_run(run_name="bench-serving"):
        info = lm.log_model(model, "model", input_example=_example_frame(spec))
    version = lm.registry.register(info.uri, MODEL_NAME)
    lm.registry.set_alias(MODEL_NAME, "champion", version.version, reason="serving benchmark")
    return {"uri": f"{MODEL_NAME}@champion", "version": version.version}


def _worker_mlflow(spec: dict[str, Any]) -> dict[str, Any]:
    """Log the pickled model with MLflow's scikit-learn flavor and return its model URI."""
    import mlflow
    import mlflow.sklearn

    model = _load_pickle(spec["model"])
    mlflow.set_experiment("bench-serving")
    with mlflow.start_run(run_name="bench-serving"):
        info = mlflow.sklearn.log_model(model, name="model", input_example=_example_frame(spec))
    return {"uri": info.model_uri}


def worker_main(kind: str, spec_json: str) -> int:
    """Entry point of a worker subprocess: log the model and print the result as JSON."""
    spec = json.loads(spec_json)
    funcs = {"loopml": _worker_loopml, "mlflow": _worker_mlflow}
    result = funcs[kind](spec)
    import sklearn

    result["sklearn"] = sklearn.__version__
    result["python"] = platform.python_version()
    for dist in ("uvicorn", "fastapi", "pandas"):
        result[dist] = dist_version(dist, "?")
    return emit_result(result)


# --------------------------------------------------------------------------------------------
# Parent half: runs in the project's interpreter, trains the model and drives the client.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """One server under test: its label, request body and routes."""

    key: str
    label: str
    body: bytes
    ready_path: str
    health_path: str
    predict_path: str
    notes: str


@dataclass
class Level:
    """The latencies of one (server, concurrency) measurement."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0
    first_error: str = ""
    cpu: float | None = None
    mean_batch: float | None = None

    @property
    def ok(self) -> bool:
        """Whether every request succeeded."""
        return bool(self.latencies) and self.errors == 0

    def pct(self, q: float) -> float:
        """The ``q``-th percentile latency in seconds (nearest rank)."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]

    @property
    def rps(self) -> float:
        """Completed requests per second of wall time."""
        return len(self.latencies) / self.wall if self.wall > 0 else 0.0


@dataclass
class Served:
    """Everything measured against one server."""

    subject: Subject
    startup_s: float = 0.0
    levels: dict[int, Level] = field(default_factory=dict)
    health: Level | None = None
    prediction: Any = None
    error: str | None = None


def run_worker(
    python: Path, kind: str, spec: dict[str, Any], env: dict[str, str], cwd: Path
) -> Any:
    """Run this file as a worker with ``python`` and return the JSON it prints."""
    return run_worker_script(
        python,
        __file__,
        [kind, json.dumps(spec)],
        env=env,
        cwd=cwd,
        timeout=WORKER_TIMEOUT_S,
        what=f"{kind} worker",
    )


def cmd_base_url(cmd: list[str]) -> str:
    """The base URL of a server command (its ``--port``/``-p`` value on 127.0.0.1)."""
    for flag in ("--port", "-p"):
        if flag in cmd:
            return f"http://127.0.0.1:{cmd[cmd.index(flag) + 1]}"
    raise BenchError(f"no port in {cmd}")


def group_cpu_seconds(pgid: int) -> float | None:
    """User + system CPU seconds of every live process in group ``pgid`` (Linux only)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    found = False
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = entry.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # Fields after the command name: state ppid pgrp ... utime (12th) stime (13th).
        if len(rest) > 12 and int(rest[2]) == pgid:
            total += int(rest[11]) + int(rest[12])
            found = True
    return total / tick if found else None


def loopml_batch_stats(base: str) -> tuple[float, float] | None:
    """Sum and count of loopml's ``loopml_serving_batch_size`` histogram, from /metrics."""
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            text = resp.read().decode("utf-8")
    except (urllib.error.URLError, OSError):
        return None
    found: dict[str, float] = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"loopml_serving_batch_size_{part} "):
                found[part] = float(line.split()[1])
    return (found["sum"], found["count"]) if len(found) == 2 else None


def drive(
    path: str,
    body: bytes | None,
    n: int,
    concurrency: int,
    clients: Sequence[Any],
    max_seconds: float,
) -> Level:
    """Send ``n`` requests with ``concurrency`` threads, each on its own keep-alive client.

    ``body`` None means GET. The level stops early after ``max_seconds``; the request count
    then shows how many were sent.
    """
    level = Level(concurrency)
    lock = threading.Lock()
    remaining = [n]
    barrier = threading.Barrier(concurrency + 1)
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    headers = {"content-type": "application/json"}
    deadline: list[float] = [0.0]

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or time.perf_counter() > deadline[0]:
                return False
            remaining[0] -= 1
            return True

    def loop(idx: int) -> None:
        client = clients[idx]
        out = per_thread[idx]
        barrier.wait()
        while take():
            t0 = time.perf_counter()
            try:
                if body is None:
                    resp = client.get(path)
                else:
                    resp = client.post(path, content=body, headers=headers)
                ok = resp.status_code == 200
                detail = "" if ok else f"HTTP {resp.status_code}: {resp.text[:200]}"
            except Exception as exc:  # a failed request is counted, never fatal
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - t0
            if ok:
                out.append(elapsed)
            else:
                with lock:
                    errors.append(detail)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + max_seconds
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    level.wall = time.perf_counter() - start
    level.latencies = [x for part in per_thread for x in part]
    level.errors = len(errors)
    level.first_error = errors[0] if errors else ""
    return level


def measure_server(
    subject: Subject,
    cmd: list[str],
    env: dict[str, str],
    home: Path,
    args: argparse.Namespace,
    expected: Any,
) -> Served:
    """Start one server, warm it up, run every concurrency level and the health probe."""
    import httpx

    served = Served(subject)
    say(f"[{subject.label}] starting: {shlex.join(cmd)}")
    try:
        base = cmd_base_url(cmd)
        ready = base + subject.ready_path
        with running_server(cmd, env, home, ready, SERVER_START_TIMEOUT_S) as (proc, took):
            served.startup_s = took
            say(f"    ready after {took:.1f} s")
            width = max(args.concurrency)
            clients = [httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) for _ in range(width)]
            try:
                first = clients[0].post(
                    subject.predict_path,
                    content=subject.body,
                    headers={"content-type": "application/json"},
                )
                if first.status_code != 200:
                    raise BenchError(f"first request: HTTP {first.status_code}: {first.text}")
                served.prediction = first.json()["predictions"]
                if served.prediction != expected:
                    raise BenchError(f"server predicted {served.prediction}, expected {expected}")
                warm = drive(subject.predict_path, subject.body, args.warmup, width, clients, 60)
                if not warm.ok:
                    raise BenchError(f"warm-up failed: {warm.first_error}")
                for conc in args.concurrency:
                    before_cpu = group_cpu_seconds(proc.pid)
                    before_batch = (
                        loopml_batch_stats(base) if subject.key.startswith("loopml") else None
                    )
                    level = drive(
                        subject.predict_path,
                        subject.body,
                        args.requests,
                        conc,
                        clients,
                        args.max_seconds,
                    )
                    after_cpu = group_cpu_seconds(proc.pid)
                    if before_cpu is not None and after_cpu is not None:
                        level.cpu = after_cpu - before_cpu
                    after_batch = loopml_batch_stats(base) if before_batch else None
                    if before_batch and after_batch and after_batch[1] > before_batch[1]:
                        level.mean_batch = (after_batch[0] - before_batch[0]) / (
                            after_batch[1] - before_batch[1]
                        )
                    served.levels[conc] = level
                    say(
                        f"    concurrency {conc}: {len(level.latencies):,} requests, p50 "
                        f"{fmt_latency(level.pct(50)) if level.latencies else '—'}, "
                        f"{level.rps:,.0f} req/s, {level.errors} errors"
                    )
                    if level.errors:
                        raise BenchError(f"{level.errors} failed requests: {level.first_error}")
                served.health = drive(
                    subject.health_path, None, args.health_requests, 1, clients, 30
                )
            finally:
                for client in clients:
                    client.close()
    except BenchError as exc:
        served.error = str(exc)
        say(f"    {subject.label} FAILED: {exc}")
    return served


def bare_predict(model: Any, row: Any, n: int) -> tuple[Level, Level]:
    """Time ``model.predict(row)``, and predict + predict_proba, ``n`` times in process."""
    for _ in range(50):
        model.predict(row)
        model.predict_proba(row)
    levels = (Level(1), Level(1))
    for _ in range(n):
        t0 = time.perf_counter()
        model.predict(row)
        t1 = time.perf_counter()
        model.predict_proba(row)
        t2 = time.perf_counter()
        levels[0].latencies.append(t1 - t0)
        levels[1].latencies.append(t2 - t0)
    for level in levels:
        level.wall = sum(level.latencies)
    return levels


def train(work: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Train the seeded model once, pickle it and return (model, one-row frame, worker spec)."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(
        n_samples=N_TRAIN, n_features=N_FEATURES, n_informative=6, random_state=SEED
    )
    columns = [f"x{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(x, columns=columns)
    model = LogisticRegression(max_iter=500, random_state=SEED).fit(frame, y)
    path = work / "model.pkl"
    with path.open("wb") as fh:
        pickle.dump(model, fh)
    spec = {
        "model": str(path),
        "columns": columns,
        "example_rows": frame.head(5).to_numpy().tolist(),
    }
    return model, frame.iloc[[0]].reset_index(drop=True), spec


def subjects(row: Any) -> dict[str, Subject]:
    """The request each server gets for the same row."""
    columns = [str(c) for c in row.columns]
    values = [float(v) for v in row.iloc[0].tolist()]
    loopml_body = {"inputs": [dict(zip(columns, values, strict=True))]}
    mlflow_body = {"dataframe_split": {"columns": columns, "data": [values]}}
    return {
        "loopml": Subject(
            "loopml",
            "loopml",
            json.dumps(loopml_body).encode(),
            "/ready",
            "/health",
            "/predict",
            '`POST /predict` with `{"inputs": [{"x0": ..., ...}]}`',
        ),
        "mlflow": Subject(
            "mlflow",
            "MLflow",
            json.dumps(mlflow_body).encode(),
            "/ping",
            "/health",
            "/invocations",
            '`POST /invocations` with `{"dataframe_split": {"columns": [...], "data": [[...]]}}`',
        ),
    }


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt_latency(seconds: float) -> str:
    """Format a latency: ``85 µs``, ``1.23 ms``, ``12.3 ms``."""
    us = seconds * 1e6
    if us < 1000:
        return f"{us:.0f} µs"
    ms = us / 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def build_tables(
    floor: tuple[Level, Level], results: list[Served], n_bare: int
) -> tuple[list[Table], dict[str, Any]]:
    """The latency table, the targets table and the numbers behind the verdicts."""
    head = [
        "Server",
        "Concurrency",
        "Requests",
        "p50",
        "p99",
        "Requests/s",
        "Server CPU / request",
    ]
    rows: list[list[str]] = []
    for label, lv in (
        ("bare `model.predict` (in process, 1 row)", floor[0]),
        ("bare `predict` + `predict_proba` (in process)", floor[1]),
    ):
        rows.append(
            [
                label,
                "1",
                f"{n_bare:,}",
                fmt_latency(lv.pct(50)),
                fmt_latency(lv.pct(99)),
                f"{lv.rps:,.0f}",
                "—",
            ]
        )
    for s in results:
        if s.error is not None and not s.levels:
            rows.append([s.subject.label, "—", "failed", "—", "—", "—", "—"])
            continue
        for conc, lv in s.levels.items():
            cpu = fmt_latency(lv.cpu / len(lv.latencies)) if lv.cpu and lv.latencies else "—"
            rows.append(
                [
                    f"{s.subject.label} `POST {s.subject.predict_path}`",
                    str(conc),
                    f"{len(lv.latencies):,}",
                    fmt_latency(lv.pct(50)),
                    fmt_latency(lv.pct(99)),
                    f"{lv.rps:,.0f}",
                    cpu,
                ]
            )
        if s.health is not None and s.health.ok:
            rows.append(
                [
                    f"{s.subject.label} `GET {s.subject.health_path}` (no model)",
                    "1",
                    f"{len(s.health.latencies):,}",
                    fmt_latency(s.health.pct(50)),
                    fmt_latency(s.health.pct(99)),
                    f"{s.health.rps:,.0f}",
                    "—",
                ]
            )
    by_key = {s.subject.key: s for s in results}
    facts: dict[str, Any] = {}
    t_head = ["Target", "loopml", "MLflow", "Target value", "Met"]
    t_rows: list[list[str]] = []
    overheads: dict[str, float] = {}
    for key in ("loopml", "mlflow"):
        s = by_key.get(key)
        lv = s.levels.get(1) if s else None
        if lv is not None and lv.ok:
            overheads[key] = lv.pct(50) - floor[0].pct(50)
    if "loopml" in overheads:
        met = overheads["loopml"] <= TARGET_OVERHEAD_S
        facts["overhead_met"] = met
        facts["overheads"] = overheads
        t_rows.append(
            [
                "p50 overhead over bare predict, concurrency 1",
                fmt_latency(overheads["loopml"]),
                fmt_latency(overheads["mlflow"]) if "mlflow" in overheads else "—",
                f"≤ {fmt_latency(TARGET_OVERHEAD_S)}",
                "yes" if met else "**no**",
            ]
        )
    rps: dict[str, float] = {}
    for key in ("loopml", "mlflow"):
        s = by_key.get(key)
        lv = s.levels.get(8) if s else None
        if lv is not None and lv.ok:
            rps[key] = lv.rps
    if len(rps) == 2:
        ratio = rps["loopml"] / rps["mlflow"]
        met = ratio >= TARGET_RPS_RATIO
        facts["rps_ratio"] = ratio
        facts["rps_met"] = met
        t_rows.append(
            [
                "requests/s at concurrency 8, loopml / MLflow",
                f"{rps['loopml']:,.0f}",
                f"{rps['mlflow']:,.0f}",
                f"≥ {TARGET_RPS_RATIO:.0f}x (measured {ratio:.2f}x)",
                "yes" if met else "**no**",
            ]
        )
    tables: list[Table] = [(head, rows)]
    if t_rows:
        tables.append((t_head, t_rows))
    return tables, facts


def notes(
    args: argparse.Namespace,
    results: list[Served],
    floor: tuple[Level, Level],
    facts: dict[str, Any],
    versions: dict[str, Any],
) -> list[str]:
    """Explain what the numbers mean (printed and written to RESULTS.md)."""
    out = [
        f"Model: scikit-learn `LogisticRegression(max_iter=500)` on `make_classification("
        f"n_samples={N_TRAIN:,}, n_features={N_FEATURES}, n_informative=6, "
        f"random_state={SEED})`, trained once in the project's venv and pickled; loopml logs "
        "that pickle with `lm.log_model` and MLflow with `mlflow.sklearn.log_model` "
        f"(scikit-learn {versions['loopml'].get('sklearn', '?')} in the project's venv, "
        f"{versions['mlflow'].get('sklearn', '?')} in the anchor venv). Every request carries "
        "the same single row (float64 `x0`..`x9`); each server's first answer is checked "
        "against the in-process prediction.",
        f"Client: httpx {versions.get('httpx', '?')} `Client` per thread (keep-alive), in the "
        f"benchmark process on the same 2 cores as the server; {args.warmup:,} warm-up requests "
        f"at the highest concurrency, then {args.requests:,} requests per level (each level "
        f"capped at {args.max_seconds:.0f} s). Latency is the client's wall time per request "
        "(sending the request to reading the whole response); p50/p99 by nearest rank; "
        "requests/s = requests / wall time of the level. Server CPU / request is the user + "
        "system CPU of the server's process group during the level divided by the requests.",
        f"Floor: the bare `model.predict` of the same one-row DataFrame, median of "
        f"{args.bare_calls:,} calls after a warm-up: {fmt_latency(floor[0].pct(50))}; the "
        "overhead row is each server's p50 at concurrency 1 minus it, so it contains the "
        "client, HTTP, JSON and each server's own work.",
    ]
    for s in results:
        if s.subject.key == "loopml":
            out.append(
                f"loopml: `loopml serve {MODEL_NAME}@champion --port P` with its defaults: one "
                "uvicorn process (`--workers 1`), micro-batcher `--max-batch-size 32 "
                "--max-wait-ms 2`, body checked against the signature with pydantic; it answers "
                "predictions and class probabilities, so every batch runs `predict` and "
                f"`predict_proba` (in process: {fmt_latency(floor[1].pct(50))} for both). "
                f"{s.subject.notes}. Ready (model loaded and warmed, `/ready` 200) after "
                f"{s.startup_s:.1f} s."
            )
        elif s.subject.key.startswith("loopml"):
            out.append(
                f"{s.subject.label}: the same server with `{s.subject.key[7:]}` added, a "
                "diagnostic row beside the defaults; the targets use the defaults only. Ready "
                f"after {s.startup_s:.1f} s."
            )
        if s.subject.key.startswith("loopml"):
            batches = [
                f"{lv.mean_batch:.1f} rows at concurrency {c}"
                for c, lv in s.levels.items()
                if lv.mean_batch is not None
            ]
            if batches:
                out.append(
                    f"{s.subject.label}'s mean micro-batch (from its `loopml_serving_batch_size` "
                    "histogram): " + ", ".join(batches) + "."
                )
        if s.subject.key == "mlflow":
            out.append(
                "MLflow: `mlflow models serve -m <models:/ uri> --env-manager local -h "
                "127.0.0.1 -p P` with its defaults: one uvicorn worker (`--workers` / "
                "`MLFLOW_MODELS_WORKERS` default 1; the CLI process stays as the parent), "
                "each request parsed and run in a thread (`asyncio.to_thread`) behind a 60 s "
                f"timeout middleware; it answers predictions only. {s.subject.notes}. "
                f"`/ping` 200 after {s.startup_s:.1f} s."
            )
    out.append(
        "Both servers log every request to a file (uvicorn's access log at its default "
        "level) and run one after the other, never at the same time."
    )
    health = {
        s.subject.key: s.health.pct(50) for s in results if s.health is not None and s.health.ok
    }
    if health:
        out.append(
            "`GET /health` (no model, no body) at concurrency 1 is the cost of the client, HTTP "
            "and the framework alone: p50 "
            + ", ".join(
                f"{s.subject.label} {fmt_latency(health[s.subject.key])}"
                for s in results
                if s.subject.key in health
            )
            + "."
        )
    default = next((s for s in results if s.subject.key == "loopml"), None)
    for s in results:
        if default is None or s is default or not s.subject.key.startswith("loopml"):
            continue
        pairs = [
            f"concurrency {c}: p50 {fmt_latency(lv.pct(50))} vs "
            f"{fmt_latency(default.levels[c].pct(50))}, {lv.rps:,.0f} vs "
            f"{default.levels[c].rps:,.0f} requests/s"
            for c, lv in s.levels.items()
            if lv.ok and c in default.levels and default.levels[c].ok
        ]
        if pairs:
            out.append(f"{s.subject.label} against the defaults: " + "; ".join(pairs) + ".")
    overheads = facts.get("overheads", {})
    if "overhead_met" in facts:
        verdict = "met" if facts["overhead_met"] else "missed"
        out.append(
            f"Target p50 overhead ≤ 1 ms at concurrency 1: **{verdict}** "
            f"(loopml {fmt_latency(overheads['loopml'])}"
            + (f", MLflow {fmt_latency(overheads['mlflow'])}" if "mlflow" in overheads else "")
            + ")."
        )
    if "rps_met" in facts:
        verdict = "met" if facts["rps_met"] else "missed"
        out.append(
            f"Target loopml ≥ 5x MLflow's requests/s at concurrency 8: **{verdict}** "
            f"({facts['rps_ratio']:.2f}x)."
        )
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    d = " (default: %(default)s)"
    p = argparse.ArgumentParser(
        description="Time single-row predictions of loopml serve and mlflow models serve."
    )
    p.add_argument("--requests", type=int, default=2000, help="requests per level" + d)
    p.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8], help="client threads per level" + d
    )
    p.add_argument("--warmup", type=int, default=300, help="warm-up requests per server" + d)
    p.add_argument(
        "--health-requests", type=int, default=500, help="GET /health requests per server" + d
    )
    p.add_argument(
        "--bare-calls", type=int, default=3000, help="in-process predict calls for the floor" + d
    )
    p.add_argument(
        "--max-seconds", type=float, default=60.0, help="time cap of one level in seconds" + d
    )
    p.add_argument("--tools", nargs="+", choices=("loopml", "mlflow"), default=["loopml", "mlflow"])
    p.add_argument(
        "--loopml-variant",
        action="append",
        default=[],
        metavar="OPTIONS",
        help="also measure `loopml serve` with these options, e.g. '--max-wait-ms 0' "
        "(repeatable; reported beside the defaults, never used for the targets)",
    )
    p.add_argument(
        "--mlflow-python",
        type=Path,
        default=DEFAULT_ANCHOR_PYTHON,
        help="interpreter with MLflow (default: benchmarks/.venv-anchors/bin/python)",
    )
    add_output_options(p)
    args = p.parse_args(argv)
    if (
        min(args.requests, args.warmup, args.health_requests, args.bare_calls, *args.concurrency)
        < 1
    ):
        p.error("counts and concurrency levels must be positive")
    args.concurrency = sorted(set(args.concurrency))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print (and optionally write) the results."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if len(raw) == 3 and raw[0] == "--worker":
        return worker_main(raw[1], raw[2])
    args = parse_args(raw)
    exit_on_sigterm()
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    loopml_cli = Path(sys.executable).parent / "loopml"
    mlflow_python = Path(os.path.abspath(args.mlflow_python))
    if "mlflow" in args.tools and not mlflow_python.exists():
        say(f"error: {mlflow_python} does not exist (run: bash benchmarks/setup_anchors.sh)")
        return 2
    if "loopml" in args.tools and not loopml_cli.exists():
        say(f"error: {loopml_cli} does not exist (run this with the project's .venv/bin/python)")
        return 2
    load_start = load_at_start()
    work = args.work_dir.resolve() / datetime.now().strftime("serving-%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    results: list[Served] = []
    versions: dict[str, Any] = {"loopml": {}, "mlflow": {}}
    try:
        model, row, spec = train(work)
        expected = [int(v) for v in model.predict(row)]
        say(f"floor: {args.bare_calls:,} in-process predict calls")
        floor = bare_predict(model, row, args.bare_calls)
        bodies = subjects(row)
        import httpx

        versions["httpx"] = httpx.__version__
        for key in args.tools:
            home = work / key
            home.mkdir()
            if key == "loopml":
                env = clean_env({"LOOPML_HOME": str(home)})
                say("[loopml] registering the model")
                versions["loopml"] = run_worker(Path(sys.executable), "loopml", spec, env, home)
                # The defaults first (the targets use them), then any diagnostic variants.
                for extra in ["", *args.loopml_variant]:
                    subject = bodies[key]
                    if extra:
                        label = f"loopml (`{extra}`)"
                        subject = replace(subject, key=f"loopml {extra}", label=label)
                    cmd = [
                        str(loopml_cli),
                        "serve",
                        f"{MODEL_NAME}@champion",
                        "--port",
                        str(free_port()),
                        *shlex.split(extra),
                    ]
                    results.append(measure_server(subject, cmd, env, home, args, expected))
                continue
            # `mlflow models serve` runs `uvicorn` from PATH, as in an activated venv.
            env = clean_env(
                {
                    "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                    "PATH": f"{mlflow_python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                }
            )
            say("[MLflow] logging the model")
            versions["mlflow"] = run_worker(mlflow_python, "mlflow", spec, env, home)
            cmd = [
                str(mlflow_python.parent / "mlflow"),
                "models",
                "serve",
                "-m",
                versions["mlflow"]["uri"],
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(free_port()),
            ]
            results.append(measure_server(bodies[key], cmd, env, home, args, expected))
    except BenchError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    tables, facts = build_tables(floor, results, args.bare_calls)
    note_lines = notes(args, results, floor, facts, versions)
    print()
    captioned = [("", table) for table in tables]
    print_tables_plain(captioned)
    for line in note_lines:
        print(f"* {line}")
    failed = [s for s in results if s.error is not None]
    for s in failed:
        print(f"\n{s.subject.label} failed:\n{s.error}")
    total = time.perf_counter() - started
    print(f"\nTotal benchmark time: {total:.0f} s")
    if args.write:
        if failed:
            say("not writing RESULTS.md: some measurements failed")
            return 1
        lv, mv = versions["loopml"], versions["mlflow"]
        header = run_facts(
            f"loopml {tool_version('loopml')} (uvicorn {lv.get('uvicorn', '?')}, "
            f"FastAPI {lv.get('fastapi', '?')}, pandas {lv.get('pandas', '?')}); MLflow "
            f"{tool_version('mlflow', mlflow_python)} (uvicorn {mv.get('uvicorn', '?')}, FastAPI "
            f"{mv.get('fastapi', '?')}, pandas {mv.get('pandas', '?')}); Python "
            f"{platform.python_version()}",
            load_span(load_start),
            f"{total:.0f} s",
            ["python", "benchmarks/bench_serving.py", *raw],
        )
        append_section(
            args.results,
            f"Serving: loopml vs MLflow — {started_at}",
            header,
            captioned,
            note_lines,
        )
        say(f"appended results to {args.results}")
    return 1 if failed else 0


def tool_version(dist: str, python: Path | None = None) -> str:
    """The installed version of ``dist`` as ``python`` (default: this one) sees it."""
    code = f"from importlib import metadata; print(metadata.version({dist!r}))"
    try:
        return run_code(
            python or Path(sys.executable),
            code,
            env=dict(os.environ),
            timeout=60,
            failure=f"no {dist}",
        )
    except (BenchError, subprocess.TimeoutExpired):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
