"""The whole MLOps loop on real data, with continuous training (the ``make demo`` job).

The hourly Bikeshare record of Washington D.C. in 2011 (shipped inside the ``ISLP`` package)
plays a year of production. The label says whether an hour is busy (at least 200 bikes
rented). The demo

1. registers January to March as a dataset and validates it against its schema;
2. trains the first model on the policy's window (the last 30 days of that data), tuning it
   briefly, evaluates it on the newest days, passes it through a gate, registers it and
   sets the ``champion`` alias;
3. stores a continuous-training policy (``lm.loop``): retrain when the monitor's accuracy
   alert fires (``--drift-trigger``: also on feature drift), on the last 30 days, gate
   against the champion, roll out as a canary;
4. serves the model on 127.0.0.1 in this process (a deployment that canaries alias moves,
   with prediction logging);
5. replays April to December week by week as live traffic: every hour of the week is a
   ``POST /predict``; at the end of the week its labels arrive (``POST /feedback``), the
   week joins the dataset as a new version, a monitor checks the week and its alerts fire
   trigger events, and the loop controller acts on them (its clock follows the replay):
   retrain on the window, gate, canary, promotion;
6. prints a summary per month (the model trained once against the model actually served),
   writes an HTML report with the timeline and stops what it started.

Every name the demo creates carries a fresh suffix (``bikes-<tag>``, ``bikeshare-<tag>``),
so a second run on the same ``LOOPML_HOME`` starts from scratch beside the first; the runs go
to the experiment ``demo``. Run it with::

    python examples/demo.py                 # the whole year, a few minutes on 2 cores
    python examples/demo.py --weeks 8       # the first eight weeks of the replay
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loopml as lm

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import demo_bikes as bikes  # noqa: E402 - they live beside this file
import demo_report  # noqa: E402

#: The replay starts here; everything before it is the first model's history.
REPLAY_START = "2011-04-01"
#: Days of data each retrain (and the first model) learns from.
WINDOW_DAYS = 30
#: Accuracy loss, against the served version's evaluation, that raises an alert.
ACCURACY_DROP = 0.05
#: Share of the monitored features that must drift for a drift alert.
DRIFT_SHARE = 0.5


@dataclass(frozen=True)
class Names:
    """Everything the demo creates, named with one suffix so that runs never collide."""

    tag: str

    @property
    def data(self) -> str:
        return f"bikes-{self.tag}"

    @property
    def model(self) -> str:
        return f"bikeshare-{self.tag}"

    @property
    def policy(self) -> str:
        return f"bikes-{self.tag}"


@dataclass
class Week:
    """What happened in one replayed week."""

    index: int
    start: Any
    end: Any
    requests: int = 0
    served_accuracy: float = math.nan
    static_accuracy: float = math.nan
    versions: dict[str, int] = field(default_factory=dict)
    monitor_verdict: str = ""
    monitor_accuracy: float = math.nan
    drift_share: float = math.nan
    alerts: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)


@dataclass
class DemoResult:
    """What :func:`main` returns: the names, every week, every loop event and the report."""

    names: Names
    weeks: list[Week]
    history: list[Any]
    summary: Any
    report: Path
    first_version: int
    champion: int | None
    url: str


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weeks", type=int, default=None, help="replay only this many weeks (default: all 39)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=168,
        help="hours of each week sent as requests (168 = every hour; fewer are sampled)",
    )
    parser.add_argument("--trials", type=int, default=4, help="tuning trials per training")
    parser.add_argument("--canary-share", type=float, default=0.25, help="canary traffic share")
    parser.add_argument(
        "--canary-requests", type=int, default=25, help="requests a canary answers before promotion"
    )
    parser.add_argument(
        "--no-infra-check",
        action="store_true",
        help="skip the gate's check that a candidate loads and predicts in a fresh process",
    )
    parser.add_argument(
        "--drift-trigger",
        action="store_true",
        help=f"also retrain when at least {DRIFT_SHARE:.0%} of the features drift",
    )
    parser.add_argument("--tag", default=None, help="suffix of every name (random by default)")
    parser.add_argument("--report", type=Path, default=None, help="where to write the HTML report")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling and tuning")
    parser.add_argument("--quiet", action="store_true", help="no progress view or summary")
    args = parser.parse_args(argv)
    if args.weeks is not None and args.weeks < 1:
        parser.error("--weeks must be at least 1")
    if not 1 <= args.requests <= 168:
        parser.error("--requests must be between 1 and 168")
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if not 0 < args.canary_share < 1:
        parser.error("--canary-share must be between 0 and 1")
    return args


# -- set-up -------------------------------------------------------------------------------
def week_edges(data: Any, weeks: int | None) -> list[Any]:
    """Week boundaries from :data:`REPLAY_START`; the last week runs to the end of the data."""
    import pandas as pd

    start = pd.Timestamp(REPLAY_START, tz="UTC")
    end = data[bikes.TIMESTAMP].max() + pd.Timedelta(hours=1)
    edges = list(pd.date_range(start, end, freq="7D"))
    if edges[-1] < end and (end - edges[-1]) < pd.Timedelta(days=7):
        edges[-1] = end  # a short tail joins the last week
    elif edges[-1] < end:
        edges.append(end)
    if weeks is not None:
        edges = edges[: weeks + 1]
    return edges


def window_of(frame: Any, days: float = WINDOW_DAYS, holdout: float = 0.2) -> tuple[Any, Any]:
    """The policy's window of ``frame`` (its last ``days``), split into training and holdout."""
    import pandas as pd

    times = frame[bikes.TIMESTAMP]
    window = frame[times >= times.max() - pd.Timedelta(days=days)]
    window = window.sort_values(bikes.TIMESTAMP, kind="stable").reset_index(drop=True)
    held = max(1, round(len(window) * holdout))
    return window.iloc[:-held], window.iloc[-held:]


