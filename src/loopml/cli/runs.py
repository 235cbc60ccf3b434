"""``loopml runs``: search, show, compare, delete and garbage-collect runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.text import Text

from loopml.cli._common import JsonOption, RunIdArgument, experiments_by_id, resolve_run, service
from loopml.cli._output import (
    Column,
    format_age,
    format_duration,
    format_time,
    format_value,
    print_json,
    print_note,
    print_success,
    render_table,
    short_id,
    status_text,
    stdout_console,
)
from loopml.cli._run_views import render_comparison, render_run, run_details
from loopml.entities.tracking import LifecycleStage, Run
from loopml.errors import InvalidInput, NotFound
from loopml.tracking.service import MAX_SEARCH_RESULTS, TrackingService

app = typer.Typer(
    name="runs",
    help="Search, inspect, compare and clean up runs.",
    no_args_is_help=True,
)

#: Params shown when ``--columns`` is not given; params that vary between runs come first.
MAX_AUTO_PARAMS = 5
#: Narrowest the run name column gets before metric columns are hidden instead.
MIN_NAME_WIDTH = 12
#: Padding on both sides of a cell plus the space rich keeps between two columns.
_COLUMN_OVERHEAD = 3

_KINDS = {
    "metrics": "metrics",
    "metric": "metrics",
    "params": "params",
    "param": "params",
    "tags": "tags",
    "tag": "tags",
}
_ATTRIBUTES = {
    "run_id": "Full run ID",
    "experiment_id": "Exp",
    "user": "User",
    "host": "Host",
    "parent_run_id": "Parent",
    "end_time": "End",
    "lifecycle_stage": "Stage",
}
_KIND_STYLES = {
    "metrics": "bold cyan",
    "params": "bold magenta",
    "tags": "bold yellow",
    "attributes": "bold",
}


def parse_columns(spec: str) -> list[tuple[str, str]]:
    """Parse ``--columns`` (``metrics.acc,params.C,user``) into ``(kind, key)`` pairs.

    Raises
    ------
    InvalidInput
        When an entry is neither ``metrics.<key>``, ``params.<key>``, ``tags.<key>`` nor a
        known attribute.
    """
    parsed: list[tuple[str, str]] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        prefix, dot, key = item.partition(".")
        kind = _KINDS.get(prefix.lower()) if dot else None
        if kind is not None and key:
            parsed.append((kind, key))
            continue
        name = key if dot and prefix.lower() in ("attributes", "attribute", "attr") else item
        if name in _ATTRIBUTES:
            parsed.append(("attributes", name))
            continue
        raise InvalidInput(
            f"unknown column {item!r} in --columns: use metrics.<key>, params.<key>, tags.<key> "
            f"or one of {', '.join(_ATTRIBUTES)}",
            field="columns",
        )
    if not parsed:
        raise InvalidInput("--columns names no column", field="columns")
    return parsed


def _experiment_ids(
    tracking: TrackingService, experiment: str | None, include_deleted: bool
) -> tuple[list[str], str]:
    """Pick the experiments to search and describe them for the table title."""
    if experiment:
        found = tracking.resolve_experiment(experiment)
        return [found.experiment_id], f"experiment {found.name!r}"
    from_env = os.environ.get("LOOPML_EXPERIMENT_NAME")
    if from_env:
        try:
            found = tracking.get_experiment_by_name(from_env)
        except NotFound:
            raise NotFound(
                f"experiment {from_env!r} (from LOOPML_EXPERIMENT_NAME) does not exist",
                field="experiment",
            ) from None
        return [found.experiment_id], f"experiment {found.name!r}"
    experiments = tracking.list_experiments(include_deleted=include_deleted)
    if len(experiments) == 1:
        return [experiments[0].experiment_id], f"experiment {experiments[0].name!r}"
    scope = f"{len(experiments)} experiments" if experiments else "this store"
    return [e.experiment_id for e in experiments], scope


def _search(
    tracking: TrackingService,
    experiment_ids: list[str],
    filter_string: str | None,
    order_by: Sequence[str],
    max_results: int,
    include_deleted: bool,
) -> tuple[list[Run], bool]:
    """Return up to ``max_results`` runs and whether more matched."""
    runs: list[Run] = []
    offset = 0
    while True:
        page = tracking.search_runs(
            experiment_ids,
            filter_string,
            list(order_by),
            min(1000, max_results - len(runs)),
            offset,
            include_deleted,
        )
        runs.extend(page.runs)
        if page.next_offset is None:
            return runs, False
        if len(runs) >= max_results:
            return runs, True
        offset = page.next_offset


def _cell_width(value: Any) -> int:
    cell = format_value(value)
    text = cell.plain if isinstance(cell, Text) else cell
    return max((len(line) for line in text.splitlines()), default=1)


def _column_width(header: str, rows: list[dict[str, Any]], key: str, cap: int | None = None) -> int:
    width = max([len(header), *(_cell_width(r.get(key)) for r in rows)])
    return min(width, cap) if cap else width


def _auto_columns(runs: list[Run]) -> list[tuple[str, str]]:
    """Every metric, then the most telling params (varying ones first), at most five."""
    metric_keys = sorted({k for run in runs for k in run.metrics})
    param_keys = {k for run in runs for k in run.params}

    def rank(key: str) -> tuple[bool, int, str]:
        values = [run.params.get(key) for run in runs]
        varies = len(set(values)) > 1
        return (not varies, -sum(v is not None for v in values), key)

    chosen = sorted(sorted(param_keys, key=rank)[:MAX_AUTO_PARAMS])
    return [("metrics", k) for k in metric_keys] + [("params", k) for k in chosen]


def _row(run: Run, experiments: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": short_id(run.run_id),
        "name": run.run_name,
        "status": status_text(
            run.status.value, deleted=run.lifecycle_stage is LifecycleStage.DELETED
        ),
        "start": format_age(run.start_time),
        "duration": format_duration(run.start_time, run.end_time),
        "experiment": experiments.get(run.experiment_id, run.experiment_id),
        "attributes.run_id": run.run_id,
        "attributes.experiment_id": run.experiment_id,
        "attributes.user": run.user,
        "attributes.host": run.host,
        "attributes.parent_run_id": run.parent_run_id,
        "attributes.end_time": format_time(run.end_time),
        "attributes.lifecycle_stage": run.lifecycle_stage.value,
    }
    row.update({f"metrics.{k}": v for k, v in run.metrics.items()})
    row.update({f"params.{k}": v for k, v in run.params.items()})
    row.update({f"tags.{k}": v for k, v in run.tags.items()})
    return row


def _data_column(kind: str, key: str, clashes: set[str]) -> Column:
    header = _ATTRIBUTES[key] if kind == "attributes" else key
    if kind != "metrics" and kind != "attributes" and key in clashes:
        header = f"{kind}.{key}"
    return Column(
        f"{kind}.{key}",
        header,
        justify="right" if kind == "metrics" else "left",
        header_style=_KIND_STYLES[kind],
        max_width=30 if kind != "metrics" else None,
        no_wrap=True,
    )


def _fit(
    base: list[Column], candidates: list[Column], rows: list[dict[str, Any]], width: int
) -> tuple[list[Column], list[Column]]:
    """Split the candidate columns into those that fit in ``width`` and the rest.

    Wrappable base columns (the run name) are counted at their narrowest, since rich
    shortens them with an ellipsis when the table needs the room.
    """
    used = -1 + sum(  # the last column has no separator after it
        (MIN_NAME_WIDTH if not c.no_wrap else _column_width(c.header, rows, c.key, c.max_width))
        + _COLUMN_OVERHEAD
        for c in base
    )
    # Stop at the first column that does not fit rather than skipping it: a table showing
    # metrics a, b and d but not c reads as if c were missing from the runs.
    for index, column in enumerate(candidates):
        used += _column_width(column.header, rows, column.key, column.max_width)
        used += _COLUMN_OVERHEAD
        if used > width:
            return list(candidates[:index]), list(candidates[index:])
    return list(candidates), []


@app.command("list")
def list_runs(
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="NAME_OR_ID",
            help="Experiment to list (default: LOOPML_EXPERIMENT_NAME, else every experiment).",
        ),
    ] = None,
    filter_string: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            metavar="FILTER",
            help="Search filter, e.g. \"metrics.acc > 0.9 and params.model = 'rf'\".",
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option(
            "--order-by",
            "-o",
            metavar="KEY [ASC|DESC]",
            help='Sort key, e.g. "metrics.acc DESC"; repeat for ties (default: newest first).',
        ),
    ] = None,
    max_results: Annotated[
        int,
        typer.Option(
            "--max",
            "-n",
            metavar="N",
            min=1,
            max=MAX_SEARCH_RESULTS,
            help="Most runs to list.",
        ),
    ] = 50,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            "-c",
            metavar="COLUMNS",
            help="Comma-separated extra columns, e.g. metrics.acc,params.C,tags.team "
            "(default: every metric and up to 5 params that fit).",
        ),
    ] = None,
    include_deleted: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Include deleted runs (and runs of deleted experiments).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List runs as a table (newest first) or as JSON."""
    chosen = parse_columns(columns) if columns is not None else None
    tracking = service()
    ids, scope = _experiment_ids(tracking, experiment, include_deleted)
    runs, more = _search(tracking, ids, filter_string, order_by or [], max_results, include_deleted)
    if as_json:
        print_json([run.to_dict() for run in runs])
        return
    if not runs:
        print_note(f"No runs match in {scope}." if filter_string else f"No runs in {scope} yet.")
        return
    several = len({run.experiment_id for run in runs}) > 1
    names = {k: e.name for k, e in experiments_by_id(tracking).items()} if several else {}
    rows = [_row(run, names) for run in runs]
    base = [
        Column("id", "Run ID", style="cyan", no_wrap=True, fmt=str),
        Column("name", "Name", max_width=24),  # wraps, so it gives way to data columns
        Column("status", "Status", no_wrap=True),
        Column("start", "Start", no_wrap=True),
        Column("duration", "Duration", justify="right", no_wrap=True),
    ]
    if several:
        base.insert(2, Column("experiment", "Experiment", max_width=16, no_wrap=True))
    pairs = chosen if chosen is not None else _auto_columns(runs)
    metric_keys = {key for kind, key in pairs if kind == "metrics"}
    data = [_data_column(kind, key, metric_keys) for kind, key in pairs]
    console = stdout_console()
    data, hidden = _fit(base, data, rows, console.width)
    caption = None
    if more:
        caption = f"First {len(runs)} runs shown; raise --max to see more."
    render_table(
        rows,
        base + data,
        title=f"{len(runs)} run{'s' if len(runs) != 1 else ''} in {scope}",
        caption=caption,
        console=console,
    )
    if hidden:
        keys = [c.key.removeprefix("attributes.") for c in hidden]
        names_hidden = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        print_note(
            f"{len(hidden)} more column{'s' if len(hidden) != 1 else ''} did not fit "
            f"({names_hidden}): widen the terminal, pick them with --columns, "
            "or use --json."
        )


