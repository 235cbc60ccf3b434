"""``loopml experiments``: list, create, delete, restore."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import loopml as lm
from loopml.cli.main import app

runner = CliRunner()


def test_create_then_list() -> None:
    created = runner.invoke(app, ["experiments", "create", "churn"])
    assert created.exit_code == 0, created.output
    assert "Created experiment 'churn' with id" in created.stdout
    listed = runner.invoke(app, ["experiments", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    assert "churn" in listed.stdout
    assert "Stage" not in listed.stdout  # only shown with --all


def test_create_json() -> None:
    result = runner.invoke(app, ["experiments", "create", "churn", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "churn" and data["lifecycle_stage"] == "active"


def test_list_json_and_empty_store() -> None:
    empty = runner.invoke(app, ["experiments", "list"])
    assert empty.exit_code == 0 and "No experiments yet" in empty.stdout
    assert json.loads(runner.invoke(app, ["experiments", "list", "--json"]).stdout) == []
    lm.set_experiment("a")
    data = json.loads(runner.invoke(app, ["experiments", "list", "--json"]).stdout)
    assert [e["name"] for e in data] == ["a"]


def test_delete_by_name_and_restore_by_id() -> None:
    experiment_id = lm.set_experiment("old")
    deleted = runner.invoke(app, ["experiments", "delete", "old"])
    assert deleted.exit_code == 0, deleted.output
    assert f"restore {experiment_id}" in deleted.stdout
    assert json.loads(runner.invoke(app, ["experiments", "list", "--json"]).stdout) == []
    with_deleted = runner.invoke(app, ["experiments", "list", "--all"], env={"COLUMNS": "200"})
    assert "deleted" in with_deleted.stdout
    again = runner.invoke(app, ["experiments", "delete", experiment_id])
    assert again.exit_code == 0 and "already deleted" in again.stdout

    restored = runner.invoke(app, ["experiments", "restore", experiment_id])
    assert restored.exit_code == 0, restored.output
    assert "Restored experiment 'old'" in restored.stdout
    noop = runner.invoke(app, ["experiments", "restore", experiment_id])
    assert noop.exit_code == 0 and "not deleted" in noop.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", ""], "must not be empty"),
        (["create", "x" * 300], "limit is 250"),
        (["create", "tab\tname"], "control characters"),
        (["delete", "nope"], "experiment 'nope' does not exist"),
        (["delete", "42"], "'42' does not exist"),
        (["restore", "42"], "'42' does not exist"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["experiments", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_duplicate_name_exits_2() -> None:
    runner.invoke(app, ["experiments", "create", "dup"])
    result = runner.invoke(app, ["experiments", "create", "dup"])
    assert result.exit_code == 2
    assert "already exists" in result.stderr