def register_data(names: Names, history: Any, console: Any) -> Any:
    """Register the history as the dataset, attach a schema and validate it."""
    version = lm.datasets.register(
        names.data,
        history,
        description="Bikeshare, Washington D.C., hourly (ISLP); busy = at least 200 bikes",
        tags={"source": "ISLP Bikeshare", "demo": names.tag},
    )
    schema = lm.data.infer_schema(history)
    # The schema states what a valid hour is, not what the first quarter happened to hold:
    # ISLP normalises weather readings to [0, 1], and time moves on.
    for column in ("temp", "hum", "windspeed"):
        schema.column(column).min, schema.column(column).max = 0.0, 1.0
    schema.column("weathersit").min, schema.column("weathersit").max = 1, 4
    schema.column(bikes.TIMESTAMP).max = None
    schema.column("bikers").max = None
    lm.datasets.set_schema(names.data, schema)
    result = lm.datasets.validate(names.data, version.version)
    console.print(
        f"  registered [bold]{version.uri}[/]: {version.num_rows:,} hours; {result.summary()}"
    )
    if not result.passed:
        raise SystemExit(f"the data of {version.uri} did not validate: {result.summary()}")
    return version


def first_champion(names: Names, history: Any, args: argparse.Namespace, console: Any) -> int:
    """Train, evaluate and gate the first model on the policy's window; make it champion."""
    train_part, holdout = window_of(history)
    window = lm.datasets.register(f"{names.policy}-window", train_part, tags={"demo": names.tag})
    trained = bikes.train(dataset=window.uri, trials=args.trials, seed=args.seed)
    version = lm.registry.register(trained["model_uri"], names.model)
    evaluation = lm.evaluate(
        lm.models.load(f"{names.model}/{version.version}"),
        holdout,
        target=bikes.LABEL,
        features=bikes.FEATURES,
        latency_rows=0,
    )
    gate = lm.Gate(thresholds={"accuracy": 0.75}, require_infra_check=not args.no_infra_check)
    decision = gate.check(lm.registry.get_model_version(names.model, version.version))
    console.print(
        f"  trained {names.model}/{version.version} on {window.uri} "
        f"({len(train_part):,} hours, C={trained['C']:.3g}); holdout accuracy "
        f"{evaluation.metrics['accuracy']:.3f}; gate {'passed' if decision.passed else 'FAILED'}"
    )
    if not decision.passed:
        raise SystemExit(decision.summary())
    lm.registry.set_alias(
        names.model, "champion", version.version, reason="first model of the demo passed the gate"
    )
    return int(version.version)


