"""What several command groups share: the service, run ids given as prefixes, option types."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.entities.tracking import Experiment, Run
from loopml.errors import InvalidInput, NotFound
from loopml.tracking.service import TrackingService

#: Shortest run id prefix accepted, so that a typo cannot silently pick an unrelated run.
MIN_PREFIX_LENGTH = 6
FULL_RUN_ID_LENGTH = 32

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunIdArgument = Annotated[
    str,
    typer.Argument(
        metavar="RUN_ID",
        help=f"Run id, or a unique prefix of at least {MIN_PREFIX_LENGTH} characters.",
    ),
]
ModelSpecArgument = Annotated[
    str,
    typer.Argument(
        metavar="SPEC", help="The model: name@alias, name/3, models:/... or runs:/<id>/<path>."
    ),
]
#: Where a server listens; each command gives its own default (``= "127.0.0.1"``, ``= 8080``).
HostOption = Annotated[
    str,
    typer.Option("--host", help="Interface to listen on; 0.0.0.0 listens on every interface."),
]
PortOption = Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port.")]


def service() -> TrackingService:
    """Return the tracking service for the current settings (local store or REST server)."""
    from loopml.tracking.fluent import get_service

    return get_service()


def resolve_run(tracking: TrackingService, run_id: str) -> Run:
    """Return the run named by a full id or by a unique prefix (as tables show them).

    Deleted runs are found too, so that they can be shown and restored.

    Parameters
    ----------
    tracking : TrackingService
        The service to ask.
    run_id : str
        A full run id, or at least 6 leading characters of one.

    Raises
    ------
    NotFound
        When no run has this id or prefix.
    InvalidInput
        When the prefix matches several runs.
    """
    text = run_id.strip()
    try:
        return tracking.get_run(text)
    except NotFound:
        if not (len(text) < FULL_RUN_ID_LENGTH and text.isalnum()):
            raise
        if len(text) < MIN_PREFIX_LENGTH:
            raise NotFound(
                f"run {run_id!r} does not exist (a run id prefix needs at least "
                f"{MIN_PREFIX_LENGTH} characters)",
                field="run_id",
            ) from None
    experiment_ids = [e.experiment_id for e in tracking.list_experiments(include_deleted=True)]
    page = tracking.search_runs(
        experiment_ids,
        f"attributes.run_id LIKE '{text.lower()}%'",
        max_results=2,
        include_deleted=True,
    )
    if not page.runs:
        raise NotFound(f"run {run_id!r} does not exist", field="run_id")
    if len(page.runs) > 1:
        matches = ", ".join(r.run_id for r in page.runs)
        raise InvalidInput(
            f"run id prefix {run_id!r} matches more than one run ({matches}); give more characters",
            field="run_id",
        )
    return page.runs[0]


def experiments_by_id(tracking: TrackingService) -> dict[str, Experiment]:
    """Every experiment (deleted ones too) by id."""
    return {e.experiment_id: e for e in tracking.list_experiments(include_deleted=True)}


def parse_tags(tags: list[str]) -> dict[str, str]:
    """Turn repeated ``--tag KEY=VALUE`` options into a mapping."""
    parsed = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise InvalidInput(f"tag {tag!r} must look like KEY=VALUE", field="tag")
        parsed[key] = value
    return parsed
