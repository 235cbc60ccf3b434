"""``loopml features``: feature-store definitions.

``apply`` stores entities, feature views and feature services defined in Python (a changed
one as a new version; an incompatible change refused unless ``--force``); ``list`` shows
the latest version of each; ``show`` prints one definition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli._common import JsonOption
from loopml.cli._output import Column, emit, format_time, print_json, print_success, render_pairs
from loopml.pipelines.loading import load_object

if TYPE_CHECKING:
    from loopml.features import FeatureDefinitionRecord

app = typer.Typer(
    name="features",
    help="Feature store: entities, feature views and feature services.",
    no_args_is_help=True,
)


def load_definitions(reference: str) -> list[Any]:
    """Import ``package.module:ATTR`` or ``file.py:ATTR``: a definition or a list of them."""
    found = load_object(reference, field="definitions", what="definitions")
    return list(found) if isinstance(found, list | tuple) else [found]


def _summary(record: FeatureDefinitionRecord) -> str:
    definition = record.definition
    if record.kind == "entity":
        return "keys " + ", ".join(definition["join_keys"])
    if record.kind == "feature_view":
        ttl = definition["ttl_seconds"]
        names = ", ".join(f["name"] for f in definition["features"])
        return f"{names} from {definition['source']}" + (f", ttl {ttl:g}s" if ttl else "")
    return ", ".join(definition["features"])


_COLUMNS = [
    Column("kind", "Kind", no_wrap=True),
    Column("name", "Name", style="cyan", no_wrap=True),
    Column("version", "Version", justify="right"),
    Column("created_time", "Created", fmt=format_time, no_wrap=True),
    Column("summary", "Definition", max_width=80),
]


def _as_record(record: FeatureDefinitionRecord) -> dict[str, Any]:
    return {
        "kind": record.kind,
        "name": record.name,
        "version": record.version,
        "created_time": record.created_time,
        "definition": record.definition,
        "summary": _summary(record),
    }


@app.command("apply")
def apply_command(
    reference: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:ATTR",
            help="'package.module:attr' or 'file.py:attr': a definition or a list of them.",
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Store incompatible changes (dtype, join keys).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Store entities, feature views and services defined in Python."""
    from loopml import features

    records = features.apply(load_definitions(reference), force=force)
    if as_json:
        print_json([_as_record(r) for r in records])
        return
    for record in records:
        print_success(f"{record.kind.replace('_', ' ')} {record.name} is version {record.version}")


@app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """List the latest version of every definition."""
    from loopml import features

    emit(
        [_as_record(r) for r in features.list_definitions()],
        _COLUMNS,
        as_json=as_json,
        empty_message="No feature definitions yet: run `loopml features apply MODULE:ATTR`.",
    )


@app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Entity, view or service name.")],
    kind: Annotated[
        str | None, typer.Option("--kind", help="entity, feature_view or feature_service.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show one definition (its latest version)."""
    from loopml import features

    record = features.get(name, kind=kind)
    if as_json:
        print_json(_as_record(record))
        return
    definition = record.definition
    pairs: list[tuple[str, Any]] = [
        ("Kind", record.kind.replace("_", " ")),
        ("Version", str(record.version)),
        ("Created", format_time(record.created_time)),
    ]
    if record.kind == "feature_view":
        ttl = definition["ttl_seconds"]
        pairs += [
            ("Entities", ", ".join(definition["entities"])),
            ("Join keys", ", ".join(definition["join_keys"])),
            ("Source", definition["source"]),
            ("Timestamp", definition["timestamp_field"]),
            ("TTL", "none" if ttl is None else f"{ttl:g}s"),
            ("Features", ", ".join(f"{f['name']} ({f['dtype']})" for f in definition["features"])),
        ]
    elif record.kind == "entity":
        pairs.append(("Join keys", ", ".join(definition["join_keys"])))
    else:
        pairs.append(("Features", ", ".join(definition["features"])))
    render_pairs(pairs, title=record.name)
