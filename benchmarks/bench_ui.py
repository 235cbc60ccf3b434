#!/usr/bin/env python
"""Web UI benchmark: the run table's API and the pages in Chromium with 10,000 runs.

Run it with the project's interpreter (Playwright installed, ``/usr/bin/chromium`` present;
``bash benchmarks/setup_anchors.sh`` first for the MLflow anchor)::

    .venv/bin/python benchmarks/bench_ui.py            # print the tables
    .venv/bin/python benchmarks/bench_ui.py --write    # and append them to RESULTS.md

A worker seeds a fresh store with ``--runs`` finished runs of ``--metrics`` metrics, three
params and a tag each (one ``log_batch`` per run) and reports how long that took. Then
``loopml server`` serves it on 127.0.0.1 and the parent times, over one keep-alive
connection, ``--requests`` calls of each request the run table makes (after 3 untimed
ones): a page of 100 runs sorted by a metric, the same with a filter, and the experiment's
metric/param/tag keys. Last, headless Chromium opens each page ``--loads`` times, each in a
fresh browser context (an empty cache), and the time from navigation to the page's content
being visible is recorded.

The anchor: when ``benchmarks/.venv-anchors`` exists, the same runs are logged into MLflow
(SQLite store, ``MlflowClient.log_batch`` per run) and the search its UI makes
(``POST /ajax-api/2.0/mlflow/runs/search``, 100 runs, the same order and filter) is timed
the same way. MLflow has no route for an experiment's keys; its UI reads them off the runs.

The target (issue 10): every page under a second with 10,000 runs.
This file is also the worker: ``bench_ui.py --worker TOOL HOME RUNS METRICS``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
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
    write_raw_json,
)

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # page loads are then skipped

    class PlaywrightError(Exception):  # type: ignore[no-redef]
        """Stands in for Playwright's error when it is not installed."""


ROOT = BENCH_DIR.parent
DEFAULT_LOOPML_PYTHON = ROOT / ".venv" / "bin" / "python"
DEFAULT_ANCHOR_PYTHON = BENCH_DIR / ".venv-anchors" / "bin" / "python"
CHROMIUM = Path("/usr/bin/chromium")
EXPERIMENT = "bench-ui"
ORDER = "metrics.m00 DESC"
FILTER = "metrics.m03 > 0.5 and params.optimizer = 'adam'"
TARGET_S = 1.0
SEED_TIMEOUT_S = 3600.0
SERVER_START_TIMEOUT_S = 180.0
PAGE_TIMEOUT_MS = 30_000
OPTIMIZERS = ("sgd", "adam", "rmsprop")

# --------------------------------------------------------------------------------------------
# Worker half: seeds a store inside the interpreter of the tool under test.
# --------------------------------------------------------------------------------------------


def _metric_value(run: int, key: int) -> float:
    """A spread of values in [0, 1) that differs per run and key."""
    return ((run * 7919 + key * 104729) % 10007) / 10007


def _seed_loopml(home: Path, runs: int, metrics: int) -> dict[str, Any]:
    os.environ["LOOPML_HOME"] = str(home)
    import loopml as lm

    service = lm.get_service()
    experiment_id = service.create_experiment(EXPERIMENT)
    start = time.perf_counter()
    now = int(time.time() * 1000) - runs * 1000
    run_ids = []
    for i in range(runs):
        run = service.create_run(experiment_id, run_name=f"run-{i:05d}", start_time=now + i)
        service.log_batch(
            run.run_id,
            metrics=[
                lm.Metric(f"m{k:02d}", _metric_value(i, k), now + i, 0) for k in range(metrics)
            ],
            params={"lr": 10 ** -(1 + i % 4), "depth": 2 + i % 8, "optimizer": OPTIMIZERS[i % 3]},
            tags={"team": "core" if i % 2 else "growth"},
        )
        service.end_run(run.run_id, "FINISHED", now + i + 500)
        if i < 2:
            run_ids.append(run.run_id)
    return {
        "experiment_id": experiment_id,
        "seconds": time.perf_counter() - start,
        "run_ids": run_ids,
    }


def _seed_mlflow(home: Path, runs: int, metrics: int) -> dict[str, Any]:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment_id = client.create_experiment(
        EXPERIMENT, artifact_location=(home / "artifacts").as_uri()
    )
    start = time.perf_counter()
    now = int(time.time() * 1000) - runs * 1000
    for i in range(runs):
        run = client.create_run(experiment_id, start_time=now + i, run_name=f"run-{i:05d}")
        params = {"lr": 10 ** -(1 + i % 4), "depth": 2 + i % 8, "optimizer": OPTIMIZERS[i % 3]}
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"m{k:02d}", _metric_value(i, k), now + i, 0) for k in range(metrics)],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag("team", "core" if i % 2 else "growth")],
        )
        client.set_terminated(run.info.run_id, "FINISHED", now + i + 500)
    return {"experiment_id": experiment_id, "seconds": time.perf_counter() - start}