def make_policy(names: Names, args: argparse.Namespace) -> Any:
    """The continuous-training policy that keeps the model fresh."""
    return lm.loop.Policy(
        name=names.policy,
        model=names.model,
        pipeline=f"{bikes.PIPELINE_FILE}:train",
        pipeline_params={"trials": args.trials, "seed": args.seed},
        data=names.data,
        timestamp=bikes.TIMESTAMP,
        label=bikes.LABEL,
        # The dataset receives every labelled week, the served hours among them, so the
        # prediction log would only add the same hours twice.
        include_logged=False,
        triggers=[
            lm.loop.Degradation(metric="accuracy", drop=ACCURACY_DROP),
            lm.loop.Manual(),
            *([lm.loop.Drift(share=DRIFT_SHARE)] if args.drift_trigger else []),
        ],
        window=lm.loop.FixedWindow(days=WINDOW_DAYS),
        gate=lm.Gate(
            thresholds={"accuracy": 0.75},
            min_improvement={"accuracy": 0.0},
            require_infra_check=not args.no_infra_check,
        ),
        rollout=lm.loop.Canary(
            share=args.canary_share,
            min_requests=args.canary_requests,
            # Replay time: a canary has a week of traffic to prove itself.
            max_duration="10d",
            max_error_rate=0.05,
            check_interval=0.5,
        ),
        alias="champion",
        cooldown="6h",
        max_retrains_per_day=4,
    )


def make_monitor(names: Names, rows: int, drift_rule: bool) -> Any:
    """A monitor of the last week's predictions: feature drift and accuracy.

    Drift is always measured (the report plots it); only with ``drift_rule`` does it raise
    alerts. Weather changes from week to week, so on this data some feature drifts against
    the 30-day reference nearly every week, while the accuracy says whether that matters.
    """
    from loopml.monitoring import LastN, Monitor, Rule

    rules = [Rule("accuracy", "drop", ACCURACY_DROP)]
    if drift_rule:
        rules.append(Rule("drift_share", ">=", DRIFT_SHARE))
    return Monitor(
        names.model,
        window=LastN(rows),
        features=bikes.FEATURES,
        target=bikes.LABEL,
        drift_share=DRIFT_SHARE,
        rules=rules,
    )


