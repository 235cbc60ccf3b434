"""Detailed views of runs: ``loopml runs show`` and ``loopml runs compare``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from loopml.cli._output import (
    Cell,
    format_duration,
    format_size,
    format_time,
    format_value,
    print_json,
    print_note,
    render_pairs,
    short_id,
    status_text,
    stdout_console,
)
from loopml.entities.tracking import LifecycleStage, Run
from loopml.tracking.service import TrackingService
from loopml.tracking.system import SYSTEM_TAG_PREFIX

_DIFF_STYLE = "bold yellow"


def run_details(tracking: TrackingService, run: Run) -> dict[str, Any]:
    """Collect what ``runs show`` displays: the run, its experiment, metric summaries, files.

    Parameters
    ----------
    tracking : TrackingService
        The service to ask.
    run : Run
        The run to describe.

    Returns
    -------
    dict
        ``Run.to_dict()`` plus ``experiment_name``, ``metric_summary`` (per metric: latest
        value, its step, min, max and number of values) and ``artifacts``.
    """
    summary: dict[str, dict[str, Any]] = {}
    for key in sorted(run.metrics):
        history = tracking.get_metric_history(run.run_id, key)
        values = [m.value for m in history if not math.isnan(m.value)]
        summary[key] = {
            "latest": run.metrics[key],
            "step": history[-1].step if history else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
            "count": len(history),
        }
    return {
        **run.to_dict(),
        "experiment_name": tracking.get_experiment(run.experiment_id).name,
        "metric_summary": summary,
        "artifacts": [entry.to_dict() for entry in tracking.list_artifacts(run.run_id)],
    }


def _table(title: str, *headers: str, right: Sequence[int] = ()) -> Table:
    table = Table(
        title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, show_edge=False
    )
    for index, header in enumerate(headers):
        table.add_column(header, justify="right" if index in right else "left", overflow="fold")
    return table


def _key_values(title: str, values: Mapping[str, str], note: str = "") -> Table | None:
    if not values:
        return None
    table = _table(f"{title} ({len(values)}{note})", "Key", "Value")
    for key in sorted(values):
        table.add_row(key, values[key])
    return table


def render_run(run: Run, details: Mapping[str, Any]) -> None:
    """Print a run as a block of attributes followed by one table per kind of data."""
    console = stdout_console()
    deleted = run.lifecycle_stage is LifecycleStage.DELETED
    console.print(Text.assemble(("Run ", "bold"), (run.run_id, "bold cyan")))
    host = run.host + (f" (pid {run.pid})" if run.pid is not None else "")
    pairs: list[tuple[str, Cell]] = [
        ("Name", run.run_name),
        ("Experiment", f"{details['experiment_name']} (id {run.experiment_id})"),
        ("Status", status_text(run.status.value, deleted=deleted)),
        ("User", run.user or "-"),
        ("Host", host or "-"),
        ("Parent run", run.parent_run_id or "-"),
        ("Start", format_time(run.start_time, seconds=True)),
        ("End", format_time(run.end_time, seconds=True)),
        ("Duration", format_duration(run.start_time, run.end_time)),
    ]
    render_pairs(pairs)

    user_tags = {k: v for k, v in run.tags.items() if not k.startswith(SYSTEM_TAG_PREFIX)}
    system_tags = {
        k[len(SYSTEM_TAG_PREFIX) :]: v
        for k, v in run.tags.items()
        if k.startswith(SYSTEM_TAG_PREFIX)
    }
    sections = (
        _key_values("Params", run.params),
        _metrics_table(details["metric_summary"]),
        _key_values("Tags", user_tags),
        _key_values("System tags", system_tags, note=f", {SYSTEM_TAG_PREFIX}*"),
    )
    for table in sections:
        if table is not None:
            console.print()
            console.print(table)
    console.print()
    artifacts: list[dict[str, Any]] = details["artifacts"]
    if not artifacts:
        print_note("No artifacts.")
        return
    total = sum(int(a["size"]) for a in artifacts)
    files = f"{len(artifacts)} file{'s' if len(artifacts) != 1 else ''}"
    table = _table(
        f"Artifacts ({files}, {format_size(total)})", "Path", "Size", "SHA-256", right=(1,)
    )
    for entry in artifacts:
        table.add_row(entry["path"], format_size(entry["size"]), entry["sha256"][:12])
    console.print(table)


def _metrics_table(summary: Mapping[str, Mapping[str, Any]]) -> Table | None:
    if not summary:
        return None
    table = _table(
        f"Metrics ({len(summary)})",
        "Key",
        "Latest",
        "Step",
        "Min",
        "Max",
        "Values",
        right=(1, 2, 3, 4, 5),
    )
    for key, item in summary.items():
        table.add_row(
            key,
            format_value(item["latest"]),
            format_value(item["step"]),
            format_value(item["min"]),
            format_value(item["max"]),
            str(item["count"]),
        )
    return table


def _comparable(value: Any) -> Any:
    # NaN never equals itself; two runs that both logged NaN do agree.
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _rows(runs: Sequence[Run], kind: str, diff_only: bool) -> list[dict[str, Any]]:
    keys = sorted({k for run in runs for k in getattr(run, kind)})
    rows = []
    for key in keys:
        values = {run.run_id: getattr(run, kind).get(key) for run in runs}
        differs = len({_comparable(v) for v in values.values()}) > 1
        if differs or not diff_only:
            rows.append({"key": key, "values": values, "differs": differs})
    return rows


def render_comparison(runs: Sequence[Run], *, diff_only: bool, as_json: bool) -> None:
    """Print params and metrics of several runs side by side, marking the differences.

    Parameters
    ----------
    runs : sequence of Run
        Two or more distinct runs.
    diff_only : bool
        Leave out params and metrics on which every run agrees.
    as_json : bool
        Print ``{"runs": [...], "params": [...], "metrics": [...]}`` instead of a table;
        each param or metric entry holds ``key``, ``values`` by run id and ``differs``.
    """
    params = _rows(runs, "params", diff_only)
    metrics = _rows(runs, "metrics", diff_only)
    if as_json:
        print_json(
            {
                "runs": [
                    {
                        "run_id": r.run_id,
                        "run_name": r.run_name,
                        "experiment_id": r.experiment_id,
                        "status": r.status.value,
                        "start_time": r.start_time,
                        "end_time": r.end_time,
                    }
                    for r in runs
                ],
                "params": params,
                "metrics": metrics,
            }
        )
        return
    any_diff = any(row["differs"] for row in params + metrics)
    table = Table(
        title=f"Comparing {len(runs)} runs",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        caption="* marks params and metrics whose values differ" if any_diff else None,
        caption_justify="left",
    )
    table.add_column("")
    for run in runs:
        table.add_column(
            f"{short_id(run.run_id)}\n{run.run_name}",
            justify="right",
            overflow="fold",
            header_style="bold cyan",
        )
    table.add_row("  status", *(status_text(r.status.value) for r in runs))
    table.add_row("  start", *(format_time(r.start_time) for r in runs))
    table.add_row("  duration", *(format_duration(r.start_time, r.end_time) for r in runs))
    for kind, rows in (("params", params), ("metrics", metrics)):
        if not rows:
            continue
        table.add_section()
        for row in rows:
            style = _DIFF_STYLE if row["differs"] else ""
            label = Text.assemble(
                ("* " if row["differs"] else "  ", style), (f"{kind}.", "dim"), (row["key"], style)
            )
            cells = []
            for run in runs:
                cell = format_value(row["values"][run.run_id])
                cells.append(Text(cell, style=style) if isinstance(cell, str) else cell)
            table.add_row(label, *cells)
    stdout_console().print(table)
    if not params and not metrics:
        print_note(
            "These runs have no differing params or metrics."
            if diff_only
            else "These runs have no params or metrics."
        )
