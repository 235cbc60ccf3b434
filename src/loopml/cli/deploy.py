"""``loopml deploy``: apply deployment configurations, inspect them, and serve them.

A deployment (A/B variants, a canary with automatic rollback, shadows) is a YAML file;
``apply`` validates it against the registry and stores it as a new revision, ``serve`` runs
the latest revision, and every decision the server takes shows in ``status`` and ``history``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli._common import HostOption, JsonOption, PortOption
from loopml.cli._output import (
    Column,
    emit,
    format_time,
    print_json,
    print_note,
    print_success,
    render_pairs,
    render_table,
)

if TYPE_CHECKING:
    from loopml.serving.deployment import DeploymentConfig
    from loopml.store.base import DeploymentEvent, DeploymentStore

app = typer.Typer(
    name="deploy",
    help="Deployments: A/B variants, canaries with automatic rollback, shadows.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="Deployment name.")]
#: Events shown by ``status``; ``history`` shows them all.
_STATUS_EVENTS = 5


def _store() -> DeploymentStore:
    from loopml.config import load_settings
    from loopml.store.registry import open_deployment_store

    return open_deployment_store(load_settings())


def _config(data: dict[str, Any], name: str) -> DeploymentConfig:
    from loopml.serving.deployment import parse_deployment

    return parse_deployment(data, source=f"deployment {name!r}")


def _versions(config: DeploymentConfig) -> dict[str, int | None]:
    """The version each variant's alias or number names now (None when it no longer exists)."""
    from loopml.errors import LoopmlError
    from loopml.registry import resolve

    versions: dict[str, int | None] = {}
    for plan in config.plans():
        try:
            versions[plan.name] = resolve(plan.spec).version
        except LoopmlError:
            versions[plan.name] = None
    return versions


def _percent(share: Any) -> str:
    return f"{float(share) * 100:.4g}%"


def _event_record(event: DeploymentEvent) -> dict[str, Any]:
    record = event.to_dict()
    del record["id"]
    record["reason"] = event.evidence.get("reason") or event.evidence.get("user") or ""
    return record


def _versions_moved(record: dict[str, Any]) -> str:
    before, after = record.get("from_version"), record.get("to_version")
    if before is None and after is None:
        return "-"
    return f"v{before if before is not None else '-'} → v{after if after is not None else '-'}"


_EVENT_COLUMNS = (
    Column("time", "Time", fmt=lambda v: format_time(v, seconds=True), no_wrap=True),
    Column("revision", "Rev", justify="right"),
    Column("kind", "Event", style="bold", no_wrap=True),
    Column("variant", "Variant"),
    Column("versions", "Versions", no_wrap=True),
    Column("reason", "Reason / by", max_width=70),
)


def _event_rows(events: list[DeploymentEvent]) -> list[dict[str, Any]]:
    rows = [_event_record(e) for e in events]
    for row in rows:
        row["versions"] = _versions_moved(row)
    return rows


@app.command("apply")
def apply(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="The deployment YAML file.", dir_okay=False)
    ],
    as_json: JsonOption = False,
) -> None:
    """Validate FILE against the registry and store it as the deployment's next revision."""
    from loopml.serving.deployment import check_registered, load_deployment
    from loopml.tracking.system import current_user

    config = load_deployment(file)
    versions = check_registered(config)
    revision = _store().apply_deployment(config.name, config.to_dict(), current_user())
    if as_json:
        print_json(
            {
                "name": revision.name,
                "revision": revision.revision,
                "versions": versions,
                "shares": config.shares(),
                "config": revision.config,
            }
        )
        return
    shares = config.shares()
    described = ", ".join(
        f"{plan.name} {plan.role} {_percent(shares[plan.name])} → {plan.spec} "
        f"(v{versions[plan.name]})"
        for plan in config.plans()
    )
    print_success(f"Applied {config.name} revision {revision.revision}: {described}.")
    print_note(f"Serve it with `loopml deploy serve {config.name}`.")


def _canary_text(canary: dict[str, Any]) -> str:
    """One line on the canary's last decision, for ``deploy status``."""
    reason = canary.get("reason") or ""
    if canary["state"] == "none":
        return "-"
    if canary["state"] == "rolled_back":
        return f"rolled back ({reason})"
    if canary["state"] == "promoted":
        return f"promoted: v{canary['version']} took the alias ({reason})"
    since = format_time(canary["time"], seconds=True)
    return f"running: {canary['variant']} v{canary['version']} since {since}"