@app.command("show")
def show_run(run_id: RunIdArgument, as_json: JsonOption = False) -> None:
    """Show one run: attributes, params, metrics, tags and artifacts."""
    tracking = service()
    run = resolve_run(tracking, run_id)
    details = run_details(tracking, run)
    if as_json:
        print_json(details)
        return
    render_run(run, details)


@app.command("compare")
def compare_runs(
    run_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN_ID...",
            help="Two or more run ids (or unique prefixes).",
        ),
    ],
    diff_only: Annotated[
        bool,
        typer.Option(
            "--diff-only",
            help="Show only the params and metrics that differ.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare runs side by side: params and metrics, differing values highlighted."""
    if len(run_ids) < 2:
        raise InvalidInput("runs compare needs at least two run ids", field="run_ids")
    tracking = service()
    runs: list[Run] = []
    for text in run_ids:
        run = resolve_run(tracking, text)
        if any(r.run_id == run.run_id for r in runs):
            raise InvalidInput(f"run {run.run_id} is given more than once", field="run_ids")
        runs.append(run)
    render_comparison(runs, diff_only=diff_only, as_json=as_json)


@app.command("delete")
def delete_run(
    run_id: RunIdArgument,
    restore: Annotated[bool, typer.Option("--restore", help="Undo an earlier delete.")] = False,
) -> None:
    """Delete a run (soft: `--restore` brings it back)."""
    tracking = service()
    run = resolve_run(tracking, run_id)
    label = f"run {run.run_id} ({run.run_name})"
    deleted = run.lifecycle_stage is LifecycleStage.DELETED
    if restore:
        if not deleted:
            print_note(f"The {label} is not deleted.")
            return
        tracking.restore_run(run.run_id)
        print_success(f"Restored {label}.")
        return
    if deleted:
        print_note(f"The {label} is already deleted.")
        return
    tracking.delete_run(run.run_id)
    print_success(
        f"Deleted {label}; `loopml runs delete {short_id(run.run_id)} --restore` brings it back."
    )


@app.command("gc")
def gc_runs(
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Seconds without a heartbeat after which a RUNNING run counts as dead "
            "(default: LOOPML_RUN_HEARTBEAT_TIMEOUT, 300).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Mark RUNNING runs whose process died KILLED, and print which."""
    tracking = service()
    killed = [tracking.get_run(run_id) for run_id in tracking.gc_runs(timeout)]
    records = [
        {
            "run_id": r.run_id,
            "run_name": r.run_name,
            "experiment_id": r.experiment_id,
            "status": r.status.value,
            "start_time": r.start_time,
            "end_time": r.end_time,
        }
        for r in killed
    ]
    if as_json:
        print_json(records)
        return
    if not records:
        print_note("No stale runs: every RUNNING run still has a live process.")
        return
    render_table(
        records,
        [
            Column("run_id", "Run ID", style="cyan"),
            Column("run_name", "Name"),
            Column("experiment_id", "Exp", justify="right"),
            Column("start_time", "Start", fmt=lambda v: format_time(v)),
            Column("end_time", "Last seen", fmt=lambda v: format_time(v)),
        ],
        title=f"Marked {len(records)} run{'s' if len(records) != 1 else ''} KILLED",
    )
