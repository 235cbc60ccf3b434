"""The root command: help, version, and the error boundary (exit 2, one line, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import loopml
from loopml.cli.main import app, main, run_guarded
from loopml.errors import InvalidInput, NotFound, StoreUnavailable

runner = CliRunner()


def test_no_arguments_prints_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "Usage" in result.output
    for group in ("experiments", "runs", "artifacts", "server", "version"):
        assert group in result.output


def test_help_lists_the_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "runs" in result.stdout and "experiments" in result.stdout


@pytest.mark.parametrize("group", ["experiments", "runs", "artifacts", "server", "server token"])
def test_every_group_has_help(group: str) -> None:
    result = runner.invoke(app, [*group.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_version_flag() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"loopml {loopml.__version__}"


def test_version_shows_python_and_store(isolated_home: Path) -> None:
    result = runner.invoke(app, ["version"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert loopml.__version__ in result.stdout
    assert "python" in result.stdout
    assert str(isolated_home / "loopml.db") in result.stdout


def test_version_json_masks_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_STORE_URI", "postgresql+psycopg://loop:hunter2@db:5432/loopml")
    result = runner.invoke(app, ["version", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["store_uri"] == "postgresql+psycopg://loop:***@db:5432/loopml"
    assert "hunter2" not in result.stdout
    assert info["tracking_uri"] is None


def test_version_with_a_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_TRACKING_URI", "http://tracking.example:5000")
    result = runner.invoke(app, ["version"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "http://tracking.example:5000" in result.stdout


def test_invalid_setting_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_TRACKING_URI", "ftp://nope")
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "tracking_uri" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_command_is_a_one_line_usage_error() -> None:
    result = runner.invoke(app, ["runs", "lst"])
    assert result.exit_code == 2
    assert "No such command 'lst'" in result.stderr
    assert "loopml runs --help" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_unknown_option_is_a_usage_error() -> None:
    result = runner.invoke(app, ["runs", "list", "--bogus"])
    assert result.exit_code == 2
    assert "--bogus" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("bad value", field="x"), 2),
        (NotFound("no such thing"), 2),
        (StoreUnavailable("database is down"), 2),
        (PermissionError("permission denied: /root/x"), 1),
    ],
)
def test_run_guarded_maps_errors_to_exit_codes(
    error: Exception, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail() -> None:
        raise error

    assert run_guarded(fail) == code
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert str(error) in captured.err.replace("\n", " ")
    assert captured.out == ""


def test_run_guarded_passes_exit_codes_through() -> None:
    assert run_guarded(lambda: None) == 0
    assert run_guarded(lambda: 3) == 3


def test_main_exits_with_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["runs", "show", "0123456789abcdef0123456789abcdef"])
    assert exited.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_run_id_in_a_real_process_exits_2_without_traceback(isolated_home: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from loopml.cli.main import main; main()",
            "runs",
            "show",
            "nosuchrun",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOOPML_HOME": str(isolated_home)},
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip() == "error: run 'nosuchrun' does not exist"


def test_importing_the_cli_stays_light() -> None:
    code = (
        "import sys, loopml.cli.main;"
        "heavy = [m for m in ('pandas', 'sqlalchemy', 'fastapi', 'sklearn') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == ""
