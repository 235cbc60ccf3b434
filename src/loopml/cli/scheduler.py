"""``loopml scheduler``, ``loopml schedule`` and ``loopml trigger``: run pipelines unattended.

``loopml schedule`` and ``loopml trigger`` record what should run and when; nothing runs until
``loopml scheduler`` (a long-running process; start two for availability) picks it up.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli._common import JsonOption
from loopml.cli._output import (
    Column,
    emit,
    format_time,
    mask_uri,
    print_json,
    print_note,
    print_success,
    render_pairs,
    render_table,
)
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.pipelines.triggers import TriggerService

scheduler_app = typer.Typer(name="scheduler")
schedule_app = typer.Typer(
    name="schedule", help="Run pipelines on cron schedules.", no_args_is_help=True
)
trigger_app = typer.Typer(
    name="trigger",
    help="Run pipelines on events: new dataset versions, drift, your own.",
    no_args_is_help=True,
)

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="KEY=VALUE",
        help="Pipeline parameter, repeatable; VALUE is read as JSON when it can be (10, true).",
    ),
]


def _service() -> TriggerService:
    from loopml.pipelines.triggers import get_service

    return get_service()


def parse_pairs(pairs: list[str] | None, field: str) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` options into a dict, reading each value as JSON when possible."""
    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{field} {pair!r} must look like KEY=VALUE", field=field)
        try:
            parsed[key.strip()] = json.loads(text)
        except ValueError:
            parsed[key.strip()] = text
    return parsed


def _pairs_text(value: Any) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted((value or {}).items())) or "-"


# -- loopml scheduler -----------------------------------------------------------------------
@contextmanager
def _log_to_stderr() -> Iterator[None]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("loopml.pipelines")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@scheduler_app.callback(invoke_without_command=True)
def run_scheduler(
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.05, help="Seconds between passes.")
    ] = 1.0,
    lease_seconds: Annotated[
        float,
        typer.Option(
            "--lease-seconds", min=1.0, help="How soon a standby takes over from a dead scheduler."
        ),
    ] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Fire due schedules and triggers, each exactly once, until SIGTERM or Ctrl-C.

    Several schedulers may run against one store: one is active, the others stand by.
    """
    from loopml.config import load_settings
    from loopml.pipelines.scheduler import Scheduler

    uri = load_settings().resolved_store_uri
    scheduler = Scheduler(uri, poll_interval=poll_interval, lease_seconds=lease_seconds)
    with _log_to_stderr():
        if not once:
            print_note(
                f"Scheduler {scheduler.owner} on {mask_uri(uri)}, polling every "
                f"{poll_interval:g}s; Ctrl-C stops it.",
                err=True,
            )
            scheduler.run_forever()
            return
        try:
            started = scheduler.tick()
            active = scheduler.is_active
        finally:
            scheduler.close()
    if as_json:
        print_json({"active": active, "pipeline_run_ids": started})
    elif not active:
        print_note("Another scheduler holds the lease: nothing was fired.")
    elif started:
        print_success(f"Started {len(started)} pipeline run(s): {', '.join(started)}.")
    else:
        print_note("Nothing was due.")


# -- loopml schedule ------------------------------------------------------------------------
def _next_fire(record: dict[str, Any]) -> int | None:
    from loopml.pipelines.triggers import next_fire_time

    if not record["enabled"]:
        return None
    after = max(record["last_fire_time"] or record["created_time"], int(time.time() * 1000))
    return int(next_fire_time(record["cron"], after / 1000) * 1000)


def _schedule_record(schedule: Any) -> dict[str, Any]:
    record: dict[str, Any] = schedule.to_dict()
    record["next_fire_time"] = _next_fire(record)
    return record


_SCHEDULE_COLUMNS = (
    Column("name", "Name", style="bold", max_width=30),
    Column("pipeline_ref", "Pipeline", max_width=40),
    Column("cron", "Cron (UTC)", no_wrap=True),
    Column("catchup", "Catchup", fmt=lambda v: "yes" if v else "no"),
    Column("enabled", "Enabled", fmt=lambda v: "yes" if v else "no"),
    Column("last_fire_time", "Last fire", fmt=lambda v: format_time(v)),
    Column("next_fire_time", "Next fire", fmt=lambda v: format_time(v)),
)


_FIRE_COLUMNS = (
    Column("fire_time", "For", fmt=lambda v: format_time(v)),
    Column("fired_at", "Fired", fmt=lambda v: format_time(v, seconds=True)),
    Column("pipeline_run_id", "Pipeline run", no_wrap=True),
    Column("owner", "Scheduler", max_width=40),
)


@schedule_app.command("create")
def create_schedule(
    name: Annotated[str, typer.Argument(help="Unique schedule name.")],
    pipeline_ref: Annotated[
        str, typer.Argument(metavar="PIPELINE_REF", help="package.module:pipeline or file.py:attr")
    ],
    cron: Annotated[str, typer.Option("--cron", help='Cron expression (UTC), e.g. "0 3 * * *".')],
    param: ParamOption = None,
    catchup: Annotated[
        bool, typer.Option("--catchup", help="After downtime, run every missed time.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline on a cron schedule."""
    schedule = _service().schedule(name, pipeline_ref, cron, parse_pairs(param, "param"), catchup)
    record = _schedule_record(schedule)
    if as_json:
        print_json(record)
        return
    print_success(
        f"Created schedule {name!r}: {pipeline_ref} at {schedule.cron!r} (UTC), next at "
        f"{format_time(record['next_fire_time'])}. `loopml scheduler` fires it."
    )


