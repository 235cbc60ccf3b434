"""``loopml ci``: code tests, data validation, a pipeline run on a sample and the gate.

A Git CI job runs it on every push and when new data lands; it exits 1 when a check fails
(after printing which and why) and 2 when the configuration is wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from loopml.cli._common import JsonOption
from loopml.cli._output import (
    Column,
    print_json,
    print_note,
    render_table,
    stdout_console,
)
from loopml.entities._json import jsonable

if TYPE_CHECKING:
    from loopml.training.ci import CIReport, CIService

#: Exit code when at least one check failed (configuration errors exit 2, as everywhere).
EXIT_CHECK_FAILED = 1

_STATUS_STYLES = {"passed": "green", "failed": "bold red", "skipped": "dim"}


def _status(value: Any) -> Text:
    return Text(str(value), style=_STATUS_STYLES.get(str(value), ""))


def _seconds(value: Any) -> str:
    return "-" if not value else f"{float(value):.1f}"


COLUMNS = [
    Column("check", "Check", style="bold", no_wrap=True),
    Column("status", "Status", fmt=_status, no_wrap=True),
    Column("detail", "Detail"),
    Column("seconds", "Seconds", justify="right", fmt=_seconds, no_wrap=True),
]


def ci(
    project: Annotated[
        Path,
        typer.Option(
            "--project",
            file_okay=False,
            help="The project folder: tests run there, pipeline modules import from it.",
        ),
    ] = Path("."),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            dir_okay=False,
            help="A TOML file with a 'ci' or 'tool.loopml.ci' table (default: the "
            "project's loopml.toml, then its pyproject.toml).",
        ),
    ] = None,
    tests: Annotated[
        str | None,
        typer.Option(
            "--tests",
            metavar="COMMAND",
            help="The test command (default: pytest -q when tests/ exists).",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="Validate this dataset's latest version against its schema."
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference", metavar="NAME@vN", help="Also check the data for drift against this."
        ),
    ] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(
            "--pipeline",
            metavar="REF",
            help="The training pipeline: package.module:pipeline or path/to/file.py:pipeline.",
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option("--sample", min=1, help="Rows the pipeline trains on (default 1000)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="A pipeline parameter (JSON when it parses, else text); repeatable.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="The registered model whose champion an evaluation is gated against."
        ),
    ] = None,
    gate: Annotated[
        str | None,
        typer.Option("--gate", metavar="MODULE:ATTR", help="An lm.Gate to use."),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip", metavar="CHECK", help="Do not run tests, data, pipeline or gate; repeatable."
        ),
    ] = None,
    fail_fast: Annotated[
        bool | None,
        typer.Option("--fail-fast", help="Skip the remaining checks after the first failure."),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Run every pipeline step again, ignoring the cache."),
    ] = False,
    report_path: Annotated[
        Path | None,
        typer.Option(
            "--report",
            dir_okay=False,
            metavar="PATH",
            help="Also write the report as JSON to PATH (for CI artifacts).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the ML CI checks of a project; exit 1 when one fails, 2 on bad configuration."""
    from loopml.cli.pipeline import parse_params
    from loopml.training.ci import load_config

    params: dict[str, Any] | None = None
    if param:
        params = {name: value for name, (value, _) in parse_params(param).items()}
    overrides: dict[str, Any] = {
        "tests": tests,
        "dataset": dataset,
        "reference": reference,
        "pipeline": pipeline,
        "sample": sample,
        "model": model,
        "gate": gate,
        "skip": skip or None,
        "fail_fast": fail_fast,
        "cache": False if no_cache else None,
    }
    settings = load_config(project, config_file=config, overrides=overrides)
    if params:
        # Flags add to the configured parameters rather than replacing them all.
        settings = replace(settings, params={**settings.params, **params})
    report = _service().run(
        settings, progress=None if as_json else lambda line: print_note(line, err=True)
    )
    if report_path is not None:
        _write_report(report_path, report.to_dict())
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if not report.passed:
        raise typer.Exit(code=EXIT_CHECK_FAILED)


def _write_report(path: Path, data: dict[str, Any]) -> None:
    """Write whole or not at all: a temporary file next to the target, then a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(jsonable(data), indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _service() -> CIService:
    import loopml.datasets
    import loopml.registry
    from loopml.pipelines import load_pipeline
    from loopml.training.ci import CIService

    return CIService(
        loopml.datasets.get_service(), loopml.registry.get_service(), load_pipeline=load_pipeline
    )


def _print_report(report: CIReport) -> None:
    records = [check.to_dict() for check in report.checks]
    render_table(records, COLUMNS, title=f"ML CI of {report.project}")
    console = stdout_console()
    console.print(Text(f"settings: {report.source}", style="dim"), soft_wrap=True)
    for check in report.checks:
        if check.status == "failed" and check.lines:
            console.print(Text(f"\n{check.check} failed:", style="bold red"))
            for line in check.lines:
                console.print(Text(f"  {line}"), soft_wrap=True)
    counts = {s: sum(c.status == s for c in report.checks) for s in _STATUS_STYLES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if report.passed:
        console.print(Text(f"\nML CI passed ({summary})", style="green"))
    else:
        failed = ", ".join(report.failed)
        console.print(Text(f"\nML CI FAILED: {failed} ({summary})", style="bold red"))
