#!/usr/bin/env python
"""Monitoring benchmark: a monitor's drift run against Evidently, and what logging costs /predict.

Run it with the project's interpreter, after ``bash benchmarks/setup_evidently.sh``::

    .venv/bin/python benchmarks/bench_monitoring.py                # 1,000,000 rows, print tables
    .venv/bin/python benchmarks/bench_monitoring.py --rows 100000  # a quick run
    .venv/bin/python benchmarks/bench_monitoring.py --write        # and append to RESULTS.md

Part 1, drift. The shared data set of ``bench_data.py`` (a reference and a current frame of
``--rows`` rows x 20 columns, 7 columns shifted; the same generator, seed and Parquet files)
is used. A worker in the project's venv registers the reference frame as a dataset version,
saves a ``Monitor`` with that version as its reference and the 20 columns as features, reads
the current frame into pandas and then times, with the frame handed to the monitor as its
window (``source=``, in place of the prediction log):

- the **first** ``MonitorService.run``: it reads the reference version, sketches its 20
  columns and stores the sketches, then tests the window;
- the **next** runs, with the sketches already stored (what every scheduled run costs);
- the drift tests alone: ``drift_from_sketch`` on each column with the stored sketches.

Evidently's ``Report([DataDriftPreset()])`` runs on the same two frames through
``bench_data.py``'s own worker, and the per-column verdicts are compared.

Part 2, prediction logging. ``bench_serving.py``'s model is served by ``loopml serve``
twice per round, with its default prediction logging and with ``--no-log-predictions``, and
the same single-row request is sent at concurrency 1; rounds alternate which goes first. The
target is that logging adds at most 5% to the p50 latency. After each logging server stops,
the rows in its prediction log are counted, to show the logging really happened.

This file is also the worker (``bench_monitoring.py --worker KIND SPEC``); its module-level
imports are the standard library and the sibling benchmark modules only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bench_data
import bench_serving
from _common import (
    BenchError,
    clean_env,
    emit_result,
    exit_on_sigterm,
    free_port,
    run_worker_script,
)
from _report import (
    Table,
    add_output_options,
    append_section,
    load_at_start,
    load_span,
    print_tables_plain,
    run_facts,
    say,
)

MONITOR = "bench-monitor"
REFERENCE = "bench-reference"
WORKER_TIMEOUT_S = 1800.0
TARGET_DRIFT_RATIO = 10.0
TARGET_LOG_OVERHEAD = 0.05

# --------------------------------------------------------------------------------------------
# Worker half: runs in the project's interpreter.
# --------------------------------------------------------------------------------------------


def _monitor_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Register the reference, save the monitor, time the first and the later runs."""
    import pandas as pd

    import loopml as lm
    from loopml.monitoring import LastN, Monitor
    from loopml.monitoring.checks import drift_from_sketch
    from loopml.monitoring.reference import ReferenceSketch, sketch_key
    from loopml.monitoring.service import get_service

    columns = bench_data.column_order()
    t0 = time.perf_counter()
    version = lm.datasets.register(REFERENCE, spec["reference"], profile=False)
    register_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    current = pd.read_parquet(spec["current"])
    load_s = time.perf_counter() - t0
    service = get_service()
    service.save(
        Monitor(MONITOR, reference=version.uri, window=LastN(len(current)), features=columns)
    )
    seen: list[int] = []

    def source(model: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
        seen.append(kwargs.get("limit") or 0)
        return current

    t0 = time.perf_counter()
    first = service.run(MONITOR, source=source)
    first_s = time.perf_counter() - t0
    warm: list[float] = []
    result = first
    for _ in range(spec["repeat"]):
        t0 = time.perf_counter()
        result = service.run(MONITOR, source=source)
        warm.append(time.perf_counter() - t0)
    stored = service.store.get_reference_sketch(sketch_key(version.uri, version.digest, columns))
    if stored is None:
        raise RuntimeError("the monitor stored no reference sketch")
    sketch = ReferenceSketch.from_dict(stored)
    tests_only: list[float] = []
    for _ in range(spec["repeat"]):
        t0 = time.perf_counter()
        for name in columns:
            drift_from_sketch(sketch.columns[name], current[name])
        tests_only.append(time.perf_counter() - t0)
    verdicts = {
        name: {
            "method": item["method"],
            "score": float(item["score"]),
            "threshold": float(item["threshold"]),
            "drifted": bool(item["drifted"]),
        }
        for name, item in result.features.items()
    }
    first_verdicts = {n: v["drifted"] for n, v in first.to_dict()["features"].items()}
    return {
        "register_s": register_s,
        "load_s": load_s,
        "first_s": first_s,
        "warm_s": warm,
        "tests_only_s": tests_only,
        "verdicts": verdicts,
        "same_as_first": first_verdicts == {n: v["drifted"] for n, v in verdicts.items()},
        "skipped": dict(result.skipped),
        "rows": result.rows,
        "drift_share": result.drift_share,
        "verdict": result.verdict,
        "limits_asked": sorted(set(seen)),
        "sample_size": max(len(c.sample or []) for c in sketch.columns.values()),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "loopml": lm.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


def _count_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Rows in the prediction log of the served benchmark model."""
    import loopml as lm

    frame = lm.monitoring.predictions(spec["model"], with_labels=False)
    return {"rows": len(frame)}


def worker_main(kind: str, spec_json: str) -> int:
    """Entry point of a worker subprocess: run one job and print its result as JSON."""
    spec = json.loads(spec_json)
    result = {"monitor": _monitor_worker, "count": _count_worker}[kind](spec)
    return emit_result(result)


# --------------------------------------------------------------------------------------------
# Parent half.
# --------------------------------------------------------------------------------------------


def run_worker(kind: str, spec: dict[str, Any], env: dict[str, str], cwd: Path) -> Any:
    """Run this file as a worker with the project's interpreter; return its JSON result."""
    return run_worker_script(
        Path(sys.executable),
        __file__,
        [kind, json.dumps(spec)],
        env=env,
        cwd=cwd,
        timeout=WORKER_TIMEOUT_S,
        what=f"{kind} worker",
    )


def project_env(home: Path) -> dict[str, str]:
    """The environment of a loopml subprocess: no caller settings, its own LOOPML_HOME."""
    env = clean_env()
    env["LOOPML_HOME"] = str(home)
    return env


@dataclass
class LoggingRound:
    """One round of the prediction-logging comparison."""

    order: list[str]
    p50: dict[str, float] = field(default_factory=dict)
    p99: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    logged_rows: int | None = None


def measure_logging(args: argparse.Namespace, work: Path) -> tuple[list[LoggingRound], Any]:
    """Serve the benchmark model with and without prediction logging, in alternating order."""
    home = work / "serving"
    home.mkdir(parents=True)
    env = clean_env({"LOOPML_HOME": str(home)})
    model, row, spec = bench_serving.train(work)
    expected = [int(v) for v in model.predict(row)]
    say("[serving] registering the model")
    bench_serving.run_worker(Path(sys.executable), "loopml", spec, env, home)
    subject = bench_serving.subjects(row)["loopml"]
    loopml_cli = Path(sys.executable).parent / "loopml"
    options = argparse.Namespace(
        concurrency=[1],
        warmup=args.warmup,
        requests=args.requests,
        max_seconds=args.max_seconds,
        health_requests=1,
    )
    flags = {"logging on": [], "logging off": ["--no-log-predictions"]}
    rounds: list[LoggingRound] = []
    for index in range(args.rounds):
        order = list(flags) if index % 2 == 0 else list(reversed(flags))
        current = LoggingRound(order)
        for label in order:
            cmd = [
                str(loopml_cli),
                "serve",
                f"{bench_serving.MODEL_NAME}@champion",
                "--port",
                str(free_port()),
                *flags[label],
            ]
            served = bench_serving.measure_server(
                replace(subject, label=f"loopml, {label}"), cmd, env, home, options, expected
            )
            level = served.levels.get(1)
            if served.error is not None or level is None or not level.ok:
                raise BenchError(f"round {index + 1}, {label}: {served.error or 'no latencies'}")
            current.p50[label] = level.pct(50)
            current.p99[label] = level.pct(99)
            current.requests[label] = len(level.latencies)
            if label == "logging on":
                counted = run_worker("count", {"model": bench_serving.MODEL_NAME}, env, home)
                current.logged_rows = int(counted["rows"])
        say(
            f"  round {index + 1}: p50 on {bench_serving.fmt_latency(current.p50['logging on'])},"
            f" off {bench_serving.fmt_latency(current.p50['logging off'])}"
        )
        rounds.append(current)
    return rounds, model


# --------------------------------------------------------------------------------------------
# Tables and notes.
# --------------------------------------------------------------------------------------------


def drift_table(
    lm: dict[str, Any], ev: bench_data.Measurement | None
) -> tuple[Table, dict[str, Any]]:
    """One row per loopml timing, Evidently's preset beside them."""
    fmt = bench_data.fmt_s
    ev_ok = ev is not None and ev.ok
    ev_s = ev.median if ev_ok and ev is not None else None
    ev_verdicts = ev.last["verdicts"] if ev_ok and ev is not None else {}
    cmp = bench_data.compare(lm["verdicts"], ev_verdicts) if ev_ok else None
    total = len(cmp.columns) if cmp else 0
    same = f"{len(cmp.same_verdict)}/{total}" if cmp else "—"
    methods = f"{total - len(cmp.method_diff) - len(cmp.only_one_side)}/{total}" if cmp else "—"
    warm = statistics.median(lm["warm_s"])
    tests = statistics.median(lm["tests_only_s"])
    n = len(lm["warm_s"])

    def ratio(seconds: float) -> str:
        if ev_s is None:
            return "—"
        value = ev_s / seconds
        return f"{value:.1f}x faster" if value >= 1 else f"{1 / value:.1f}x slower"

    head = ["What is timed", "loopml", "Evidently DataDriftPreset", "Evidently / loopml"]
    head += ["Same verdicts", "Same method"]
    ev_cell = fmt(ev_s) if ev_s is not None else "—"
    rows = [
        [
            "Monitor run, first (reads the reference, sketches and stores it)",
            fmt(lm["first_s"]),
            ev_cell,
            ratio(lm["first_s"]),
            same,
            methods,
        ],
        [
            f"Monitor run, sketches stored (median of {n})",
            fmt(warm),
            ev_cell,
            ratio(warm),
            same,
            methods,
        ],
        [
            f"Drift tests only: drift_from_sketch x 20 (median of {n})",
            fmt(tests),
            ev_cell,
            ratio(tests),
            same,
            methods,
        ],
    ]
    facts = {"warm_ratio": (ev_s / warm) if ev_s else None, "comparison": cmp, "warm_s": warm}
    return (head, rows), facts


def logging_table(rounds: list[LoggingRound]) -> tuple[Table, dict[str, Any]]:
    """p50 and p99 per round with and without logging, and the overhead."""
    fmt = bench_serving.fmt_latency
    head = ["Round", "Order", "p50 logging on", "p50 logging off", "p50 overhead"]
    head += ["p99 on", "p99 off", "Rows logged"]
    rows = []
    overheads = []
    for index, r in enumerate(rounds, start=1):
        on, off = r.p50["logging on"], r.p50["logging off"]
        overhead = on / off - 1
        overheads.append(overhead)
        rows.append(
            [
                str(index),
                " then ".join(label.split()[1] for label in r.order),
                fmt(on),
                fmt(off),
                f"{overhead:+.1%}",
                fmt(r.p99["logging on"]),
                fmt(r.p99["logging off"]),
                f"{r.logged_rows:,}" if r.logged_rows is not None else "—",
            ]
        )
    on_all = statistics.median(r.p50["logging on"] for r in rounds)
    off_all = statistics.median(r.p50["logging off"] for r in rounds)
    median_overhead = on_all / off_all - 1
    rows.append(
        [
            "median",
            "",
            fmt(on_all),
            fmt(off_all),
            f"{median_overhead:+.1%}",
            "",
            "",
            "",
        ]
    )
    return (head, rows), {"overhead": median_overhead, "per_round": overheads}


def targets_table(drift: dict[str, Any], logging: dict[str, Any] | None) -> Table:
    """The two targets and whether they were met."""
    head = ["Target", "Measured", "Target value", "Met"]
    rows = []
    cmp = drift["comparison"]
    if drift["warm_ratio"] is not None and cmp is not None:
        met = drift["warm_ratio"] >= TARGET_DRIFT_RATIO and not cmp.verdict_diff
        rows.append(
            [
                "monitor drift run (sketches stored) vs Evidently, same verdicts",
                f"{drift['warm_ratio']:.1f}x, {len(cmp.same_verdict)}/{len(cmp.columns)} "
                "verdicts agree",
                f"≥ {TARGET_DRIFT_RATIO:.0f}x, all agree",
                "yes" if met else "**no**",
            ]
        )
    if logging is not None:
        met = logging["overhead"] <= TARGET_LOG_OVERHEAD
        rows.append(
            [
                "prediction logging: added p50 at concurrency 1",
                f"{logging['overhead']:+.1%} (median of the rounds' p50)",
                f"≤ {TARGET_LOG_OVERHEAD:.0%}",
                "yes" if met else "**no**",
            ]
        )
    return head, rows


def build_notes(
    args: argparse.Namespace,
    lm: dict[str, Any],
    ev: bench_data.Measurement | None,
    drift: dict[str, Any],
    rounds: list[LoggingRound] | None,
    logging: dict[str, Any] | None,
) -> list[str]:
    """What the numbers mean, and every disagreement."""
    fmt = bench_data.fmt_s
    shifted = bench_data.shifted_columns()
    out = [
        f"Data: `bench_data.py`'s synthetic set (seed {args.seed}): reference and current "
        f"frames of {args.rows:,} rows x 20 columns (12 numeric, 8 categorical strings); "
        f"shifted in the current frame: {', '.join(shifted)}.",
        f"loopml: one fresh worker process (LOOPML_HOME in a temporary folder) registered the "
        f"reference Parquet file as `{REFERENCE}@v1` ({fmt(lm['register_s'])}, not timed, "
        f"profiling off), saved `Monitor('{MONITOR}', reference=..., window=LastN({args.rows}), "
        "features=<the 20 columns>)` and read the current frame into pandas "
        f"({fmt(lm['load_s'])}, not timed). Each timing is one `MonitorService.run` with "
        "`source=` returning that frame (the window the prediction log would supply; reading "
        "the log is not timed, as Evidently gets its frames in memory too): drift per "
        "feature, the share of drifted features, the per-feature distributions kept for "
        "reports, the rules, alerts and storing the result. Peak RSS of the worker: "
        f"{bench_data.fmt_mib(lm['peak_rss_kib'])}.",
        f"First run {fmt(lm['first_s'])}: it also read the 20 reference columns from the "
        "store and sketched them (histograms, category counts, a fixed-seed sample of "
        f"{lm['sample_size']:,} values per numeric column), then stored the sketches. Later "
        f"runs: {' / '.join(fmt(s) for s in lm['warm_s'])}; drift tests alone: "
        f"{' / '.join(fmt(s) for s in lm['tests_only_s'])}.",
        "Numeric columns with many values are tested with the normed Wasserstein distance on "
        f"the reference's {lm['sample_size']:,}-value sample (Evidently uses all reference "
        "values), so those scores differ slightly; count-based tests (Jensen-Shannon on "
        "categories and on numeric columns with at most 5 values) use exact counts.",
    ]
    if not lm["same_as_first"]:
        out.append("Warning: the first run's verdicts differ from the later runs'.")
    if lm["skipped"]:
        out.append(f"Warning: the monitor skipped features: {lm['skipped']}.")
    if ev is not None and ev.ok:
        out.append(
            f"Evidently {ev.last['version']}: `Report([DataDriftPreset()]).run(...)` in its own "
            f"venv through `bench_data.py`'s worker, {args.evidently_repeat} fresh process(es): "
            + " / ".join(fmt(float(r["seconds"])) for r in ev.results)
            + f"; peak RSS {bench_data.fmt_mib(ev.peak_rss_kib)}."
        )
        cmp = drift["comparison"]
        truth = set(shifted)
        for label, verdicts in (("loopml", lm["verdicts"]), ("Evidently", ev.last["verdicts"])):
            flagged = {n for n, v in verdicts.items() if v["drifted"]}
            out.append(
                f"{label} flags {len(flagged)} column(s): {len(flagged & truth)} of the "
                f"{len(truth)} shifted ones, {len(flagged - truth)} false alarm(s)"
                + (f" ({', '.join(sorted(flagged - truth))})" if flagged - truth else "")
                + "."
            )
        out.append(
            f"Verdicts: {len(cmp.same_verdict)}/{len(cmp.columns)} columns agree"
            + (f"; disagree: {', '.join(cmp.verdict_diff)}" if cmp.verdict_diff else "")
            + (f"; methods differ: {', '.join(cmp.method_diff)}" if cmp.method_diff else "")
            + ". Evidently types int columns with at most 10 distinct values as categorical "
            "(Jensen-Shannon); loopml keeps them numeric above 5 values (Wasserstein)."
        )
    if rounds and logging:
        logged = [r.logged_rows for r in rounds if r.logged_rows is not None]
        # Each logging server answered one check request, the warm-up and the measured ones.
        per_server = 1 + args.warmup + args.requests
        expected = [per_server * (i + 1) for i in range(len(logged))]
        if logged != expected:
            out.append(
                f"Warning: the prediction logs held {logged} rows, expected {expected}: "
                "some predictions were not logged."
            )
        out.append(
            f"Prediction logging: {len(rounds)} rounds; in each, `loopml serve` of "
            f"`bench_serving.py`'s model (a 10-feature LogisticRegression) started with its "
            "defaults (every prediction logged) and with `--no-log-predictions`, in "
            f"alternating order, {args.warmup} warm-up then {args.requests:,} single-row "
            "`POST /predict` requests at concurrency 1 (keep-alive httpx client in the "
            "parent). Each logging server's prediction log held "
            + ", ".join(f"{n:,}" for n in logged)
            + " rows after it stopped (cumulative over the rounds; "
            + ("all" if logged == expected else "not all")
            + " of the check, warm-up and measured requests were written). Per-round "
            "overheads: "
            + ", ".join(f"{o:+.1%}" for o in logging["per_round"])
            + "; the rounds' spread shows the noise of this shared machine."
        )
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    d = " (default: %(default)s)"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows per frame" + d)
    p.add_argument("--seed", type=int, default=bench_data.SEED, help="data seed" + d)
    p.add_argument("--repeat", type=int, default=3, help="monitor runs after the first" + d)
    p.add_argument("--evidently-repeat", type=int, default=1, help="fresh Evidently processes" + d)
    p.add_argument("--skip-evidently", action="store_true", help="time loopml only")
    p.add_argument("--skip-serving", action="store_true", help="skip the logging comparison")
    p.add_argument("--rounds", type=int, default=4, help="logging on/off rounds" + d)
    p.add_argument("--requests", type=int, default=2000, help="requests per server" + d)
    p.add_argument("--warmup", type=int, default=300, help="warm-up requests per server" + d)
    p.add_argument("--max-seconds", type=float, default=60.0, help="cap per level" + d)
    p.add_argument("--evidently-python", type=Path, default=bench_data.DEFAULT_EVIDENTLY_PYTHON)
    add_output_options(p)
    args = p.parse_args(argv)
    if args.rows < 2 or min(args.repeat, args.evidently_repeat, args.rounds, args.requests) < 1:
        p.error("--rows must be at least 2; repeats, rounds and requests at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run both parts and print (and optionally write) the results."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if len(raw) == 3 and raw[0] == "--worker":
        return worker_main(raw[1], raw[2])
    args = parse_args(raw)
    exit_on_sigterm()
    started = time.perf_counter()
    evidently_py = Path(os.path.abspath(args.evidently_python))
    if not args.skip_evidently and not evidently_py.exists():
        say(f"error: {evidently_py} does not exist (run: bash benchmarks/setup_evidently.sh)")
        return 2
    load_start = load_at_start()
    folder = args.work_dir.resolve() / f"data-{args.rows}-seed{args.seed}"
    say(f"data: {args.rows:,} rows x 20 columns per frame in {folder}")
    ref_path, cur_path, gen_s = bench_data.generate(args.rows, args.seed, folder)
    say(f"  generated in {gen_s:.1f} s" if gen_s else "  reusing the Parquet files")
    work = Path(tempfile.mkdtemp(prefix="monitoring-", dir=args.work_dir.resolve()))
    rounds: list[LoggingRound] | None = None
    ev: bench_data.Measurement | None = None
    try:
        say("[loopml] monitor runs")
        spec = {"reference": str(ref_path), "current": str(cur_path), "repeat": args.repeat}
        home = work / "monitor"
        home.mkdir()
        lm = run_worker("monitor", spec, project_env(home), home)
        say(
            f"  first run {bench_data.fmt_s(lm['first_s'])}, later runs "
            + " / ".join(bench_data.fmt_s(s) for s in lm["warm_s"])
        )
        if not args.skip_evidently:
            say("[Evidently] DataDriftPreset (a few minutes on 1,000,000 rows)")
            ev = bench_data.measure(
                bench_data.EVIDENTLY_TASK,
                evidently_py,
                ref_path,
                cur_path,
                args.evidently_repeat,
                folder,
            )
            if not ev.ok:
                raise BenchError(f"Evidently failed: {ev.error}")
        if not args.skip_serving:
            say("[serving] prediction logging on and off")
            rounds, _ = measure_logging(args, work)
    except BenchError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    drift, drift_facts = drift_table(lm, ev)
    tables: list[tuple[str, Table]] = [(f"Drift on {args.rows:,} rows x 20 columns:", drift)]
    logging_facts = None
    if rounds:
        table, logging_facts = logging_table(rounds)
        tables.append(("Prediction logging, `POST /predict` at concurrency 1:", table))
    tables.append(("Targets:", targets_table(drift_facts, logging_facts)))
    if ev is not None and ev.ok:
        tables.append(
            (
                "Per-column verdicts (loopml: the monitor's stored-sketch run; Evidently: "
                "DataDriftPreset):",
                bench_data.column_table(
                    lm["verdicts"], ev.last["verdicts"], ev.last.get("column_types", {})
                ),
            )
        )
    notes = build_notes(args, lm, ev, drift_facts, rounds, logging_facts)
    print()
    print_tables_plain(tables)
    for line in notes:
        print(f"* {line}")
    total = time.perf_counter() - started
    print(f"\nTotal benchmark time: {total:.0f} s")
    if args.write:
        versions = f"loopml {lm['loopml']}, pandas {lm['pandas']}, Python {lm['python']}"
        if ev is not None and ev.ok:
            versions += f"; Evidently {ev.last['version']} (pandas {ev.last['pandas']})"
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        append_section(
            args.results,
            f"Monitoring: loopml vs Evidently, and prediction logging — {now}",
            run_facts(
                versions,
                load_span(load_start),
                f"{total:.0f} s",
                ["python", "benchmarks/bench_monitoring.py", *raw],
            ),
            tables,
            notes,
        )
        say(f"appended results to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
