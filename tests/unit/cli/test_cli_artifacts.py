"""``loopml artifacts``: list and get, including path traversal attempts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import loopml as lm
from loopml.cli.main import app

runner = CliRunner()


@pytest.fixture
def run_id() -> str:
    lm.set_experiment("files")
    with lm.start_run(run_name="with-files") as run:
        lm.log_text("hello", "notes/readme.txt")
        lm.log_text("a,b\n1,2\n", "data/table.csv")
        lm.log_dict({"C": 1}, "config.json")
    return run.run_id


def test_list_all_files(run_id: str) -> None:
    result = runner.invoke(app, ["artifacts", "list", run_id], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for path in ("notes/readme.txt", "data/table.csv", "config.json"):
        assert path in result.stdout
    assert "3 files" in result.stdout


def test_list_a_folder_as_json(run_id: str) -> None:
    result = runner.invoke(app, ["artifacts", "list", run_id[:8], "notes", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [e["path"] for e in entries] == ["notes/readme.txt"]
    assert entries[0]["size"] == 5 and len(entries[0]["sha256"]) == 64


def test_list_a_run_without_files() -> None:
    with lm.start_run() as run:
        pass
    result = runner.invoke(app, ["artifacts", "list", run.run_id])
    assert result.exit_code == 0
    assert "no artifacts" in result.stdout
    assert json.loads(runner.invoke(app, ["artifacts", "list", run.run_id, "--json"]).stdout) == []


def test_get_a_file_keeps_its_path(run_id: str, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    result = runner.invoke(
        app,
        ["artifacts", "get", run_id, "notes/readme.txt", "--dest", str(dest)],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert (dest / "notes" / "readme.txt").read_text() == "hello"
    assert "Downloaded 1 file" in result.stdout


def test_get_everything_into_the_current_folder(run_id: str, tmp_path: Path) -> None:
    # The autouse fixture made tmp_path the working directory.
    result = runner.invoke(app, ["artifacts", "get", run_id, "."])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "table.csv").read_text() == "a,b\n1,2\n"
    assert json.loads((tmp_path / "config.json").read_text()) == {"C": 1}
    assert "Downloaded 3 files" in result.stdout


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "notes/../../x",
        "%2e%2e/secret",
        "..%252fx",
        "notes\\..\\..\\x",
        "file:///etc/passwd",
        "notes/readme.txt#frag",
    ],
)
@pytest.mark.parametrize("command", ["get", "list"])
def test_traversal_paths_exit_2(run_id: str, tmp_path: Path, path: str, command: str) -> None:
    args = ["artifacts", command, run_id, path]
    if command == "get":
        args += ["--dest", str(tmp_path / "dest")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: path ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").iterdir())


@pytest.mark.parametrize("command", ["get", "list"])
def test_missing_path_exits_2(run_id: str, command: str) -> None:
    result = runner.invoke(app, ["artifacts", command, run_id, "nothing/here"])
    assert result.exit_code == 2
    assert "has no artifact 'nothing/here'" in result.stderr


def test_unknown_run_exits_2() -> None:
    result = runner.invoke(app, ["artifacts", "list", "0123456789abcdef0123456789abcdef"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_dest_that_is_a_file_is_a_usage_error(run_id: str, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    result = runner.invoke(app, ["artifacts", "get", run_id, "config.json", "--dest", str(target)])
    assert result.exit_code == 2
    assert "--dest" in result.stderr
