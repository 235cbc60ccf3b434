"""``loopml data``: versioned datasets, SQL over them, profiles, schemas and validation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from loopml.cli._common import JsonOption, parse_tags
from loopml.cli._output import (
    Column,
    emit,
    format_size,
    format_time,
    format_value,
    print_json,
    print_note,
    print_success,
    render_pairs,
    render_table,
)
from loopml.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.data.datasets import DatasetService

app = typer.Typer(
    name="data",
    help="Register, query, profile and validate versioned datasets.",
    no_args_is_help=True,
)
schema_app = typer.Typer(
    name="schema", help="Infer, attach and show dataset schemas.", no_args_is_help=True
)
app.add_typer(schema_app)

DatasetArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME[@VERSION]",
        help="Dataset name, optionally with a version: churn@v3, churn@<hash>.",
    ),
]


def _service() -> DatasetService:
    from loopml.datasets import get_service

    return get_service()


_VERSION_COLUMNS = (
    Column("uri", "Version", style="bold", no_wrap=True),
    Column("digest", "Digest", fmt=lambda v: str(v)[:12], no_wrap=True),
    Column("num_rows", "Rows", justify="right"),
    Column("num_columns", "Cols", justify="right"),
    Column("size_bytes", "Size", justify="right", fmt=lambda v: format_size(v)),
    Column("created_time", "Created", fmt=lambda v: format_time(v)),
    Column("source", "Source", max_width=40),
)


def _version_record(version: Any) -> dict[str, Any]:
    return {**version.to_dict(), "uri": version.uri}


@app.command("list")
def list_datasets(as_json: JsonOption = False) -> None:
    """List datasets with their latest version."""
    records = [d.to_dict() for d in _service().list_datasets()]
    emit(
        records,
        (
            Column("name", "Name", style="bold"),
            Column("latest_version", "Latest", justify="right"),
            Column("has_schema", "Schema", fmt=lambda v: "yes" if v else "-"),
            Column("last_update_time", "Updated", fmt=lambda v: format_time(v)),
            Column("description", "Description", max_width=50),
        ),
        as_json=as_json,
        empty_message="No datasets yet: `loopml data register NAME FILE` adds one.",
    )


@app.command("versions")
def list_versions(name: str, as_json: JsonOption = False) -> None:
    """List a dataset's versions, oldest first."""
    records = [_version_record(v) for v in _service().list_versions(name)]
    emit(records, _VERSION_COLUMNS, as_json=as_json)


