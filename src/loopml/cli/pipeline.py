"""``loopml pipeline``: run pipelines and look at their runs, steps and logs."""

from __future__ import annotations

import enum
import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text
from rich.tree import Tree

from loopml.cli._common import JsonOption
from loopml.cli._output import (
    Column,
    emit,
    format_age,
    format_duration,
    format_time,
    print_json,
    print_note,
    short_id,
    stdout_console,
)
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.pipelines.dsl import Pipeline
    from loopml.pipelines.service import PipelineService

app = typer.Typer(
    name="pipeline",
    help="Run pipelines and show their runs, steps, cache hits and logs.",
    no_args_is_help=True,
)

#: Exit code of a pipeline run that ended FAILED.
EXIT_RUN_FAILED = 1

PIPELINE_STATUS_STYLES = {"RUNNING": "bold blue", "COMPLETED": "green", "FAILED": "bold red"}
STEP_STATUS_STYLES = {
    "PENDING": "dim",
    "RUNNING": "bold blue",
    "COMPLETED": "green",
    "CACHED": "cyan",
    "FAILED": "bold red",
    "SKIPPED": "yellow",
}
_LONG_ID = re.compile(r"\b([0-9a-f]{8})[0-9a-f]{24}\b")


class ExecutorChoice(str, enum.Enum):
    """Where ``pipeline run`` runs the steps."""

    inprocess = "inprocess"
    process = "process"
    dask = "dask"


def _service() -> PipelineService:
    from loopml.pipelines.service import get_pipeline_service

    return get_pipeline_service()


def _status(value: Any, styles: dict[str, str]) -> Text:
    return Text(str(value), style=styles.get(str(value), ""))


def _params(value: Any) -> str:
    items = (value or {}).items()
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(items)) or "-"


def _shorten_ids(text: str) -> str:
    """Show 32-character ids as the 8-character prefixes the CLI accepts back."""
    return _LONG_ID.sub(r"\1", text)


# -- list and runs -------------------------------------------------------------------------
@app.command("list")
def list_pipelines(as_json: JsonOption = False) -> None:
    """List pipelines that have runs, with their last run."""
    emit(
        _service().list_pipelines(),
        (
            Column("pipeline_name", "Pipeline", style="bold"),
            Column("runs", "Runs", justify="right"),
            Column("last_run_id", "Last run", fmt=lambda v: short_id(str(v)), no_wrap=True),
            Column("last_status", "Status", fmt=lambda v: _status(v, PIPELINE_STATUS_STYLES)),
            Column("last_start_time", "Started", fmt=lambda v: format_age(v), no_wrap=True),
            Column("pipeline_version", "Version", fmt=lambda v: str(v)[:12], no_wrap=True),
        ),
        as_json=as_json,
        empty_message="No pipeline runs yet: `loopml pipeline run module:pipeline` starts one.",
    )