@app.command("status")
def status(name: NameArgument, as_json: JsonOption = False) -> None:
    """Show a deployment: its configuration, current shares and last events."""
    store = _store()
    stored = store.get_deployment(name)
    config = _config(stored.config, name)
    events = store.list_deployment_events(name)
    from loopml.serving.deployment import canary_state

    shares, state = canary_state(config, events, stored.revision)
    canary = _canary_text(state)
    versions = _versions(config)
    variants = [
        {
            "name": plan.name,
            "role": plan.role,
            "model": plan.spec,
            "version": versions[plan.name],
            "weight": plan.weight,
            "share": shares[plan.name],
        }
        for plan in config.plans()
    ]
    recent = events[-_STATUS_EVENTS:]
    if as_json:
        print_json(
            {
                "name": stored.name,
                "revision": stored.revision,
                "applied_at": stored.applied_at,
                "user": stored.user,
                "variants": variants,
                "canary": canary,
                "config": stored.config,
                "events": [_event_record(e) for e in recent],
            }
        )
        return
    render_pairs(
        [
            ("deployment", f"{stored.name} (revision {stored.revision})"),
            ("model", config.model),
            ("applied", f"{format_time(stored.applied_at)} by {stored.user}"),
            ("sticky key", config.sticky_key or "- (random by weight)"),
            ("on alias move", config.on_alias_move),
            (
                "canary rule",
                f"share {_percent(config.canary.share)}, {config.canary.duration:g}s, "
                f"min {config.canary.min_requests} requests, max error rate "
                f"{config.canary.max_error_rate:g}"
                + (
                    f", max p99 {config.canary.max_p99_latency_ms:g} ms"
                    if config.canary.max_p99_latency_ms
                    else ""
                ),
            ),
            ("canary", canary),
        ],
        title="Deployment",
    )
    render_table(
        variants,
        (
            Column("name", "Variant", style="bold"),
            Column("role", "Role"),
            Column("model", "Model"),
            Column("version", "Version", justify="right"),
            Column("weight", "Weight", justify="right"),
            Column("share", "Share", justify="right", fmt=_percent),
        ),
    )
    render_table(_event_rows(recent), _EVENT_COLUMNS, title="Last events")


@app.command("history")
def history(
    name: NameArgument,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Only the newest N events.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List a deployment's events: revisions applied, canaries, promotions, rollbacks, swaps."""
    store = _store()
    store.get_deployment(name)  # an unknown name is an error, not an empty list
    events = store.list_deployment_events(name, limit=limit)
    if as_json:
        print_json([_event_record(e) for e in events])
        return
    emit(_event_rows(events), _EVENT_COLUMNS, as_json=False)


@app.command("list")
def list_deployments(as_json: JsonOption = False) -> None:
    """List deployments with their latest revision."""
    records = [d.summary() for d in _store().list_deployments()]
    emit(
        records,
        (
            Column("name", "Name", style="bold"),
            Column("revision", "Revision", justify="right"),
            Column("model", "Model"),
            Column("variants", "Variants", justify="right"),
            Column("applied_at", "Applied", fmt=lambda v: format_time(v), no_wrap=True),
            Column("user", "By"),
        ),
        as_json=as_json,
        empty_message="No deployments yet: `loopml deploy apply deployment.yaml` adds one.",
    )


@app.command("serve")
def serve(
    name: NameArgument,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    reload_interval: Annotated[
        float,
        typer.Option(
            "--reload-interval",
            min=0.0,
            help="Seconds between registry checks of the aliases served (hot swap, or a canary "
            "with on_alias_move: canary). 0 turns it off.",
        ),
    ] = 10.0,
    revision: Annotated[
        int | None,
        typer.Option("--revision", min=1, help="Serve this revision instead of the latest."),
    ] = None,
    log_predictions: Annotated[
        bool,
        typer.Option(
            "--log-predictions/--no-log-predictions",
            help="Log every prediction for monitoring and take ground truth on POST /feedback.",
        ),
    ] = True,
) -> None:
    """Serve the stored deployment NAME: POST /predict, GET /health, /ready, /metadata, /metrics."""
    import uvicorn

    from loopml.serving.app import create_serving_app
    from loopml.serving.deployment import check_registered

    stored = _store().get_deployment(name, revision)
    config = _config(stored.config, name)
    check_registered(config)  # a model deleted since apply is one clear error, not a crash
    serving_app = create_serving_app(
        config,
        revision=stored.revision,
        reload_interval=reload_interval or None,
        log_predictions=log_predictions,
    )
    uvicorn.run(serving_app, host=host, port=port)
