"""``loopml models``: registered models, their versions, aliases, audit trail and model cards.

Every change (register, alias, archive, restore, tag) is recorded in the model's audit trail
under the operating-system user running the command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from loopml.cli._common import JsonOption, parse_tags
from loopml.cli._output import (
    Column,
    emit,
    format_time,
    format_value,
    print_json,
    print_success,
    render_pairs,
    render_table,
    short_id,
)

if TYPE_CHECKING:
    from loopml.entities.registry import ModelVersion
    from loopml.registry.service import RegistryService

app = typer.Typer(
    name="models",
    help="Registered models: versions, aliases, audit trail and model cards.",
    no_args_is_help=True,
)
alias_app = typer.Typer(
    name="alias",
    help="Point aliases (champion, challenger, ...) at versions, or remove them.",
    no_args_is_help=True,
)
app.add_typer(alias_app)

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="Registered model name.")]
VersionArgument = Annotated[int, typer.Argument(metavar="VERSION", min=1, help="Version number.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")]
#: Metrics shown inline in the versions table; ``version`` and ``--json`` show them all.
_INLINE_METRICS = 3


def _service() -> RegistryService:
    from loopml.registry import get_service

    return get_service()


def _status(status: Any) -> Text:
    return Text(str(status), style="green" if status == "READY" else "dim")


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias} → v{version}" for alias, version in sorted(aliases.items())) or "-"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"


def _inline_metrics(metrics: dict[str, Any]) -> str:
    items = sorted(metrics.items())
    text = ", ".join(f"{k}={format_value(v)}" for k, v in items[:_INLINE_METRICS])
    if len(items) > _INLINE_METRICS:
        text += f", +{len(items) - _INLINE_METRICS}"
    return text


_VERSION_COLUMNS = (
    Column("version", "Version", justify="right", style="bold", no_wrap=True),
    Column("status", "Status", fmt=_status, no_wrap=True),
    Column("aliases", "Aliases", fmt=lambda v: ", ".join(v) or "-"),
    Column("flavor", "Flavor"),
    Column("run_id", "Run", fmt=lambda v: short_id(str(v)), no_wrap=True),
    Column("metrics", "Metrics", fmt=_inline_metrics, max_width=48),
    Column("created_time", "Registered", fmt=lambda v: format_time(v), no_wrap=True),
    Column("user", "By"),
)


@app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """List registered models with their latest version and aliases."""
    records = [m.to_dict() for m in _service().list_models()]
    emit(
        records,
        (
            Column("name", "Name", style="bold"),
            Column("latest_version", "Latest", justify="right"),
            Column("aliases", "Aliases", fmt=_aliases),
            Column("last_update_time", "Updated", fmt=lambda v: format_time(v), no_wrap=True),
            Column("description", "Description", max_width=50),
        ),
        as_json=as_json,
        empty_message="No registered models yet: `loopml models register RUNS_URI NAME` adds one.",
    )


@app.command("show")
def show(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME[/VERSION|@ALIAS]",
            help="A model name, or one version of it: churn/3, churn@champion.",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show a model (aliases, tags, latest version), or one version of it."""
    service = _service()
    if "/" in name or "@" in name:
        _show_version(service.resolve(name), as_json=as_json)
        return
    model = service.get_model(name)
    latest = (
        service.get_version(name, model.latest_version)
        if model.latest_version is not None
        else None
    )
    if as_json:
        print_json({**model.to_dict(), "latest": latest.to_dict() if latest else None})
        return
    render_pairs(
        [
            ("name", model.name),
            ("description", model.description or "-"),
            ("created", format_time(model.created_time)),
            ("updated", format_time(model.last_update_time)),
            ("latest version", str(model.latest_version or "-")),
            ("aliases", _aliases(model.aliases)),
            ("tags", _pairs(model.tags)),
        ],
        title="Registered model",
    )
    if latest is not None:
        render_table([latest.to_dict()], _VERSION_COLUMNS, title="Latest version")


@app.command("versions")
def list_versions(name: NameArgument, as_json: JsonOption = False) -> None:
    """List a model's versions, oldest first."""
    records = [v.to_dict() for v in _service().versions(name)]
    emit(records, _VERSION_COLUMNS, as_json=as_json)


@app.command("version")
def show_version(name: NameArgument, version: VersionArgument, as_json: JsonOption = False) -> None:
    """Show one version: lineage, signature, metrics, evaluation and gate result."""
    _show_version(_service().get_version(name, version), as_json=as_json)


def _feature_lineage(tags: dict[str, Any]) -> list[tuple[str, str]]:
    """The row of the feature service and view versions a version was trained from."""
    if "features.service" not in tags:
        return []
    return [("features", f"{tags['features.service']}: {tags.get('features.views', '-')}")]


