#!/usr/bin/env python
"""Side-by-side metric-logging benchmark: loopml against MLflow.

Run it with the project's interpreter, after ``bash benchmarks/setup_anchors.sh`` has put
MLflow into ``benchmarks/.venv-anchors``::

    .venv/bin/python benchmarks/bench_tracking.py            # print the table
    .venv/bin/python benchmarks/bench_tracking.py --write    # and append it to RESULTS.md

Each scenario runs, per tool, in a fresh subprocess (loopml's in the project venv, MLflow's in
the anchor venv, so neither import skews the other) on a fresh temporary folder under
``benchmarks/.work``; server scenarios also get a fresh server on that folder. Inside the
subprocess the scenario is repeated ``--repeat`` times, each repeat in a new run; the table
reports the minimum and the median. Only the logging calls are timed: imports, experiment and
run creation, building the metric objects, ending the run and reading the metrics back for the
check happen outside the timed region.

This file is also the worker: the parent calls it again as ``bench_tracking.py --worker SPEC``
with the interpreter of the tool under test, so the worker half uses the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    parse_result,
    run_code,
    running_server,
    watchdog,
)
from _report import (
    BENCH_DIR,
    Table,
    add_output_options,
    append_section,
    load_at_start,
    load_span,
    render_plain,
    run_facts,
    say,
    write_raw_json,
)

DEFAULT_ANCHOR_PYTHON = BENCH_DIR / ".venv-anchors" / "bin" / "python"

PROGRESS_MARKER = "BENCH_PROGRESS "
TOOLS: tuple[str, ...] = ("loopml", "mlflow")
LABELS = {"loopml": "loopml", "mlflow": "MLflow"}
EXPERIMENT = "bench"
ONE_BY_ONE_KEY = "loss"
BATCH_KEY = "m"
DEFAULT_REMOTE_ONE_BY_ONE_N = 1000
WORKER_TIMEOUT_S = 900.0
SERVER_START_TIMEOUT_S = 180.0

# --------------------------------------------------------------------------------------------
# Worker half: runs inside the interpreter of the tool under test (standard library only).
# --------------------------------------------------------------------------------------------


def _value(i: int) -> float:
    """Return the value logged at step ``i`` (a decaying, loss-like curve)."""
    return 1.0 / (i + 1)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _worker_loopml(mode: str, n: int, repeat: int, run_name: str) -> dict[str, Any]:
    """Log ``n`` metrics ``repeat`` times (a new run each) with loopml; time the logging only."""
    t0 = time.perf_counter()
    import loopml as lm

    import_s = time.perf_counter() - t0
    lm.set_experiment(EXPERIMENT)
    times: list[float] = []
    stored: list[int] = []
    for rep in range(repeat):
        with lm.start_run(run_name=f"{run_name}-{rep}") as run:
            if mode == "one_by_one":
                log_metric = lm.log_metric
                start = time.perf_counter()
                for i in range(n):
                    log_metric(ONE_BY_ONE_KEY, _value(i), step=i)
                times.append(time.perf_counter() - start)
                key = ONE_BY_ONE_KEY
            else:
                ts = _now_ms()
                metrics = [
                    lm.Metric(key=BATCH_KEY, value=_value(i), timestamp=ts, step=i)
                    for i in range(n)
                ]
                start = time.perf_counter()
                lm.log_batch(metrics=metrics)
                times.append(time.perf_counter() - start)
                key = BATCH_KEY
            run_id = run.run_id
        stored.append(len(lm.get_service().get_metric_history(run_id, key)))
        _progress(rep, repeat, times[-1])
    return {
        "times": times,
        "import_s": import_s,
        "stored": stored,
        "version": dist_version("loopml", getattr(lm, "__version__", "?")),
    }


def _worker_mlflow(mode: str, n: int, repeat: int, run_name: str) -> dict[str, Any]:
    """Log ``n`` metrics ``repeat`` times with MLflow (fluent ``log_metric``, client batch)."""
    t0 = time.perf_counter()
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH

    import_s = time.perf_counter() - t0
    mlflow.set_experiment(EXPERIMENT)
    client = MlflowClient()
    times: list[float] = []
    stored: list[int] = []
    for rep in range(repeat):
        with mlflow.start_run(run_name=f"{run_name}-{rep}") as run:
            run_id = run.info.run_id
            if mode == "one_by_one":
                log_metric = mlflow.log_metric
                start = time.perf_counter()
                for i in range(n):
                    log_metric(ONE_BY_ONE_KEY, _value(i), step=i)
                times.append(time.perf_counter() - start)
                key = ONE_BY_ONE_KEY
            else:
                ts = _now_ms()
                metrics = [
                    Metric(key=BATCH_KEY, value=_value(i), timestamp=ts, step=i) for i in range(n)
                ]
                start = time.perf_counter()
                # The client splits this into calls of at most MAX_METRICS_PER_BATCH metrics.
                client.log_batch(run_id, metrics=metrics)
                times.append(time.perf_counter() - start)
                key = BATCH_KEY
        stored.append(len(client.get_metric_history(run_id, key)))
        _progress(rep, repeat, times[-1])
    return {
        "times": times,
        "import_s": import_s,
        "stored": stored,
        "version": mlflow.__version__,
        "max_metrics_per_batch": MAX_METRICS_PER_BATCH,
    }


def _progress(rep: int, repeat: int, seconds: float) -> None:
    """Report one finished repeat on stderr (the parent relays it)."""
    sys.stderr.write(f"{PROGRESS_MARKER}repeat {rep + 1}/{repeat}: {seconds:.6f}\n")
    sys.stderr.flush()


def worker_main(spec_json: str) -> int:
    """Entry point of the worker subprocess: run one measurement and print its JSON result."""
    spec = json.loads(spec_json)
    funcs = {"loopml": _worker_loopml, "mlflow": _worker_mlflow}
    result = funcs[spec["tool"]](
        spec["mode"], int(spec["n"]), int(spec["repeat"]), spec["run_name"]
    )
    import sqlite3

    result["python"] = platform.python_version()
    result["sqlite"] = sqlite3.sqlite_version
    for name in ("loopml.db", "mlflow.db"):
        db = Path.cwd() / name
        if db.is_file():
            with sqlite3.connect(db) as conn:
                result["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return emit_result(result)


# --------------------------------------------------------------------------------------------
# Parent half: runs in the project's interpreter and orchestrates everything.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One row of the results table."""

    key: str
    title: str
    mode: str  # "one_by_one" or "batch"
    remote: bool


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("local-one", "Local SQLite: log_metric one by one", "one_by_one", remote=False),
    Scenario("local-batch", "Local SQLite: one log_batch", "batch", remote=False),
    Scenario("remote-batch", "Server (HTTP, SQLite): one log_batch", "batch", remote=True),
    Scenario(
        "remote-one", "Server (HTTP, SQLite): log_metric one by one", "one_by_one", remote=True
    ),
)