# -- serving ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(names: Names, logger: Any) -> Iterator[Any]:
    """Serve the policy's deployment on 127.0.0.1 in a thread; yield a client; stop it."""
    import httpx
    import uvicorn

    from loopml.serving.app import create_serving_app
    from loopml.serving.deployment import parse_deployment
    from loopml.store.registry import open_deployment_store

    # lm.loop.apply stored the deployment the policy's canaries need (one primary variant
    # on the champion that canaries alias moves); serve exactly that.
    stored = open_deployment_store(lm.load_settings()).get_deployment(names.model)
    app = create_serving_app(
        parse_deployment(stored.config, source=f"deployment {names.model}"),
        revision=stored.revision,
        reload_interval=0.5,
        prediction_logger=logger,
        seed=0,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="demo-model-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while True:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise SystemExit("the model server did not start")
                if server.started and client.get("/ready").status_code == 200:
                    break
                time.sleep(0.05)
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for_rollout(client: Any, version: int, timeout: float = 60.0) -> None:
    """Wait until the model server canaries (or serves) ``version`` after the alias moved.

    The server notices alias moves every ``reload_interval``; a replay sends a week of
    traffic in a second or two, faster than any live system would, so it waits for the
    canary rather than send the next week to the old version alone.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = client.get("/metadata").json()
        canary = metadata.get("canary") or {}
        served = {v["version"] for v in metadata.get("variants", [])}
        if canary.get("version") == version or served == {version}:
            return
        time.sleep(0.1)


def settle_canary(client: Any, min_requests: int, timeout: float = 30.0) -> None:
    """Give a canary that has answered enough requests time for the server's verdict.

    A live week leaves the server's canary controller hours; the replay's week lasts a
    second or two, so it waits (briefly) for the verdict before the loop looks for it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        canary = client.get("/metadata").json().get("canary")
        if not canary or int(canary.get("requests", 0)) < min_requests:
            return
        time.sleep(0.1)


def wait_logged(logger: Any, rows: int, timeout: float = 60.0) -> None:
    """Wait until the prediction log has written ``rows`` rows in total."""
    deadline = time.monotonic() + timeout
    # Predictions are queued after each response is sent, so the last ones may still be on
    # their way to the queue when the client has its answer.
    while logger.written < rows and time.monotonic() < deadline:
        logger.flush(timeout=5)
        if logger.written < rows:
            time.sleep(0.05)


# -- the replay ---------------------------------------------------------------------------
def send_week(client: Any, names: Names, week: Week, hours: Any) -> Any:
    """Send each hour as one request; return the hours with the answers."""
    answers: list[tuple[str, int, int | None, str]] = []
    for position, record in enumerate(hours[bikes.FEATURES].to_dict(orient="records")):
        request_id = f"{names.tag}-w{week.index:02d}-{position:03d}"
        response = client.post(
            "/predict", json={"inputs": [record]}, headers={"x-request-id": request_id}
        )
        response.raise_for_status()
        body = response.json()
        answers.append((request_id, int(body["predictions"][0]), body["version"], body["variant"]))
    served = hours.reset_index(drop=True).copy()
    served["request_id"] = [a[0] for a in answers]
    served["served"] = [a[1] for a in answers]
    served["version"] = [a[2] for a in answers]
    served["variant"] = [a[3] for a in answers]
    return served


def send_labels(client: Any, served: Any) -> None:
    """The week's ground truth, as a client would post it once the hours are over."""
    items = [
        {"request_id": rid, "label": int(label)}
        for rid, label in zip(served["request_id"], served[bikes.LABEL], strict=True)
    ]
    response = client.post("/feedback", json={"items": items})
    response.raise_for_status()


def replay(
    names: Names,
    data: Any,
    edges: list[Any],
    args: argparse.Namespace,
    client: Any,
    logger: Any,
    first_version: int,
    console: Any,
) -> list[Week]:
    """Replay the weeks: traffic, labels, new data, monitor, loop controller."""
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    static = lm.models.load(f"{names.model}/{first_version}")
    clock = [edges[0].timestamp()]
    controller = lm.loop.Controller(clock=lambda: clock[0], policies=[names.policy])
    rng = np.random.default_rng(args.seed)
    weeks: list[Week] = []
    logged = 0
    progress = Progress(
        TextColumn("[bold]replaying 2011[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "{task.fields[week]}  served {task.fields[served]}  trained once {task.fields[static]}"
        ),
        console=console,
    )
    try:
        with progress:
            task = progress.add_task("weeks", total=len(edges) - 1, week="", served="-", static="-")
            for index, (start, end) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
                week = Week(index, start, end)
                times = data[bikes.TIMESTAMP]
                hours = data[(times >= start) & (times < end)]
                if args.requests < len(hours):
                    chosen = np.sort(rng.choice(len(hours), args.requests, replace=False))
                    hours = hours.iloc[chosen]
                served = send_week(client, names, week, hours)
                settle_canary(client, args.canary_requests)
                send_labels(client, served)
                logged += len(served)
                wait_logged(logger, logged)
                week.requests = len(served)
                week.served_accuracy = float((served["served"] == served[bikes.LABEL]).mean())
                week.static_accuracy = bikes.accuracy(static, served)
                week.versions = {
                    f"v{v}": int(n)
                    for v, n in served["version"].value_counts().sort_index().items()
                }
                # The warehouse receives the labelled week: a new dataset version.
                lm.datasets.register(names.data, data[times < end], profile=False)
                result = lm.monitoring.run(names.model)
                week.monitor_verdict = result.verdict
                week.monitor_accuracy = float(result.quality.get("accuracy", math.nan))
                week.drift_share = float(result.drift_share)
                week.alerts = [
                    str(a.get("alert", {}).get("check", ""))
                    for a in result.alerts
                    if a.get("status") == "firing"
                ]
                clock[0] = end.timestamp()
                week.events = controller.run_once()
                weeks.append(week)
                for event in week.events:
                    if event.kind == "canary_started":
                        wait_for_rollout(client, int(event.evidence["to_version"]))
                stamp = f"{end:%b %d}"
                for rule in week.alerts:
                    progress.console.print(f"  {stamp}  monitor alert: {rule}")
                for event in week.events:
                    progress.console.print(f"  {stamp}  loop: {demo_report.describe_event(event)}")
                progress.update(
                    task,
                    advance=1,
                    week=f"week to {stamp}",
                    served=f"{week.served_accuracy:.2f}",
                    static=f"{week.static_accuracy:.2f}",
                )
    finally:
        controller.close()
    return weeks


@contextlib.contextmanager
def quiet_loggers() -> Iterator[None]:
    """Keep loopml's own INFO/WARNING lines out of the progress view; the demo prints its own."""
    target = logging.getLogger("loopml")
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


def main(argv: list[str] | None = None) -> DemoResult:
    """Run the demo; return what happened (the test reads it)."""
    args = parse_args(argv)

    from rich.console import Console

    from loopml.monitoring import PredictionLogger

    console = Console(quiet=args.quiet)
    names = Names(args.tag or uuid.uuid4().hex[:6])
    settings = lm.load_settings()
    report = args.report or Path(settings.home) / "demo" / f"{names.policy}.html"
    started = time.monotonic()
    lm.set_experiment(bikes.EXPERIMENT)

    console.rule(f"[bold]loopml demo[/] · names end in -{names.tag}")
    data = bikes.load_bikeshare()
    edges = week_edges(data, args.weeks)
    history = data[data[bikes.TIMESTAMP] < edges[0]]
    console.print(
        f"[bold]1. data[/]  Bikeshare 2011 from ISLP: {len(data):,} hours, "
        f"{data[bikes.LABEL].mean():.0%} busy (>= {bikes.BUSY_THRESHOLD} bikes)"
    )
    with quiet_loggers():
        register_data(names, history, console)
        console.print("[bold]2. first model[/]  window, training with tuning, evaluation, gate")
        first = first_champion(names, history, args, console)
        console.print("[bold]3. policy and monitor[/]")
        stored = lm.loop.apply(make_policy(names, args))
        lm.monitoring.save(make_monitor(names, args.requests, args.drift_trigger))
        alerts = "accuracy or drift alert" if args.drift_trigger else "accuracy alert"
        console.print(
            f"  policy {stored.name} v{stored.version}: {alerts} -> retrain on the last "
            f"{WINDOW_DAYS} days -> gate against the champion -> canary at "
            f"{args.canary_share:.0%}"
        )
        console.print("[bold]4. serving[/]  deployment with prediction logging on 127.0.0.1")
        logger = PredictionLogger(flush_seconds=0.5)
        try:
            with serving(names, logger) as client:
                url = str(client.base_url).rstrip("/")
                console.print(f"  serving {names.model}@champion at {url}")
                console.print(f"[bold]5. replay[/]  {len(edges) - 1} weeks from {REPLAY_START}")
                weeks = replay(names, data, edges, args, client, logger, first, console)
        finally:
            logger.close()
        loop_history = lm.loop.history(names.policy, limit=10_000)
        monthly = demo_report.summarize(weeks)
        champion = lm.registry.resolve(f"{names.model}@champion").version
        title = f"{names.model}: a year of Bikeshare traffic with continuous training"
        intro = (
            f"Model {names.model}, policy {names.policy}, dataset {names.data}. 'trained once' "
            "is the first champion, never retrained, on the same requests; 'served' is what "
            "the model server answered while the policy retrained and rolled out new versions."
        )
        written = demo_report.write_report(report, title, intro, weeks, monthly, loop_history)
    console.print("[bold]6. summary[/]")
    demo_report.print_summary(
        console, f"{names.model} kept fresh by policy {names.policy}", monthly
    )
    console.print(f"  {names.model}@champion is version {champion} (version {first} was the first)")
    console.print(f"  report: {written}", soft_wrap=True, markup=False)
    console.print(f"  took {time.monotonic() - started:.0f}s. Next, try:")
    for command in (
        f"loopml loop history {names.policy}",
        f"loopml models audit {names.model}",
        f"loopml deploy history {names.model}",
        f"loopml monitor history {names.model}",
        f"loopml server   # then open http://127.0.0.1:5000/#/loop/{names.policy}",
    ):
        console.print(f"  {command}", markup=False)
    return DemoResult(names, weeks, loop_history, monthly, written, first, champion, url)


if __name__ == "__main__":
    main()