@app.command("runs")
def list_runs(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max", "-n", min=1, max=10_000, help="Runs to show.")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """List pipeline runs, newest first."""
    runs = _service().list_runs(pipeline, limit=max_results)
    records = [{**r.to_dict(), "duration": (r.start_time, r.end_time)} for r in runs]
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    emit(
        records,
        (
            Column("id", "Run", fmt=lambda v: short_id(str(v)), no_wrap=True),
            Column("pipeline_name", "Pipeline", style="bold", max_width=30),
            Column(
                "status",
                "Status",
                fmt=lambda v: _status(v, PIPELINE_STATUS_STYLES),
                no_wrap=True,
            ),
            Column("start_time", "Started", fmt=lambda v: format_age(v), no_wrap=True),
            Column(
                "duration",
                "Duration",
                justify="right",
                fmt=lambda v: format_duration(*v),
                no_wrap=True,
            ),
            Column("trigger", "Trigger", max_width=24),
            Column("params", "Params", fmt=_params, max_width=50),
        ),
        as_json=False,
        empty_message=(
            f"No runs of pipeline {pipeline!r}." if pipeline else "No pipeline runs yet."
        ),
    )


# -- show ----------------------------------------------------------------------------------
def _step_label(step: dict[str, Any], primary: str | None, position: dict[str, int]) -> Text:
    label = Text(step["step_name"], style="bold")
    label.append("  ")
    label.append_text(_status(step["status"], STEP_STATUS_STYLES))
    reason = _shorten_ids(step["cache_reason"] or "")
    if step["cache_hit"]:
        label.append("  cache hit", style="bold cyan")
        reason = reason.removeprefix("cache hit: ")
    elif step["start_time"] is not None:
        label.append(f"  {format_duration(step['start_time'], step['end_time'])}")
    if step["attempts"] > 1:
        label.append(f"  {step['attempts']} attempts", style="yellow")
    others = sorted((u for u in step["upstream"] if u != primary), key=lambda u: position.get(u, 0))
    if others:
        label.append(f"  (also after {', '.join(others)})", style="dim")
    if reason:
        label.append(f"\n{reason}", style="dim")
    if step["status"] == "FAILED" and step["error"]:
        first = step["error"].strip().splitlines()[0] if step["error"].strip() else ""
        label.append(f"\n{first}", style="red")
    return label


def render_tree(tree: dict[str, Any]) -> Tree:
    """Build the rich tree of a run: each step under the last of its upstream steps.

    Parameters
    ----------
    tree : dict
        :meth:`PipelineService.tree` output.

    Returns
    -------
    rich.tree.Tree
        The run as the root, steps as nodes; a step that reads from several steps hangs
        under the one that comes last and names the others.
    """
    run = tree["run"]
    title = Text("pipeline ", style="dim")
    title.append(run["pipeline_name"], style="bold")
    title.append(f"  run {short_id(run['id'])}  ")
    title.append_text(_status(run["status"], PIPELINE_STATUS_STYLES))
    title.append(f"  {format_duration(run['start_time'], run['end_time'])}")
    title.append(
        f"  {run['executor']}, trigger {run['trigger']}, {format_time(run['start_time'])}",
        style="dim",
    )
    if run["params"]:
        title.append(f"\nparams: {_params(run['params'])}", style="dim")
    root = Tree(title, guide_style="dim")
    position = {step["step_name"]: index for index, step in enumerate(tree["steps"])}
    nodes: dict[str, Tree] = {}
    for step in tree["steps"]:
        upstream = [u for u in step["upstream"] if u in nodes]
        primary = max(upstream, key=position.__getitem__) if upstream else None
        parent = nodes[primary] if primary is not None else root
        nodes[step["step_name"]] = parent.add(_step_label(step, primary, position))
    return root


def _summary(tree: dict[str, Any]) -> str:
    summary = tree["summary"]
    counts = ", ".join(f"{n} {status.lower()}" for status, n in summary["by_status"].items())
    line = f"{summary['steps']} steps: {counts or 'none recorded'}"
    error = (tree["run"]["error"] or "").strip()
    if error and not summary["by_status"].get("FAILED"):
        # Failed steps show their own errors; otherwise say why the run stopped.
        line += f"\n{_shorten_ids(error.splitlines()[0])}"
    return line


def print_tree(tree: dict[str, Any]) -> None:
    """Print a run's tree and a one-line summary on stdout."""
    console = stdout_console()
    console.print(render_tree(tree))
    print_note(_summary(tree))


@app.command("show")
def show(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID", help="Pipeline run id, or a unique prefix of 8+ characters."
        ),
    ],
    logs: Annotated[
        str | None,
        typer.Option("--logs", metavar="STEP", help="Print what this step printed instead."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run as a tree of steps: status, duration, cache hits and why, errors."""
    service = _service()
    if logs is not None:
        text = service.step_logs(run_id, logs)
        if as_json:
            print_json({"run_id": service.get_run(run_id).id, "step": logs, "logs": text})
        elif text:
            typer.echo(text, nl=not text.endswith("\n"))
        else:
            print_note(f"Step {logs!r} printed nothing.", err=True)
        return
    tree = service.tree(run_id)
    if as_json:
        print_json(tree)
        return
    print_tree(tree)


# -- run -----------------------------------------------------------------------------------
def parse_params(pairs: list[str]) -> dict[str, tuple[Any, str]]:
    """Split ``NAME=VALUE`` pairs into ``{name: (value, text)}``.

    ``value`` is the JSON reading of the text when it is valid JSON (``3``, ``0.5``,
    ``true``, ``[1, 2]``, ``"x"``), else the text itself.

    Raises
    ------
    InvalidInput
        When a pair has no ``=`` or no name, or a name is given twice.
    """
    parsed: dict[str, tuple[Any, str]] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidInput(f"--param {pair!r} must look like NAME=VALUE", field="param")
        if name in parsed:
            raise InvalidInput(f"--param {name} is given twice", field=name)
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        parsed[name] = (value, text)
    return parsed


def choose_params(pipeline: Pipeline, parsed: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    """Pick, per parameter, the JSON reading or the raw text: whichever the signature takes.

    ``--param name=007`` stays the string ``"007"`` for a ``str`` parameter, while
    ``--param n=7`` becomes the integer 7 for an ``int`` one.

    Raises
    ------
    InvalidInput
        Naming the first parameter that neither reading satisfies.
    """
    values = {name: value for name, (value, _) in parsed.items()}
    for _ in range(len(values) + 1):
        try:
            pipeline.validate_params(values)
        except InvalidInput as exc:
            field = exc.field
            if field not in parsed or values[field] == parsed[field][1]:
                raise
            values[field] = parsed[field][1]
            continue
        return values
    raise AssertionError("unreachable")  # pragma: no cover


@app.command("run")
def run(
    ref: Annotated[
        str,
        typer.Argument(metavar="REF", help="package.module:pipeline or path/to/file.py:pipeline."),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="A pipeline parameter (JSON when it parses, else text); repeatable.",
        ),
    ] = None,
    executor: Annotated[
        ExecutorChoice, typer.Option(help="Where the steps run.")
    ] = ExecutorChoice.inprocess,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step again, ignoring the cache.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline and print its tree; exit 1 when the run fails."""
    from loopml.pipelines.runner import load_pipeline

    pipeline = load_pipeline(ref)
    values = choose_params(pipeline, parse_params(param or []))
    print_note(f"Running pipeline {pipeline.name} ({executor.value} executor)...", err=True)
    result = pipeline.run(values, executor=executor.value, cache=not no_cache, trigger="cli")
    tree = _service().tree(result.run.id)
    if as_json:
        print_json(tree)
    else:
        print_tree(tree)
    if not result.succeeded:
        raise typer.Exit(code=EXIT_RUN_FAILED)
