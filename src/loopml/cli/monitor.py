"""``loopml monitor``: create monitors, run them, and read their status, history and report.

``loopml monitor run`` exits 0 whatever the verdict, so that cron keeps running it; with
``--fail-on-alert`` it exits 1 when a rule fired, for pipelines that should stop then.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from loopml.cli._common import JsonOption
from loopml.cli._output import (
    Column,
    emit,
    format_time,
    format_value,
    print_json,
    print_note,
    print_success,
    render_pairs,
    render_table,
)

if TYPE_CHECKING:
    from loopml.monitoring.monitors import MonitorResult
    from loopml.monitoring.service import MonitorService

app = typer.Typer(
    name="monitor",
    help="Watch served models: drift, quality, latency and alerts.",
    no_args_is_help=True,
)

ModelArgument = Annotated[str, typer.Argument(metavar="MODEL", help="The model (or monitor) name.")]
HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Also write the HTML report to this file.")
]
_VERDICT_STYLES = {"ok": "green", "alert": "bold red", "no_data": "yellow", "never_run": "dim"}
#: Exit code of ``run --fail-on-alert`` when a rule fired.
EXIT_ALERT = 1


def _service() -> MonitorService:
    from loopml.monitoring.service import get_service

    return get_service()


def _verdict(value: Any) -> Text:
    return Text(str(value), style=_VERDICT_STYLES.get(str(value), ""))


_CHECK_COLUMNS = (
    Column("name", "Check", style="bold", no_wrap=True),
    Column("value", "Value", justify="right", no_wrap=True),
    Column("baseline", "Baseline", justify="right", no_wrap=True),
    Column("verdict", "Verdict", fmt=_verdict, no_wrap=True),
    Column("message", "Detail"),
)
_FEATURE_COLUMNS = (
    Column("column", "Feature", style="bold", no_wrap=True),
    Column("method", "Test", no_wrap=True),
    Column("statistic", "Statistic", justify="right", no_wrap=True),
    Column("p_value", "p-value", justify="right", no_wrap=True),
    Column("threshold", "Threshold", justify="right", no_wrap=True),
    Column("drifted", "Drift", fmt=lambda v: _verdict("alert" if v else "ok"), no_wrap=True),
)
_HISTORY_COLUMNS = (
    Column("time", "Run", fmt=lambda v: format_time(v, seconds=True), no_wrap=True),
    Column("version", "Version", justify="right", no_wrap=True),
    Column("verdict", "Verdict", fmt=_verdict, no_wrap=True),
    Column("rows", "Rows", justify="right", no_wrap=True),
    Column("labelled_rows", "Labelled", justify="right", no_wrap=True),
    Column("drift_share", "Drift share", justify="right", no_wrap=True),
    Column("drifted", "Drifted features"),
)


def _show_result(result: MonitorResult) -> None:
    window = result.window or {}
    described = f"last {window['last']} rows" if "last" in window else f"last {window.get('time')}"
    version = f"v{result.version}" if result.version is not None else "-"
    pairs: list[tuple[str, str | Text]] = [
        ("monitor", result.monitor),
        ("verdict", _verdict(result.verdict)),
        ("model", f"{result.model} {version}"),
        ("reference", result.reference or "-"),
        ("window", f"{described}: {result.rows} rows, {result.labelled_rows} labelled"),
        ("drift share", format_value(result.drift_share)),
    ]
    for label, drift in (
        ("prediction drift", result.prediction_drift),
        ("target drift", result.target_drift),
    ):
        if drift and drift.get("method"):
            verdict = "drifted" if drift["drifted"] else "ok"
            pairs.append((label, f"{drift['method']} {format_value(drift['score'])} ({verdict})"))
    if result.missing:
        pairs.append(("missing", ", ".join(result.missing)))
    pairs += [(f"not tested: {name}", why) for name, why in result.skipped.items()]
    pairs += [(f"quality: {k}", format_value(v)) for k, v in result.quality.items()]
    pairs += [(f"latency {k}", f"{format_value(v)} ms") for k, v in result.latency.items()]
    render_pairs(pairs)
    if result.features:
        render_table(list(result.features.values()), _FEATURE_COLUMNS, title="Feature drift")
    if result.checks:
        render_table(result.checks, _CHECK_COLUMNS, title="Checks")
    for change in result.alerts:
        alert = change["alert"]
        style = "bold red" if change["status"] == "firing" else "green"
        typer.echo("")
        render_pairs([(f"alert {change['status']}", Text(alert["check"], style=style))])


@app.command("create")
def create(
    model: ModelArgument,
    name: Annotated[
        str | None, typer.Option("--name", help="Monitor name (default: the model name).")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Dataset version to compare with, e.g. churn@v3 (default: the training "
            "dataset in the served version's lineage).",
        ),
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", min=1, help="Window: the most recent N rows.")
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="Window: a duration such as 1h, 1d or 7d.")
    ] = None,
    features: Annotated[
        str | None, typer.Option("--features", help="Comma-separated features to test.")
    ] = None,
    drift_share: Annotated[
        float | None,
        typer.Option(
            "--drift-share",
            min=0.0,
            max=1.0,
            help="Share of drifted features that makes the dataset drift (default 0.3).",
        ),
    ] = None,
    rules: Annotated[
        list[str] | None,
        typer.Option("--rule", help="An alerting rule such as 'f1 drop 0.05' (repeatable)."),
    ] = None,
    webhooks: Annotated[
        list[str] | None,
        typer.Option("--webhook", help="URL that receives alerts as JSON (repeatable)."),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file", "-f", help="Read the monitor from a YAML file; flags override it."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create or replace the monitor of MODEL, from flags or a YAML file."""
    from loopml.errors import InvalidInput
    from loopml.monitoring.monitors import Monitor, read_monitor_file

    if last is not None and window is not None:
        raise InvalidInput("give --last or --window, not both", field="window")
    data: dict[str, Any] = read_monitor_file(from_file) if from_file else {}
    data["model"] = model
    overrides: dict[str, Any] = {
        "name": name,
        "reference": reference,
        "window": {"last": last} if last is not None else ({"time": window} if window else None),
        "features": [f.strip() for f in features.split(",") if f.strip()] if features else None,
        "drift_share": drift_share,
        "rules": list(rules) if rules else None,
        "webhooks": list(webhooks) if webhooks else None,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    monitor = _service().save(Monitor.from_dict(data))
    if as_json:
        print_json(monitor.to_dict())
        return
    print_success(f"Saved monitor {monitor.name} of model {monitor.model}.")
    render_pairs(
        [
            ("reference", monitor.reference or "training data of the served version"),
            ("window", monitor.window.describe()),
            ("rules", ", ".join(r.name for r in monitor.rules or []) or "default"),
            ("webhooks", str(len(monitor.webhooks))),
        ]
    )


@app.command("list")
def list_monitors(as_json: JsonOption = False) -> None:
    """List the saved monitors."""
    monitors = _service().list_monitors()
    records = [
        {**m.to_dict(), "window_text": m.window.describe(), "rules_count": len(m.rules or [])}
        for m in monitors
    ]
    emit(
        records,
        (
            Column("name", "Monitor", style="bold", no_wrap=True),
            Column("model", "Model", no_wrap=True),
            Column("reference", "Reference", fmt=lambda v: v or "lineage"),
            Column("window_text", "Window", no_wrap=True),
            Column("rules_count", "Rules", justify="right"),
        ),
        as_json=as_json,
        empty_message="No monitors yet; create one with 'loopml monitor create MODEL'.",
    )


@app.command("run")
def run(
    model: ModelArgument,
    html: HtmlOption = None,
    fail_on_alert: Annotated[
        bool, typer.Option("--fail-on-alert", help="Exit 1 when a rule fired.")
    ] = False,
    as_json: JsonOption = False,
) -> int:
    """Check MODEL's monitor window now and store the result."""
    service = _service()
    result = service.run(model)
    if html is not None:
        service.write_report(result.monitor, html)
    if as_json:
        print_json(result.to_dict())
    else:
        _show_result(result)
        if html is not None:
            print_note(f"report written to {html}")
    return EXIT_ALERT if fail_on_alert and result.verdict == "alert" else 0


@app.command("status")
def status(model: ModelArgument, as_json: JsonOption = False) -> None:
    """Show the latest verdict and the firing alerts of MODEL's monitor."""
    from loopml.monitoring.monitors import MonitorResult

    current = _service().status(model)
    if as_json:
        print_json(current)
        return
    if current["last_run"] is None:
        print_note(
            f"monitor {current['monitor']} has not run yet; try 'loopml monitor run {model}'"
        )
        return
    _show_result(MonitorResult.from_dict(current["last_run"]))
    firing = current["firing"]
    if firing:
        render_table(
            firing,
            (
                Column("check", "Firing alert", style="bold red", no_wrap=True),
                Column("fired_time", "Since", fmt=format_time, no_wrap=True),
                Column("message", "Detail"),
            ),
        )


@app.command("history")
def history(
    model: ModelArgument,
    n: Annotated[int, typer.Option("-n", "--last-runs", min=1, help="How many runs.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List the latest runs of MODEL's monitor, newest first."""
    results = _service().history(model, n)
    records = [{**r.to_dict(), "drifted": ", ".join(r.drifted_features)} for r in results]
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    emit(records, _HISTORY_COLUMNS, as_json=False, empty_message="No runs yet.")


@app.command("report")
def report(
    model: ModelArgument,
    html: HtmlOption = None,
) -> None:
    """Write the HTML report of MODEL's monitor (default MODEL-monitor.html)."""
    target = html if html is not None else Path(f"{model}-monitor.html")
    written = _service().write_report(model, target)
    print_success(f"Report written to {written}.")