@schedule_app.command("list")
def list_schedules(as_json: JsonOption = False) -> None:
    """List schedules with their last and next fire times."""
    records = [_schedule_record(s) for s in _service().store.list_schedules()]
    emit(
        records,
        _SCHEDULE_COLUMNS,
        as_json=as_json,
        empty_message="No schedules yet: `loopml schedule create NAME REF --cron ...` adds one.",
    )


@schedule_app.command("show")
def show_schedule(name: str, as_json: JsonOption = False) -> None:
    """Show a schedule and its recent firings."""
    service = _service()
    record = _schedule_record(service.store.get_schedule(name))
    fires = service.store.list_schedule_fires(record["id"], limit=20)
    if as_json:
        print_json({**record, "fires": fires})
        return
    pairs = [(c.header, c.cell(record)) for c in _SCHEDULE_COLUMNS]
    render_pairs([*pairs, ("Params", _pairs_text(record["params"]))])
    if fires:
        render_table(fires, _FIRE_COLUMNS, title="Recent firings")


@schedule_app.command("delete")
def delete_schedule(name: str) -> None:
    """Delete a schedule."""
    _service().store.delete_schedule(name)
    print_success(f"Deleted schedule {name!r}.")


@schedule_app.command("enable")
def enable_schedule(name: str) -> None:
    """Enable a schedule."""
    _service().set_schedule_enabled(name, True)
    print_success(f"Enabled schedule {name!r}.")


@schedule_app.command("disable")
def disable_schedule(name: str) -> None:
    """Disable a schedule: it does not fire until enabled again."""
    _service().set_schedule_enabled(name, False)
    print_success(f"Disabled schedule {name!r}.")


# -- loopml trigger -------------------------------------------------------------------------
_TRIGGER_COLUMNS = (
    Column("name", "Name", style="bold", max_width=30),
    Column("pipeline_ref", "Pipeline", max_width=40),
    Column("event_kind", "On event", no_wrap=True),
    Column("match", "Match", fmt=_pairs_text, max_width=40),
    Column("enabled", "Enabled", fmt=lambda v: "yes" if v else "no"),
    Column("last_event_id", "Last event", justify="right", fmt=lambda v: str(v) if v else "-"),
)