@dataclass
class Measurement:
    """All repeats of one scenario for one tool."""

    tool: str
    scenario: Scenario
    n: int
    times: list[float] = field(default_factory=list)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every repeat succeeded."""
        return self.error is None and bool(self.times)

    @property
    def best(self) -> float:
        """Fastest repeat in seconds."""
        return min(self.times)

    @property
    def median(self) -> float:
        """Median repeat in seconds."""
        return statistics.median(self.times)


@dataclass
class ToolSetup:
    """Where a tool's interpreter and console script live."""

    name: str
    python: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def script(self) -> Path:
        """The tool's console script next to its interpreter (``loopml`` or ``mlflow``)."""
        return self.python.parent / self.name


def run_worker(
    tool: ToolSetup, scenario: Scenario, n: int, repeat: int, env: dict[str, str], cwd: Path
) -> dict[str, Any]:
    """Run all repeats of one scenario in a fresh subprocess and return its parsed result.

    The worker's progress lines are relayed as they arrive; everything else it prints is kept
    for the error message.
    """
    spec = json.dumps(
        {
            "tool": tool.name,
            "mode": scenario.mode,
            "n": n,
            "repeat": repeat,
            "run_name": scenario.key,
        }
    )
    cmd = [str(tool.python), str(Path(__file__).resolve()), "--worker", spec]
    other: list[str] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        proc = subprocess.Popen(
            cmd,
            env={**env, **tool.extra_env},
            cwd=cwd,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
        with watchdog(proc, WORKER_TIMEOUT_S):
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith(PROGRESS_MARKER):
                    label, _, secs = line[len(PROGRESS_MARKER) :].rpartition(": ")
                    say(f"    {LABELS[tool.name]:<7} {label}: {fmt_s(float(secs))}")
                else:
                    other.append(line.rstrip("\n"))
            proc.wait()
        out.seek(0)
        stdout = out.read()
    result: dict[str, Any] = parse_result(stdout, "\n".join(other), proc.returncode)
    short = [k for k in result["stored"] if k != n]
    if short:
        raise BenchError(f"{tool.name} stored {short[0]} of {n} metrics in a run")
    return result


def server_command(tool: ToolSetup, port: int, home: Path, workers: int) -> list[str]:
    """Return the command that starts ``tool``'s tracking server on 127.0.0.1:``port``."""
    if tool.name == "loopml":
        base = (
            [str(tool.script)]
            if tool.script.exists()
            else [str(tool.python), "-m", "loopml.cli.main"]
        )
        return [
            *base,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    return [
        str(tool.script),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "artifacts"),
        "--workers",
        str(workers),
    ]


@contextmanager
def tracking_server(tool: ToolSetup, home: Path, workers: int) -> Iterator[str]:
    """Start ``tool``'s server on a free port, wait for ``/health`` and stop it afterwards."""
    port = free_port()
    # MLflow 3 also starts a background job runner (GenAI jobs, several huey consumers) that
    # keeps both cores busy for ~20 s after /health answers; metric logging never uses it.
    env = clean_env(
        {"LOOPML_HOME": str(home), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **tool.extra_env}
    )
    cmd = server_command(tool, port, home, workers)
    base = f"http://127.0.0.1:{port}"
    with running_server(cmd, env, home, f"{base}/health", SERVER_START_TIMEOUT_S) as (_, took):
        say(f"    {LABELS[tool.name]} server healthy on port {port} after {took:.1f} s")
        yield base


def fresh_dir(work_dir: Path, label: str) -> Path:
    """Create an empty temporary folder under ``work_dir``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work_dir))


def measure(
    tools: Sequence[ToolSetup],
    scenario: Scenario,
    n: int,
    repeat: int,
    work_dir: Path,
    keep: bool,
    workers: int,
) -> dict[str, Measurement]:
    """Measure one scenario for every tool: one fresh folder and one fresh worker per tool.

    Local scenarios point the worker at an embedded SQLite store in the folder; server
    scenarios start the tool's server on the folder first and point the worker at its URL.
    """
    results = {t.name: Measurement(t.name, scenario, n) for t in tools}
    for tool in tools:
        m = results[tool.name]
        home = fresh_dir(work_dir, f"{scenario.key}-{tool.name}")
        try:
            if scenario.remote:
                client_home = home / "client"
                client_home.mkdir()
                with tracking_server(tool, home, workers) as base:
                    env = clean_env(
                        {
                            "LOOPML_HOME": str(client_home),
                            "LOOPML_TRACKING_URI": base,
                            "MLFLOW_TRACKING_URI": base,
                        }
                    )
                    res = run_worker(tool, scenario, n, repeat, env, client_home)
            else:
                env = clean_env(
                    {
                        "LOOPML_HOME": str(home),
                        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                    }
                )
                res = run_worker(tool, scenario, n, repeat, env, home)
            m.times = [float(t) for t in res["times"]]
            m.extra = res
        except BenchError as exc:
            m.error = str(exc)
            say(f"    {LABELS[tool.name]} FAILED: {exc}")
        finally:
            if not keep:
                shutil.rmtree(home, ignore_errors=True)
    return results


SITECUSTOMIZE_WAL = '''"""Benchmark only: give every SQLite connection WAL + synchronous=NORMAL."""
try:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
except ImportError:
    pass
else:
    @event.listens_for(Engine, "connect")
    def _loopml_bench_pragmas(dbapi_conn, _record):
        if type(dbapi_conn).__module__.startswith("sqlite3"):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
'''


def wal_env(work_dir: Path) -> dict[str, str]:
    """Return env that makes MLflow's SQLite connections use loopml's pragmas.

    A ``sitecustomize`` module on ``PYTHONPATH`` registers a SQLAlchemy ``connect`` hook in
    every process the tool starts (the server's uvicorn workers included).
    """
    folder = work_dir / "sitecustomize-wal"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE_WAL, encoding="utf-8")
    return {"PYTHONPATH": str(folder)}


def probe_version(tool: ToolSetup) -> str:
    """Return the installed version of ``tool`` as its own interpreter sees it."""
    code = (
        f"from importlib import metadata; import {tool.name}; "
        f"print(metadata.version({tool.name!r}))"
    )
    return run_code(
        tool.python,
        code,
        env=clean_env({}),
        timeout=120,
        failure=f"cannot import {tool.name} with {tool.python}",
    )


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt_s(seconds: float) -> str:
    """Format a duration: ``850 ms``, ``1.23 s``, ``61.2 s``."""
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.0995 else f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def fmt_per_call(seconds: float) -> str:
    """Format a per-call duration in microseconds or milliseconds."""
    us = seconds * 1e6
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"


def fmt_ratio(loopml: Measurement | None, mlflow: Measurement | None) -> str:
    """MLflow median over loopml median, e.g. ``12.3x faster``."""
    if not (loopml and mlflow and loopml.ok and mlflow.ok):
        return "—"
    ratio = mlflow.median / loopml.median
    if ratio >= 1:
        return f"{ratio:.1f}x faster"
    return f"{1 / ratio:.1f}x slower"


def cell(m: Measurement | None, which: str) -> str:
    """One timing cell: the median or min, ``failed`` or ``—`` when not measured."""
    if m is None:
        return "—"
    if not m.ok:
        return "failed"
    return fmt_s(m.median if which == "median" else m.best)


def build_tables(results: list[dict[str, Measurement]], extrapolate_to: int) -> list[Table]:
    """Build the main table and the per-call table for the one-by-one scenarios."""
    main_head = [
        "Scenario",
        "Metrics",
        "loopml median",
        "loopml min",
        "MLflow median",
        "MLflow min",
        "MLflow / loopml",
    ]
    main_rows: list[list[str]] = []
    call_head = [
        "Scenario (one by one)",
        "loopml per call",
        f"loopml ≈{extrapolate_to:,}",
        "MLflow per call",
        f"MLflow ≈{extrapolate_to:,}",
    ]
    call_rows: list[list[str]] = []
    for by_tool in results:
        lm, mf = by_tool.get("loopml"), by_tool.get("mlflow")
        any_m = lm or mf
        assert any_m is not None
        sc = any_m.scenario
        main_rows.append(
            [
                sc.title,
                f"{any_m.n:,}",
                cell(lm, "median"),
                cell(lm, "min"),
                cell(mf, "median"),
                cell(mf, "min"),
                fmt_ratio(lm, mf),
            ]
        )
        if sc.mode == "one_by_one":
            row = [sc.title]
            for m in (lm, mf):
                if m is None or not m.ok:
                    row += [cell(m, "median"), "—"]
                else:
                    per = m.median / m.n
                    row += [fmt_per_call(per), fmt_s(per * extrapolate_to)]
            call_rows.append(row)
    tables: list[Table] = [(main_head, main_rows)]
    if call_rows:
        tables.append((call_head, call_rows))
    return tables


def print_tables(tables: list[Table]) -> None:
    """Print the tables with rich when it is installed, else as plain text."""
    try:
        from rich.console import Console
        from rich.table import Table as RichTable
    except ImportError:
        for head, rows in tables:
            print(render_plain(head, rows) + "\n")
        return
    console = Console()
    if not console.is_terminal or console.width < 120:
        console = Console(width=150)
    for head, rows in tables:
        table = RichTable(show_lines=False)
        for i, h in enumerate(head):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i > 0)
        for r in rows:
            table.add_row(*r)
        console.print(table)


def notes(
    args: argparse.Namespace, results: list[dict[str, Measurement]], workers: int
) -> list[str]:
    """Explain what the numbers mean (printed and written to RESULTS.md)."""
    out = [
        f"Times are wall-clock seconds of the logging calls only. Each scenario runs per tool "
        f"in one fresh process on a fresh folder, {args.repeat} repeat(s) as new runs in that "
        "process; ratio = MLflow median / loopml median.",
    ]
    one = [sc for sc in chosen_scenarios(args) if sc.mode == "one_by_one"]
    if one:
        ns = ", ".join(
            f"{scenario_n(args, sc):,} {'against the server' if sc.remote else 'local'}"
            for sc in one
        )
        out.append(
            f"One by one: both tools make the same N fluent `log_metric(key, value, "
            f"step=i)` calls (N = {ns}); the per-call table extrapolates linearly to "
            f"{args.batch_n:,} calls."
        )
    mf_batch = next(
        (
            r["mlflow"]
            for r in results
            if "mlflow" in r and r["mlflow"].scenario.mode == "batch" and r["mlflow"].ok
        ),
        None,
    )
    if mf_batch is not None:
        cap = mf_batch.extra.get("max_metrics_per_batch")
        if cap and args.batch_n > cap:
            calls = -(-args.batch_n // int(cap))
            out.append(
                f"Batch: one `log_batch` call with {args.batch_n:,} metrics per tool; MLflow's "
                f"client splits it into {calls} store/REST calls of at most {cap:,} metrics "
                "(MAX_METRICS_PER_BATCH), which is included in its time."
            )
    modes = sqlite_modes(results)
    if modes:
        out.append(
            "SQLite journal mode as found in the local database files: "
            + ", ".join(f"{LABELS[t]} {mode}" for t, mode in modes.items())
            + (
                " (MLflow forced to WAL + synchronous=NORMAL with --mlflow-wal)"
                if args.mlflow_wal
                else "; loopml opens SQLite with WAL + synchronous=NORMAL, MLflow keeps SQLite's "
                "defaults (rollback journal, synchronous=FULL); --mlflow-wal gives MLflow "
                "loopml's settings"
            )
        )
    if any(s.remote for s in chosen_scenarios(args)):
        out.append(
            f"Server: each tool's own server on 127.0.0.1 backed by SQLite in a fresh folder, "
            f"{workers} worker process(es) each, started once per scenario and waited on "
            "`/health` before timing; the client is configured through "
            "LOOPML_TRACKING_URI / MLFLOW_TRACKING_URI."
        )
    return out


def sqlite_modes(results: list[dict[str, Measurement]]) -> dict[str, str]:
    """Return the journal mode each tool's local SQLite file ended up in."""
    modes: dict[str, str] = {}
    for by_tool in results:
        for tool, m in by_tool.items():
            mode = m.extra.get("journal_mode")
            if m.ok and mode and tool not in modes:
                modes[tool] = str(mode)
    return modes


def runtimes(results: list[dict[str, Measurement]]) -> str:
    """Describe the Python and SQLite versions the workers ran with, e.g. for RESULTS.md."""
    seen: dict[str, str] = {}
    for by_tool in results:
        for tool, m in by_tool.items():
            if m.ok and tool not in seen:
                py, sq = m.extra.get("python", "?"), m.extra.get("sqlite", "?")
                seen[tool] = f"Python {py}, SQLite {sq}"
    if len(set(seen.values())) == 1:
        return f"{next(iter(seen.values()))} for " + (" and ".join(LABELS[t] for t in seen))
    return "; ".join(f"{LABELS[t]} on {v}" for t, v in seen.items()) or "no worker finished"


def chosen_scenarios(args: argparse.Namespace) -> list[Scenario]:
    """Return the scenarios selected with ``--scenarios``, in table order."""
    wanted = set(args.scenarios)
    return [s for s in SCENARIOS if s.key in wanted]


def scenario_n(args: argparse.Namespace, scenario: Scenario) -> int:
    """Return how many metrics ``scenario`` logs per repeat."""
    if scenario.mode == "batch":
        return int(args.batch_n)
    return int(args.remote_one_by_one_n if scenario.remote else args.one_by_one_n)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    keys = [s.key for s in SCENARIOS]
    d = " (default: %(default)s)"
    p = argparse.ArgumentParser(
        description="Time metric logging in loopml and MLflow side by side."
    )
    p.add_argument("--repeat", type=int, default=3, help="repeats per scenario and tool" + d)
    p.add_argument(
        "--one-by-one-n",
        type=int,
        default=2000,
        help="log_metric calls per repeat in local-one, same N for both tools" + d,
    )
    p.add_argument(
        "--remote-one-by-one-n",
        type=int,
        default=None,
        help="log_metric calls per repeat in remote-one, same N for both tools "
        "(default: the smaller of --one-by-one-n and "
        f"{DEFAULT_REMOTE_ONE_BY_ONE_N:,}, to keep a default run near 5 min)",
    )
    p.add_argument(
        "--batch-n", type=int, default=10_000, help="metrics in the single log_batch call" + d
    )
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=keys,
        default=keys,
        metavar="NAME",
        help=f"scenarios to run, any of: {', '.join(keys)} (default: all)",
    )
    p.add_argument(
        "--tools",
        nargs="+",
        choices=TOOLS,
        default=list(TOOLS),
        help="tools to measure (default: both)",
    )
    p.add_argument(
        "--server-workers", type=int, default=1, help="worker processes of each tracking server" + d
    )
    p.add_argument(
        "--mlflow-wal",
        action="store_true",
        help="run MLflow's SQLite with loopml's pragmas (journal_mode=WAL, "
        "synchronous=NORMAL) instead of SQLite's defaults",
    )
    p.add_argument(
        "--loopml-python",
        type=Path,
        default=Path(sys.executable),
        help="interpreter with loopml installed (default: this one)",
    )
    p.add_argument(
        "--mlflow-python",
        type=Path,
        default=DEFAULT_ANCHOR_PYTHON,
        help="interpreter with MLflow installed (default: "
        "benchmarks/.venv-anchors/bin/python, see setup_anchors.sh)",
    )
    add_output_options(p, raw_json="the raw timings")
    args = p.parse_args(argv)
    if args.remote_one_by_one_n is None:
        args.remote_one_by_one_n = min(args.one_by_one_n, DEFAULT_REMOTE_ONE_BY_ONE_N)
    if min(args.repeat, args.one_by_one_n, args.remote_one_by_one_n, args.batch_n) < 1:
        p.error("--repeat, --one-by-one-n, --remote-one-by-one-n and --batch-n must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print (and optionally write) the results."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if len(raw) == 2 and raw[0] == "--worker":
        return worker_main(raw[1])
    args = parse_args(raw)
    exit_on_sigterm()
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    pythons = {"loopml": args.loopml_python, "mlflow": args.mlflow_python}
    tools = [ToolSetup(t, Path(os.path.abspath(pythons[t]))) for t in TOOLS if t in args.tools]

    versions: dict[str, str] = {}
    for tool in tools:
        if not tool.python.exists():
            hint = " (run: bash benchmarks/setup_anchors.sh)" if tool.name == "mlflow" else ""
            say(f"error: {tool.python} does not exist{hint}")
            return 2
        try:
            versions[tool.name] = probe_version(tool)
        except BenchError as exc:
            say(f"error: {exc}")
            return 2
    say("versions: " + ", ".join(f"{LABELS[t]} {v}" for t, v in versions.items()))
    load_start = load_at_start()

    run_id = datetime.now().strftime("%Y%m%d-%H%M%S")
    work_dir = args.work_dir.resolve() / run_id
    for tool in tools:
        if tool.name == "mlflow" and args.mlflow_wal:
            tool.extra_env.update(wal_env(work_dir))
    results: list[dict[str, Measurement]] = []
    try:
        for sc in chosen_scenarios(args):
            n = scenario_n(args, sc)
            say(f"[{sc.key}] {sc.title}: {n:,} metrics x {args.repeat} repeats")
            results.append(
                measure(tools, sc, n, args.repeat, work_dir, args.keep, args.server_workers)
            )
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)

    tables = build_tables(results, args.batch_n)
    note_lines = notes(args, results, args.server_workers)
    print()
    print_tables(tables)
    for line in note_lines:
        print(f"* {line}")
    failed = [m for r in results for m in r.values() if not m.ok]
    for m in failed:
        print(f"\n{LABELS[m.tool]} failed in '{m.scenario.title}':\n{m.error}")
    total = time.perf_counter() - started
    print(f"\nTotal benchmark time: {total:.0f} s")

    env_info = {
        "runtime": runtimes(results),
        "started": started_at,
        "load": load_span(load_start),
        "total": f"{total:.0f} s",
    }
    if args.json:
        write_raw_json(
            args.json,
            args,
            {
                "versions": versions,
                "env": env_info,
                "results": [
                    {
                        "tool": m.tool,
                        "scenario": m.scenario.key,
                        "n": m.n,
                        "times": m.times,
                        "error": m.error,
                        "extra": m.extra,
                    }
                    for r in results
                    for m in r.values()
                ],
            },
        )
    if args.write:
        if failed:
            say("not writing RESULTS.md: some measurements failed")
            return 1
        vers = ", ".join(f"{LABELS[t]} {v}" for t, v in versions.items())
        append_section(
            args.results,
            f"Tracking: loopml vs MLflow — {started_at}",
            run_facts(
                f"{vers}; {env_info['runtime']}",
                env_info["load"],
                env_info["total"],
                ["python", "benchmarks/bench_tracking.py", *raw],
            ),
            [("", table) for table in tables],
            note_lines,
        )
        say(f"appended results to {args.results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
