"""``loopml experiments``: list, create, delete and restore experiments."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from loopml.cli._common import JsonOption, service
from loopml.cli._output import Column, emit, format_time, print_json, print_note, print_success
from loopml.entities.tracking import Experiment, LifecycleStage

app = typer.Typer(
    name="experiments",
    help="Create, list, delete and restore experiments.",
    no_args_is_help=True,
)


def _stage(value: Any) -> Text:
    return Text(str(value), style="" if value == LifecycleStage.ACTIVE.value else "yellow")


def _tags(value: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((value or {}).items())) or "-"


_COLUMNS = (
    Column("experiment_id", "ID", justify="right"),
    Column("name", "Name", style="bold", max_width=40),
    Column("lifecycle_stage", "Stage", fmt=_stage),
    Column("creation_time", "Created", fmt=lambda v: format_time(v)),
    Column("last_update_time", "Updated", fmt=lambda v: format_time(v)),
    Column("tags", "Tags", fmt=_tags, max_width=40),
)


@app.command("list")
def list_experiments(
    include_deleted: Annotated[
        bool, typer.Option("--all", help="Include deleted experiments.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List experiments, oldest first."""
    experiments = service().list_experiments(include_deleted=include_deleted)
    records = [e.to_dict() for e in experiments]
    columns = (
        _COLUMNS if include_deleted else tuple(c for c in _COLUMNS if c.key != "lifecycle_stage")
    )
    emit(
        records,
        columns,
        as_json=as_json,
        empty_message="No experiments yet: `loopml experiments create NAME` makes one.",
    )


@app.command("create")
def create_experiment(
    name: Annotated[str, typer.Argument(help="Name of the new experiment.")],
    as_json: JsonOption = False,
) -> None:
    """Create an experiment."""
    tracking = service()
    experiment_id = tracking.create_experiment(name)
    if as_json:
        print_json(tracking.get_experiment(experiment_id).to_dict())
        return
    print_success(f"Created experiment {name!r} with id {experiment_id}.")


def _resolve(name_or_id: str) -> Experiment:
    return service().resolve_experiment(name_or_id)


@app.command("delete")
def delete_experiment(
    name_or_id: Annotated[
        str, typer.Argument(metavar="ID_OR_NAME", help="Id or name of the experiment.")
    ],
) -> None:
    """Delete an experiment (soft: its runs are hidden, `restore` brings it back)."""
    experiment = _resolve(name_or_id)
    if experiment.lifecycle_stage is LifecycleStage.DELETED:
        print_note(
            f"Experiment {experiment.name!r} (id {experiment.experiment_id}) is already deleted."
        )
        return
    service().delete_experiment(experiment.experiment_id)
    print_success(
        f"Deleted experiment {experiment.name!r} (id {experiment.experiment_id}); "
        f"`loopml experiments restore {experiment.experiment_id}` brings it back."
    )


@app.command("restore")
def restore_experiment(
    experiment_id: Annotated[
        str, typer.Argument(metavar="ID", help="Id (or name) of a deleted experiment.")
    ],
) -> None:
    """Restore a deleted experiment and its runs."""
    experiment = _resolve(experiment_id)
    if experiment.lifecycle_stage is LifecycleStage.ACTIVE:
        print_note(
            f"Experiment {experiment.name!r} (id {experiment.experiment_id}) is not deleted."
        )
        return
    service().restore_experiment(experiment.experiment_id)
    print_success(f"Restored experiment {experiment.name!r} (id {experiment.experiment_id}).")
