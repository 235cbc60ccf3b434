"""What the CLI tests share: run a command in-process and expect success or a clean exit 2."""

from __future__ import annotations

from typing import Any

import typer
from click.testing import Result
from typer.testing import CliRunner

#: Wide enough that rich never wraps a table cell the tests look for.
WIDE = {"COLUMNS": "200"}


class Cli:
    """Invoke the commands of ``app`` (the whole ``loopml`` CLI by default) with CliRunner."""

    def __init__(self, app: typer.Typer | None = None) -> None:
        from loopml.cli.main import app as loopml_app

        self.app = loopml_app if app is None else app
        self.runner = CliRunner()

    def invoke(self, args: list[str], **options: Any) -> Result:
        """Run ``loopml *args`` and return the result, whatever the exit code."""
        return self.runner.invoke(self.app, args, env=WIDE, **options)

    def ok(self, args: list[str]) -> str:
        """Run a command that must succeed; return its stdout."""
        result = self.invoke(args)
        assert result.exit_code == 0, result.output
        return result.stdout

    def fails(self, args: list[str], *fragments: str, code: int = 2) -> str:
        """Run a command that must exit ``code`` with ``fragments`` on stderr, no traceback."""
        result = self.invoke(args)
        assert result.exit_code == code, result.output
        for fragment in fragments:
            assert fragment in result.stderr, result.stderr
        assert "Traceback" not in result.output
        return result.output
