"""``loopml artifacts``: list a run's files and download them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli._common import JsonOption, RunIdArgument, resolve_run, service
from loopml.cli._output import (
    Column,
    emit,
    format_size,
    print_note,
    print_success,
    short_id,
)
from loopml.errors import NotFound

app = typer.Typer(
    name="artifacts",
    help="List and download the files logged by runs.",
    no_args_is_help=True,
)


@app.command("list")
def list_artifacts(
    run_id: RunIdArgument,
    path: Annotated[
        str,
        typer.Argument(
            help="Folder or file inside the run (default: every file).",
        ),
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """List a run's files (recursively) under PATH."""
    tracking = service()
    run = resolve_run(tracking, run_id)
    entries = tracking.list_artifacts(run.run_id, path)
    if not entries and path.strip("./"):
        raise NotFound(f"run {run.run_id} has no artifact {path!r}", field="path")
    records = [entry.to_dict() for entry in entries]
    if as_json:
        emit(records, (), as_json=True)
        return
    if not records:
        print_note(f"Run {run.run_id} has no artifacts.")
        return
    total = sum(entry.size for entry in entries)
    emit(
        records,
        (
            Column("path", "Path", style="bold"),
            Column("size", "Size", justify="right", fmt=lambda v: format_size(v)),
            Column("sha256", "SHA-256", style="dim", fmt=lambda v: str(v)[:12]),
        ),
        as_json=False,
        title=f"Artifacts of run {short_id(run.run_id)} ({len(records)} "
        f"file{'s' if len(records) != 1 else ''}, {format_size(total)})",
    )


@app.command("get")
def get_artifacts(
    run_id: RunIdArgument,
    path: Annotated[str, typer.Argument(help="File or folder inside the run ('.' for all).")],
    dest: Annotated[
        Path,
        typer.Option(
            "--dest",
            "-d",
            metavar="DIR",
            help="Local folder to download into.",
            file_okay=False,
        ),
    ] = Path("."),
) -> None:
    """Download a file or folder of a run into DIR, keeping its path."""
    tracking = service()
    run = resolve_run(tracking, run_id)
    # Listing first checks the path (traversal attempts fail here) and gives the totals.
    entries = tracking.list_artifacts(run.run_id, path)
    target = tracking.download_artifacts(run.run_id, path, dest)
    total = sum(entry.size for entry in entries)
    print_success(
        f"Downloaded {len(entries)} file{'s' if len(entries) != 1 else ''} "
        f"({format_size(total)}) to {target.resolve()}"
    )