def _show_version(version: ModelVersion, *, as_json: bool) -> None:
    if as_json:
        print_json(version.to_dict())
        return
    render_pairs(
        [
            ("version", f"{version.name} v{version.version} ({version.uri})"),
            ("status", _status(version.status)),
            ("aliases", ", ".join(version.aliases) or "-"),
            ("flavor", version.flavor or "-"),
            ("source", version.source),
            ("code version", version.code_version or "-"),
            ("datasets", ", ".join(version.datasets) or "-"),
            ("registered", f"{format_time(version.created_time)} by {version.user}"),
            ("description", version.description or "-"),
            ("tags", _pairs(version.tags)),
            *_feature_lineage(version.tags),
            ("evaluation", _evaluation_summary(version.evaluation)),
            ("gate", _gate_summary(version.gate)),
        ],
        title="Model version",
    )
    inputs = (version.signature or {}).get("inputs") or []
    if inputs:
        render_table(
            inputs, (Column("name", "Input", style="bold"), Column("type", "Type")), title=None
        )
    if version.metrics:
        render_table(
            [{"key": k, "value": v} for k, v in sorted(version.metrics.items())],
            (Column("key", "Metric", style="bold"), Column("value", "Value", justify="right")),
        )


def _evaluation_summary(evaluation: dict[str, Any] | None) -> str:
    if not evaluation:
        return "-"
    metrics = evaluation.get("metrics") or {}
    shown = [k for k in ("f1", "roc_auc", "rmse", "r2") if k in metrics] or sorted(metrics)[:2]
    text = ", ".join(f"{k}={format_value(metrics[k])}" for k in shown) or "no metrics"
    slices = len(evaluation.get("slices") or {})
    return f"{text} on {evaluation.get('n_rows', '?')} rows, {slices} slice(s)"


def _gate_summary(gate: dict[str, Any] | None) -> Text | str:
    if not gate:
        return "-"
    reasons = gate.get("reasons") or []
    failed = sum(1 for r in reasons if not r.get("passed"))
    if gate.get("passed"):
        return Text(f"passed ({len(reasons)} checks)", style="green")
    return Text(f"FAILED ({failed} of {len(reasons)} checks)", style="bold red")


@app.command("register")
def register(
    runs_uri: Annotated[
        str,
        typer.Argument(metavar="RUNS_URI", help="A logged model: runs:/<run_id>/<path>."),
    ],
    name: NameArgument,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Register a logged model as the next version of NAME (created if new)."""
    version = _service().register(
        runs_uri, name, description=description, tags=parse_tags(tag or [])
    )
    if as_json:
        print_json(version.to_dict())
        return
    print_success(f"Registered {version.name} v{version.version} from {version.source}.")


@alias_app.command("set")
def set_alias(
    name: NameArgument,
    alias: Annotated[str, typer.Argument(help="champion, challenger or any lowercase name.")],
    version: VersionArgument,
    reason: ReasonOption = "",
) -> None:
    """Point ALIAS at VERSION (moving `champion` needs --reason)."""
    previous = _service().set_alias(name, alias, version, reason=reason)
    was = f" (was v{previous})" if previous is not None and previous != version else ""
    print_success(f"{name}@{alias} → v{version}{was}.")


@alias_app.command("delete")
def delete_alias(name: NameArgument, alias: str, reason: ReasonOption = "") -> None:
    """Remove an alias."""
    previous = _service().delete_alias(name, alias, reason=reason)
    print_success(f"Removed {name}@{alias} (was v{previous}).")


@app.command("archive")
def archive(name: NameArgument, version: VersionArgument, reason: ReasonOption = "") -> None:
    """Archive a version (refused while an alias points at it)."""
    _service().archive(name, version, reason=reason)
    print_success(f"Archived {name} v{version}.")


@app.command("restore")
def restore(name: NameArgument, version: VersionArgument, reason: ReasonOption = "") -> None:
    """Make an archived version READY again."""
    _service().restore(name, version, reason=reason)
    print_success(f"Restored {name} v{version}.")


@app.command("tag")
def tag(
    name: NameArgument,
    key: str,
    value: str,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Tag this version, not the model.")
    ] = None,
) -> None:
    """Tag a model, or one of its versions."""
    _service().set_tag(name, key, value, version=version)
    target = f"{name} v{version}" if version else name
    print_success(f"Tagged {target} with {key}={value}.")


@app.command("audit")
def audit(name: NameArgument, as_json: JsonOption = False) -> None:
    """Every change to a model: who, when, what, from, to and why (oldest first)."""
    entries = [e.to_dict() for e in _service().audit(name)]
    if as_json:
        print_json(entries)
        return
    records = [
        {**e, "change": f"{e['from_value'] or '-'} → {e['to_value'] or '-'}"} for e in entries
    ]
    emit(
        records,
        (
            Column("time", "When", fmt=lambda v: format_time(v, seconds=True), no_wrap=True),
            Column("user", "User", no_wrap=True),
            Column("action", "Action", style="bold", no_wrap=True),
            Column("version", "Version", justify="right", no_wrap=True),
            Column("change", "Change", max_width=18, no_wrap=True),
            Column("reason", "Reason"),
        ),
        as_json=False,
    )


@app.command("card")
def card(
    name: NameArgument,
    version: VersionArgument,
    html: Annotated[bool, typer.Option("--html", help="HTML instead of Markdown.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the card to this file.")] = None,
) -> None:
    """Print (or write) the version's model card: lineage, metrics, slices, gate."""
    text = _service().card(name, version, format="html" if html else "markdown")
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(out)
    print_success(f"Model card written to {out}")
