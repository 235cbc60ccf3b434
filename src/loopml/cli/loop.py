"""``loopml loop``: continuous-training policies, their controller and their history.

``apply`` stores a policy defined in Python; ``start`` runs the controller that retrains,
gates and rolls out on the policy's triggers (start two for availability: one acts, the
other stands by); ``history`` shows every decision it took and why.
"""

from __future__ import annotations

import logging
import sys
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
from loopml.pipelines.loading import load_object

if TYPE_CHECKING:
    from loopml.loop import LoopEvent, Policy, StoredPolicy

app = typer.Typer(
    name="loop",
    help="Continuous training: policies that retrain, gate and roll out on their own.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="Policy name.")]
_SHOW_EVENTS = 10


def load_policy(reference: str) -> Policy:
    """Import ``package.module:POLICY`` or ``path/to/file.py:POLICY`` and return the policy."""
    from loopml.loop import Policy

    found = load_object(reference, field="policy")
    if not isinstance(found, Policy):
        raise InvalidInput(
            f"{reference!r} is a {type(found).__name__}, not an lm.loop.Policy", field="policy"
        )
    return found


def _trigger_text(trigger: dict[str, Any]) -> str:
    kind = trigger["type"]
    if kind == "cron":
        return f"cron {trigger['cron']}"
    if kind == "new_data":
        return f"new data {trigger.get('dataset') or ''}".strip()
    if kind == "drift":
        return f"drift ≥ {trigger['share']:g}"
    if kind == "degradation":
        return f"{trigger['metric']} drop ≥ {trigger['drop']:g}"
    return str(kind)


def _window_text(window: dict[str, Any]) -> str:
    if window["type"] == "fixed":
        return f"last {window['days']:g} days"
    if window["type"] == "sample":
        by = f" by {window['stratify']}" if window.get("stratify") else ""
        return f"sample of {window['n']}{by}"
    return "growing"


def _rollout_text(rollout: dict[str, Any]) -> str:
    if rollout["type"] == "canary":
        return (
            f"canary {rollout['share'] * 100:.3g}%, {rollout['min_requests']} requests, "
            f"≤ {rollout['max_error_rate']:g} errors"
        )
    return "direct"


def _gate_text(gate: dict[str, Any] | None) -> str:
    if gate is None:
        return "none: every candidate passes"
    from loopml.training import Gate

    return repr(Gate(**gate))


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _policy_record(stored: StoredPolicy, last: LoopEvent | None) -> dict[str, Any]:
    definition = stored.definition
    return {
        "name": stored.name,
        "version": stored.version,
        "model": f"{definition['model']}@{definition['alias']}",
        "triggers": ", ".join(_trigger_text(t) for t in definition["triggers"]),
        "window": _window_text(definition["window"]),
        "rollout": _rollout_text(definition["rollout"]),
        "cooldown": _duration(float(definition["cooldown"])),
        "last_event": None if last is None else f"{last.kind} {format_time(last.time)}",
    }


def _event_record(event: LoopEvent) -> dict[str, Any]:
    from loopml.loop.service import event_summary

    return {**event.to_dict(), "summary": event_summary(event)}


_EVENT_COLUMNS = [
    Column("time", "Time", fmt=lambda v: format_time(v, seconds=True), no_wrap=True),
    Column("kind", "Event", no_wrap=True),
    Column("retrain", "Retrain", style="cyan", no_wrap=True),
    Column("summary", "Details", max_width=90),
]


@app.command("apply")
def apply_command(
    reference: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:POLICY", help="'package.module:policy' or 'path/to/file.py:policy'."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Validate a policy defined in Python and store it (a changed one as a new version)."""
    from loopml.errors import NotFound
    from loopml.loop import service

    policy = load_policy(reference)
    before: int | None = None
    try:
        before = service.get(policy.name).version
    except NotFound:
        before = None
    stored = service.apply(policy)
    if as_json:
        print_json({**stored.to_dict(), "changed": stored.version != before})
        return
    definition = stored.definition
    if stored.version == before:
        print_note(f"Policy {stored.name} is unchanged (version {stored.version}).")
        return
    print_success(
        f"Applied policy {stored.name} version {stored.version}: keeps "
        f"{definition['model']}@{definition['alias']} fresh with {definition['pipeline']} on "
        f"{', '.join(_trigger_text(t) for t in definition['triggers'])}; "
        f"{_rollout_text(definition['rollout'])} rollout."
    )


@app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """List the stored policies with their last decision."""
    from loopml.loop import service

    loop = service.get_service()
    records = []
    for stored in loop.list_policies():
        last = loop.store.list_loop_events(stored.name, limit=1)
        records.append(_policy_record(stored, last[-1] if last else None))
    emit(
        records,
        [
            Column("name", "Name", style="cyan", no_wrap=True),
            Column("version", "Ver", justify="right"),
            Column("model", "Model", no_wrap=True),
            Column("triggers", "Triggers", max_width=40),
            Column("window", "Window"),
            Column("rollout", "Rollout", max_width=30),
            Column("cooldown", "Cooldown", justify="right"),
            Column("last_event", "Last event"),
        ],
        as_json=as_json,
        empty_message="No policies yet: define one with lm.loop.Policy and `loopml loop apply`.",
    )


@app.command("show")
def show_command(name: NameArgument, as_json: JsonOption = False) -> None:
    """Show a policy, its rollout in flight and its last decisions."""
    from loopml.loop import service

    loop = service.get_service()
    stored = loop.get(name)
    state = loop.store.get_loop_state(name)
    events = loop.store.list_loop_events(name, limit=_SHOW_EVENTS)
    if as_json:
        print_json(
            {
                **stored.to_dict(),
                "state": state,
                "events": [_event_record(e) for e in events],
            }
        )
        return
    definition = stored.definition
    rollout = state.get("rollout")
    render_pairs(
        [
            ("policy", f"{stored.name} (version {stored.version})"),
            ("model", f"{definition['model']}@{definition['alias']}"),
            ("pipeline", definition["pipeline"]),
            (
                "data",
                f"{definition['data']} (time {definition['timestamp']}, "
                f"label {definition['label']}"
                f"{', with logged predictions' if definition['include_logged'] else ''})",
            ),
            ("triggers", ", ".join(_trigger_text(t) for t in definition["triggers"])),
            (
                "window",
                f"{_window_text(definition['window'])}, holdout {definition['holdout'] * 100:.3g}%",
            ),
            ("gate", _gate_text(definition["gate"])),
            ("rollout", _rollout_text(definition["rollout"])),
            (
                "limits",
                f"cooldown {_duration(float(definition['cooldown']))}, at most "
                f"{definition['max_retrains_per_day']} retrains a day",
            ),
            (
                "in flight",
                "-"
                if not rollout
                else f"canary v{rollout['baseline']} → v{rollout['candidate']} on deployment "
                f"{rollout['deployment']} (retrain {rollout['retrain']})",
            ),
        ]
    )
    if events:
        render_table([_event_record(e) for e in events], _EVENT_COLUMNS, title="Last events")


@app.command("trigger")
def trigger_command(
    name: NameArgument,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (kept in the history).")
    ] = "manual",
    force: Annotated[
        bool, typer.Option("--force", help="Ignore the cooldown and the daily limit.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Ask the controller to retrain now (the policy's Manual trigger)."""
    from loopml.loop import service

    event_id = service.trigger(name, reason=reason, force=force)
    if as_json:
        print_json({"policy": name, "event_id": event_id, "force": force})
        return
    print_success(
        f"Recorded trigger event {event_id} for policy {name}; the loop controller retrains at "
        "its next pass."
    )


@contextmanager
def _log_to_stderr() -> Iterator[None]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("loopml.loop")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


PollOption = Annotated[
    float, typer.Option("--poll-interval", min=0.05, help="Seconds between passes.")
]
LeaseOption = Annotated[
    float,
    typer.Option(
        "--lease-seconds", min=1.0, help="How soon a standby takes over from a dead controller."
    ),
]
PolicyOption = Annotated[
    list[str] | None,
    typer.Option("--policy", help="Only run this policy (repeatable); all by default."),
]


@app.command("start")
def start_command(
    poll_interval: PollOption = 5.0,
    lease_seconds: LeaseOption = 120.0,
    policy: PolicyOption = None,
) -> None:
    """Run the loop controller until SIGTERM or Ctrl-C (one of several acts at a time)."""
    from loopml.config import load_settings
    from loopml.loop import Controller

    uri = load_settings().resolved_store_uri
    controller = Controller(poll_interval, lease_seconds=lease_seconds, policies=policy)
    print_note(
        f"Loop controller {controller.owner} on {mask_uri(uri)}, polling every "
        f"{poll_interval:g}s; Ctrl-C stops it.",
        err=True,
    )
    with _log_to_stderr():
        controller.run_forever()


@app.command("run-once")
def run_once_command(policy: PolicyOption = None, as_json: JsonOption = False) -> None:
    """Handle every pending trigger and rollout once, then exit."""
    from loopml.loop import Controller

    controller = Controller(policies=policy)
    with _log_to_stderr():
        try:
            events = controller.run_once()
            active = controller.is_active
        finally:
            controller.close()
    records = [_event_record(e) for e in events]
    if as_json:
        print_json({"active": active, "events": records})
    elif not active:
        print_note("Another loop controller holds the lease: nothing was done.")
    elif not events:
        print_note("Nothing to do: no trigger fired and no rollout is in flight.")
    else:
        render_table(records, [Column("policy", "Policy", style="cyan"), *_EVENT_COLUMNS])


@app.command("history")
def history_command(
    name: NameArgument,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=10_000, help="Most recent events shown.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the decisions of a policy with their evidence (``--json`` for all of it)."""
    from loopml.loop import service

    events = service.history(name, limit=limit)
    emit(
        [_event_record(e) for e in events],
        _EVENT_COLUMNS,
        as_json=as_json,
        empty_message=f"Policy {name} has no events yet.",
    )