def worker_main(tool: str, home: str, runs: str, metrics: str) -> int:
    """Seed ``home`` with ``tool`` and print the result line for the parent."""
    seed = _seed_loopml if tool == "loopml" else _seed_mlflow
    return emit_result(seed(Path(home), int(runs), int(metrics)))


# --------------------------------------------------------------------------------------------
# Parent half: servers, timings, report.
# --------------------------------------------------------------------------------------------


def seed(tool: str, python: Path, home: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run the seeding worker for ``tool``; return what it reports."""
    home.mkdir(parents=True, exist_ok=True)
    say(f"{tool}: seeding {args.runs:,} runs x {args.metrics} metrics")
    result: dict[str, Any] = run_worker_script(
        python,
        __file__,
        [tool, str(home), str(args.runs), str(args.metrics)],
        env=clean_env({"LOOPML_HOME": str(home)}),
        cwd=home,
        timeout=SEED_TIMEOUT_S,
        what=f"{tool} seeding",
    )
    say(f"{tool}: seeded in {result['seconds']:.1f} s")
    return result


def server_command(tool: str, python: Path, port: int, home: Path) -> list[str]:
    """The command that serves ``home`` with ``tool`` on 127.0.0.1:``port`` (one worker)."""
    if tool == "loopml":
        return [str(python), "-m", "loopml", "server", "--host", "127.0.0.1", "--port", str(port)]
    return [
        str(python.parent / "mlflow"),
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
        "1",
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def time_calls(call: Callable[[], int], requests: int) -> dict[str, float]:
    """Time ``requests`` calls (after 3 untimed ones); ``call`` returns the runs it got."""
    for _ in range(3):
        call()
    times = []
    count = 0
    for _ in range(requests):
        start = time.perf_counter()
        count = call()
        times.append(time.perf_counter() - start)
    return {
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "max": max(times),
        "rows": count,
    }


def loopml_api(base: str, experiment_id: str, requests: int) -> dict[str, dict[str, float]]:
    """Time the run table's three requests against a loopml server."""
    import httpx

    def search(filter_string: str | None) -> Callable[[], int]:
        params: dict[str, Any] = {
            "experiment_ids": experiment_id,
            "max_results": 100,
            "order_by": ORDER,
        }
        if filter_string:
            params["filter_string"] = filter_string

        def call() -> int:
            response = client.get("/api/v1/runs/search", params=params)
            if response.status_code != 200:
                raise BenchError(f"search answered {response.status_code}: {response.text}")
            return len(response.json()["runs"])

        return call

    def keys() -> int:
        response = client.get(f"/api/v1/experiments/{experiment_id}/keys")
        if response.status_code != 200:
            raise BenchError(f"keys answered {response.status_code}: {response.text}")
        return len(response.json()["metrics"])

    with httpx.Client(base_url=base, timeout=60) as client:
        return {
            "search": time_calls(search(None), requests),
            "search_filtered": time_calls(search(FILTER), requests),
            "keys": time_calls(keys, requests),
        }


def mlflow_api(base: str, experiment_id: str, requests: int) -> dict[str, dict[str, float]]:
    """Time the search MLflow's UI makes for its run table, with and without the filter."""
    import httpx

    def search(filter_string: str | None) -> Callable[[], int]:
        body: dict[str, Any] = {
            "experiment_ids": [experiment_id],
            "max_results": 100,
            "order_by": [ORDER],
        }
        if filter_string:
            body["filter"] = filter_string

        def call() -> int:
            response = client.post("/ajax-api/2.0/mlflow/runs/search", json=body)
            if response.status_code != 200:
                raise BenchError(f"MLflow search answered {response.status_code}")
            return len(response.json().get("runs", []))

        return call

    with httpx.Client(base_url=base, timeout=60) as client:
        return {
            "search": time_calls(search(None), requests),
            "search_filtered": time_calls(search(FILTER), requests),
        }


def page_loads(base: str, seeded: dict[str, Any], loads: int, runs: int) -> dict[str, list[float]]:
    """Open each page ``loads`` times in fresh Chromium contexts; seconds until it shows."""
    from playwright.sync_api import Page, sync_playwright

    experiment_id = seeded["experiment_id"]
    first, second = seeded["run_ids"]
    pages: dict[str, tuple[str, str]] = {
        "Experiments": ("#/", "[data-testid=experiments] a"),
        f"Run table (100 of {runs:,} runs)": (f"#/experiments/{experiment_id}", "tr[data-run-id]"),
        "Run": (f"#/runs/{first}", "[data-testid=metrics]"),
        "Compare (2 runs)": (
            f"#/compare?runs={first},{second}",
            "[data-testid=parallel-coords] svg",
        ),
    }
    sort_label = "Run table, sorted by a metric (click)"
    results: dict[str, list[float]] = {name: [] for name in [*pages, sort_label]}

    def first_row(page: Page) -> str | None:
        return page.locator("tr[data-run-id]").first.get_attribute("data-run-id")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            for _ in range(loads):
                for name, (route, selector) in pages.items():
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    page = context.new_page()
                    start = time.perf_counter()
                    page.goto(f"{base}/{route}")
                    page.locator(selector).first.wait_for(timeout=PAGE_TIMEOUT_MS)
                    results[name].append(time.perf_counter() - start)
                    if name.startswith("Run table"):
                        before = first_row(page)
                        start = time.perf_counter()
                        page.locator('th[data-sort-key="metrics.m00"]').first.click()
                        page.wait_for_function(
                            "before => { const r = document.querySelector('tr[data-run-id]');"
                            " return r && r.dataset.runId !== before; }",
                            arg=before,
                            timeout=PAGE_TIMEOUT_MS,
                        )
                        results[sort_label].append(time.perf_counter() - start)
                    context.close()
        finally:
            browser.close()
    return results


def ms(seconds: float) -> str:
    """Format seconds as milliseconds."""
    return f"{seconds * 1000:.1f}"


def build_tables(
    seeding: dict[str, dict[str, Any]],
    api: dict[str, dict[str, dict[str, float]]],
    pages: dict[str, list[float]] | None,
    args: argparse.Namespace,
) -> list[tuple[str, Table]]:
    """The seeding, API and page-load tables."""
    tables: list[tuple[str, Table]] = []
    seed_rows = [
        [
            tool,
            f"{result['seconds']:.1f}",
            f"{args.runs / result['seconds']:,.0f}",
        ]
        for tool, result in seeding.items()
    ]
    tables.append(
        (
            f"Seeding {args.runs:,} runs x {args.metrics} metrics, 3 params, 1 tag:",
            (["Tool", "Seconds", "Runs/s"], seed_rows),
        )
    )
    labels = {
        "search": f"runs/search, 100 runs, order_by {ORDER}",
        "search_filtered": f"runs/search, 100 runs, filter `{FILTER}`",
        "keys": "experiments/{id}/keys",
    }
    head = ["Request", "loopml p50 ms", "loopml p95 ms"]
    anchor = "mlflow" in api
    if anchor:
        head += ["MLflow p50 ms", "MLflow p95 ms", "MLflow / loopml (p50)"]
    rows = []
    for key, label in labels.items():
        ours = api["loopml"][key]
        row = [label, ms(ours["p50"]), ms(ours["p95"])]
        if anchor:
            theirs = api["mlflow"].get(key)
            row += (
                [ms(theirs["p50"]), ms(theirs["p95"]), f"{theirs['p50'] / ours['p50']:.1f}x"]
                if theirs
                else ["—", "—", "—"]
            )
        rows.append(row)
    tables.append((f"Run-table API over {args.requests} requests each:", (head, rows)))
    if pages:
        page_rows = [
            [
                name,
                ms(statistics.median(times)),
                ms(max(times)),
                "met" if statistics.median(times) < TARGET_S else "NOT met",
            ]
            for name, times in pages.items()
        ]
        tables.append(
            (
                f"Pages in headless Chromium, {args.loads} loads each, fresh context (cold cache):",
                (["Page", "Median ms", "Max ms", "Under 1 s"], page_rows),
            )
        )
    return tables


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs to seed (default 10,000)")
    parser.add_argument("--metrics", type=int, default=20, help="metrics per run (default 20)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per call")
    parser.add_argument("--loads", type=int, default=5, help="page loads per page")
    parser.add_argument(
        "--loopml-python", type=Path, default=DEFAULT_LOOPML_PYTHON, help="loopml's interpreter"
    )
    parser.add_argument(
        "--mlflow-python",
        type=Path,
        default=DEFAULT_ANCHOR_PYTHON,
        help="MLflow's interpreter (default: benchmarks/.venv-anchors); skipped when absent",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow anchor")
    add_output_options(parser, raw_json="the raw timings")
    args = parser.parse_args(argv)
    if args.runs < 2 or args.metrics < 4 or args.requests < 1 or args.loads < 1:
        parser.error("need --runs >= 2, --metrics >= 4, --requests >= 1 and --loads >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if len(raw) == 5 and raw[0] == "--worker":
        return worker_main(*raw[1:])
    args = parse_args(raw)
    exit_on_sigterm()
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tools = {"loopml": args.loopml_python.absolute()}
    if not args.no_mlflow and args.mlflow_python.exists():
        tools["mlflow"] = args.mlflow_python.absolute()
    elif not args.no_mlflow:
        say(f"no MLflow anchor: {args.mlflow_python} is missing (bash benchmarks/setup_anchors.sh)")
    can_browse = CHROMIUM.exists() and PlaywrightError.__module__.startswith("playwright")
    if not can_browse:
        say(f"page loads skipped: needs {CHROMIUM} and Playwright (pip install -e '.[test]')")
    load_start = load_at_start()

    work_dir = args.work_dir.resolve() / f"ui-{datetime.now():%Y%m%d-%H%M%S}"
    seeding: dict[str, dict[str, Any]] = {}
    api: dict[str, dict[str, dict[str, float]]] = {}
    pages: dict[str, list[float]] | None = None
    try:
        for tool, python in tools.items():
            home = work_dir / tool
            seeding[tool] = seed(tool, python, home, args)
            port = free_port()
            env = clean_env({"LOOPML_HOME": str(home)})
            cmd = server_command(tool, python, port, home)
            base = f"http://127.0.0.1:{port}"
            with running_server(cmd, env, home, f"{base}/health", SERVER_START_TIMEOUT_S) as (
                _,
                took,
            ):
                say(f"{tool}: server healthy after {took:.1f} s; timing the API")
                experiment_id = seeding[tool]["experiment_id"]
                timer = loopml_api if tool == "loopml" else mlflow_api
                api[tool] = timer(base, experiment_id, args.requests)
                if tool == "loopml" and can_browse:
                    say("loopml: loading the pages in Chromium")
                    pages = page_loads(base, seeding[tool], args.loads, args.runs)
    except PlaywrightError as exc:
        say(f"error: a page did not load: {exc}")
        return 1
    except BenchError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)

    tables = build_tables(seeding, api, pages, args)
    medians = [statistics.median(t) for t in (pages or {}).values()]
    verdict = (
        "not measured (no browser)"
        if not medians
        else ("met" if max(medians) < TARGET_S else "NOT met")
    )
    notes = [
        f"Target (issue 10): every page under {TARGET_S:.0f} s with {args.runs:,} runs: "
        f"**{verdict}** (slowest median {ms(max(medians)) if medians else '—'} ms).",
        "Page times run from navigation to the page's content being visible (the run table's "
        "first row, the run's metrics table, the comparison's plot); each load uses a new "
        "browser context, so plotly.js and the app are fetched and parsed every time.",
        "The sort time runs from the click on the metric's column header to the first row "
        "changing (a server-side order_by).",
        "API times are over one keep-alive connection from the benchmark process, one server "
        "worker each, SQLite stores.",
    ]
    if "mlflow" not in api:
        notes.append("No MLflow anchor in this run (benchmarks/.venv-anchors was absent).")
    print()
    print_tables_plain(tables)
    for line in notes:
        print(f"* {line}")
    total = time.perf_counter() - started
    print(f"\nTotal benchmark time: {total:.0f} s")
    versions = f"loopml {dist_version('loopml', '?')}"
    if "mlflow" in api:
        mlflow_version = run_code(
            tools["mlflow"],
            "import mlflow; print(mlflow.__version__)",
            env=clean_env({}),
            timeout=120,
            failure="cannot read MLflow's version",
        )
        versions += f", MLflow {mlflow_version}"
    if args.json:
        write_raw_json(
            args.json, args, {"seeding": seeding, "api": api, "pages": pages, "verdict": verdict}
        )
    if args.write:
        append_section(
            args.results,
            f"Web UI: {args.runs:,} runs — {started_at}",
            run_facts(
                f"{versions}; Chromium at {CHROMIUM}",
                load_span(load_start),
                f"{total:.0f} s",
                ["python", "benchmarks/bench_ui.py", *raw],
            ),
            tables,
            notes,
        )
        say(f"appended results to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