@trigger_app.command("create")
def create_trigger(
    name: Annotated[str, typer.Argument(help="Unique trigger name.")],
    pipeline_ref: Annotated[
        str, typer.Argument(metavar="PIPELINE_REF", help="package.module:pipeline or file.py:attr")
    ],
    on_dataset: Annotated[
        str | None,
        typer.Option("--on-dataset", metavar="NAME", help="Run on each new version of NAME."),
    ] = None,
    on_event: Annotated[
        str | None, typer.Option("--on-event", metavar="KIND", help="Run on events of KIND.")
    ] = None,
    match: Annotated[
        list[str] | None,
        typer.Option("--match", metavar="KEY=VALUE", help="Payload item the event must have."),
    ] = None,
    param: ParamOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline once per new dataset version (--on-dataset) or event (--on-event)."""
    params = parse_pairs(param, "param")
    if (on_dataset is None) == (on_event is None):
        raise InvalidInput("give exactly one of --on-dataset NAME and --on-event KIND", field="on")
    service = _service()
    if on_event is not None:
        trigger = service.on_event(
            name, pipeline_ref, on_event, parse_pairs(match, "match"), params
        )
        what = f"each {on_event!r} event"
        if trigger.match:
            what += f" matching {_pairs_text(trigger.match)}"
    elif match:
        raise InvalidInput("--match goes with --on-event, not --on-dataset", field="match")
    else:
        trigger = service.on_new_dataset(name, pipeline_ref, str(on_dataset), params)
        what = f"each new version of dataset {on_dataset!r}"
    if as_json:
        print_json(trigger.to_dict())
        return
    print_success(f"Created trigger {name!r}: {pipeline_ref} runs on {what}.")


@trigger_app.command("list")
def list_triggers(as_json: JsonOption = False) -> None:
    """List triggers."""
    records = [t.to_dict() for t in _service().store.list_triggers()]
    emit(
        records,
        _TRIGGER_COLUMNS,
        as_json=as_json,
        empty_message="No triggers yet: `loopml trigger create NAME REF --on-dataset DATA`.",
    )


@trigger_app.command("show")
def show_trigger(name: str, as_json: JsonOption = False) -> None:
    """Show a trigger and its recent firings."""
    store = _service().store
    record = store.get_trigger(name).to_dict()
    fires = store.list_trigger_fires(record["id"], limit=20)
    if as_json:
        print_json({**record, "fires": fires})
        return
    pairs = [(c.header, c.cell(record)) for c in _TRIGGER_COLUMNS]
    render_pairs([*pairs, ("Params", _pairs_text(record["params"]))])
    if fires:
        columns = (Column("event_id", "Event", justify="right"), *_FIRE_COLUMNS[1:])
        render_table(fires, columns, title="Recent firings")


@trigger_app.command("delete")
def delete_trigger(name: str) -> None:
    """Delete a trigger."""
    _service().store.delete_trigger(name)
    print_success(f"Deleted trigger {name!r}.")


@trigger_app.command("fire")
def fire_event(
    kind: Annotated[str, typer.Argument(help="Event kind: drift, degradation, your own...")],
    payload: Annotated[
        str | None, typer.Option("--payload", metavar="JSON", help="A JSON object of details.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record an event; matching triggers run at the scheduler's next pass."""
    try:
        data = None if payload is None else json.loads(payload)
    except ValueError as exc:
        raise InvalidInput(f"--payload is not valid JSON: {exc}", field="payload") from exc
    event = _service().fire(kind, data)
    if as_json:
        print_json(event.to_dict())
        return
    print_success(f"Recorded {kind!r} event {event.id}.")


@trigger_app.command("events")
def list_events(
    kind: Annotated[str | None, typer.Option("--kind", help="Only events of KIND.")] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="Only events after this id.")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List recorded events, oldest first."""
    events = _service().store.list_events(after_id=after, kind=kind, limit=limit)
    emit(
        [e.to_dict() for e in events],
        (
            Column("id", "Id", justify="right"),
            Column("kind", "Kind", style="bold"),
            Column("created_time", "When", fmt=lambda v: format_time(v, seconds=True)),
            Column("payload", "Payload", fmt=lambda v: json.dumps(v, sort_keys=True)),
        ),
        as_json=as_json,
        empty_message="No events yet.",
    )