@app.command("register")
def register(
    name: str,
    path: Annotated[str, typer.Argument(help="A Parquet or CSV file (path or URL).")],
    description: Annotated[str, typer.Option(help="What the data is.")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    profile: Annotated[bool, typer.Option(help="Compute the profile while registering.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Register a file as a new dataset version (same content gives the same version)."""
    before = {v.digest for v in _known_versions(name)}
    version = _service().register(
        name, path, description=description, tags=parse_tags(tag or []), profile=profile
    )
    if as_json:
        print_json(_version_record(version))
        return
    if version.digest in before:
        print_note(f"Same content as {version.uri}: nothing new was stored.")
    else:
        print_success(
            f"Registered {version.uri}: {version.num_rows} rows, "
            f"{version.num_columns} columns, digest {version.digest[:12]}."
        )


def _known_versions(name: str) -> list[Any]:
    from loopml.errors import NotFound

    try:
        return _service().list_versions(name)
    except (NotFound, InvalidInput):
        return []


@app.command("show")
def show(dataset: DatasetArgument, as_json: JsonOption = False) -> None:
    """Show a version: metadata, columns, profile summary, validations and lineage."""
    described = _service().describe(dataset)
    if as_json:
        print_json(described)
        return
    version = described["version"]
    render_pairs(
        [
            ("version", f"{version['name']}@v{version['version']}"),
            ("digest", version["digest"]),
            ("rows", str(version["num_rows"])),
            ("size", format_size(version["size_bytes"])),
            ("created", format_time(version["created_time"])),
            ("source", version["source"] or "-"),
            ("tags", ", ".join(f"{k}={v}" for k, v in version["tags"].items()) or "-"),
            ("schema", "attached" if described["schema"] else "-"),
        ],
        title="Dataset version",
    )
    _print_profile_summary(described["profile"], version["columns"])
    validations = described["validations"]
    if validations:
        render_table(
            validations,
            (
                Column("id", "Id", justify="right"),
                Column("created_time", "When", fmt=lambda v: format_time(v)),
                Column(
                    "passed",
                    "Result",
                    fmt=lambda v: Text("passed", "green") if v else Text("failed", "bold red"),
                ),
                Column("reference", "Reference"),
            ),
            title="Validations",
        )
    if described["lineage"]:
        render_table(
            described["lineage"],
            (
                Column("source_id", "From"),
                Column("role", "Role"),
                Column("target_id", "To"),
            ),
            title="Lineage",
        )


def _print_profile_summary(profile: dict[str, Any] | None, columns: list[dict[str, Any]]) -> None:
    if not profile:
        render_table(columns, (Column("name", "Column"), Column("type", "Type")), title="Columns")
        return
    records = []
    for column in profile["columns"]:
        missing = column["missing"] / column["count"] if column["count"] else 0.0
        records.append(
            {
                "name": column["name"],
                "type": column["logical_type"],
                "missing": missing,
                "distinct": column["distinct"],
                "mean": column.get("mean"),
                "std": column.get("std"),
                "min": column.get("min"),
                "max": column.get("max"),
                "top": ", ".join(str(v) for v, _ in (column.get("top_values") or [])[:3]),
            }
        )
    render_table(
        records,
        (
            Column("name", "Column", style="bold"),
            Column("type", "Type"),
            Column("missing", "Missing", justify="right", fmt=lambda v: f"{v:.1%}"),
            Column("distinct", "Distinct", justify="right"),
            Column("mean", "Mean", justify="right", fmt=format_value),
            Column("std", "Std", justify="right", fmt=format_value),
            Column("min", "Min", justify="right", fmt=format_value, max_width=20),
            Column("max", "Max", justify="right", fmt=format_value, max_width=20),
            Column("top", "Top values", max_width=30),
        ),
        title=f"Profile ({profile['num_rows']} rows)",
    )


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help='One SELECT; tables are datasets ("churn@v2").')],
    max_rows: Annotated[int, typer.Option("--max-rows", min=1, help="Rows to print.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Run DuckDB SQL over registered datasets and print the result."""
    frame: Any = _service().sql(query)
    shown = frame.head(max_rows)
    records = shown.astype(object).where(shown.notna(), None).to_dict(orient="records")
    if as_json:
        print_json(records)
        return
    columns = [
        Column(
            str(c),
            str(c),
            justify="right" if shown[c].dtype.kind in "iuf" else "left",
            max_width=40,
        )
        for c in shown.columns
    ]
    render_table(records, columns)
    if len(frame) > max_rows:
        print_note(f"{len(frame) - max_rows} more rows (raise --max-rows to see them).")


@app.command("profile")
def profile(
    dataset: DatasetArgument,
    out: Annotated[Path | None, typer.Option(help="Where to write the HTML report.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print per-column statistics and write a self-contained HTML report with plots."""
    from loopml.data.report import render_profile_html

    service = _service()
    version = service.resolve(dataset)
    computed = service.profile(version.name, version.version)
    if as_json:
        print_json(computed.to_dict())
    else:
        _print_profile_summary(computed.to_dict(), [])
    target = out or Path(f"{version.name}-v{version.version}-profile.html")
    validations = service.store.list_validation_results(version.name, version.version)
    html = render_profile_html(
        computed,
        title=f"{version.uri} ({version.digest[:12]})",
        validation=validations[0].result if validations else None,
    )
    _write_atomically(target, html)
    if not as_json:
        print_success(f"Report written to {target}")


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)


@app.command("validate")
def validate(
    dataset: DatasetArgument,
    reference: Annotated[
        str | None,
        typer.Option(
            help="Reference version for drift (and for the schema when none is attached)."
        ),
    ] = None,
    schema: Annotated[Path | None, typer.Option(help="A schema YAML/JSON file.")] = None,
    range_tolerance: Annotated[
        float, typer.Option(help="Slack around inferred ranges, as a share of max - min.")
    ] = 0.1,
    drift_share: Annotated[
        float, typer.Option(help="Share of drifted columns at which the dataset counts as drifted.")
    ] = 0.5,
    as_json: JsonOption = False,
) -> None:
    """Validate a version against its schema and a reference; exit 1 when it fails."""
    from loopml.data.schema import Schema

    loaded = Schema.load(schema) if schema else None
    result, record = _service().validate(
        dataset,
        schema=loaded,
        reference=reference,
        range_tolerance=range_tolerance,
        drift_share=drift_share,
    )
    if as_json:
        print_json({**result.to_dict(), "record_id": record.id if record else None})
    else:
        anomalies = [a.to_dict() for a in result.anomalies]
        if anomalies:
            render_table(
                anomalies,
                (
                    Column(
                        "severity",
                        "Severity",
                        fmt=lambda v: Text(str(v), "bold red" if v == "error" else "yellow"),
                    ),
                    Column("kind", "Kind"),
                    Column("column", "Column", style="bold"),
                    Column("message", "Message"),
                ),
                title="Anomalies",
            )
        summary = result.summary()
        if result.passed:
            print_success(summary)
        else:
            print_note(summary)
    if not result.passed:
        raise typer.Exit(code=1)


@app.command("tag")
def tag(dataset: DatasetArgument, key: str, value: str) -> None:
    """Tag a version (the latest unless one is named)."""
    service = _service()
    version = service.resolve(dataset)
    service.tag(version.name, version.version, key, value)
    print_success(f"Tagged {version.uri} with {key}={value}.")


@app.command("delete")
def delete(
    dataset: DatasetArgument,
    all_versions: Annotated[bool, typer.Option("--all", help="Delete every version.")] = False,
    force: Annotated[
        bool, typer.Option(help="Delete even when a model version's lineage uses it.")
    ] = False,
) -> None:
    """Delete a version (or all of them)."""
    service = _service()
    if all_versions:
        deleted = service.delete(dataset, all_versions=True, force=force)
    else:
        version = service.resolve(dataset)
        deleted = service.delete(version.name, version.version, force=force)
    print_success("Deleted " + ", ".join(v.uri for v in deleted) + ".")


@schema_app.command("infer")
def infer(
    dataset: DatasetArgument,
    out: Annotated[Path | None, typer.Option(help="Write the schema (YAML, or .json).")] = None,
    attach: Annotated[bool, typer.Option(help="Attach it to the dataset name.")] = False,
    max_categories: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """Infer a schema from a version; print it, save it, attach it."""
    from loopml.data.schema import infer_schema

    service = _service()
    version = service.resolve(dataset)
    inferred = infer_schema(
        service.read(version.name, version.version), max_categories=max_categories
    )
    if out is not None:
        inferred.save(out)
        print_success(f"Schema written to {out}")
    else:
        typer.echo(inferred.to_yaml())
    if attach:
        service.set_schema(version.name, inferred)
        print_success(f"Schema attached to {version.name}.")


@schema_app.command("attach")
def attach(name: str, path: Path) -> None:
    """Attach a schema file to a dataset name."""
    from loopml.data.schema import Schema

    _service().set_schema(name, Schema.load(path))
    print_success(f"Schema from {path} attached to {name}.")


@schema_app.command("show")
def show_schema(name: str) -> None:
    """Print the schema attached to a dataset name."""
    attached = _service().get_schema(name)
    if attached is None:
        print_note(f"No schema is attached to {name}.")
        raise typer.Exit(code=1)
    typer.echo(attached.to_yaml())
