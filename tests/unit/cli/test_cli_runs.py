"""``loopml runs``: list, show, compare, delete/restore and gc."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from typer.testing import CliRunner

import loopml as lm
from loopml.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def invoke(args: Sequence[str], **env: str) -> Any:
    return runner.invoke(app, list(args), env={**WIDE, **env})


def make_run(
    name: str,
    experiment: str = "exp",
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    steps: int = 1,
) -> str:
    lm.set_experiment(experiment)
    with lm.start_run(run_name=name) as run:
        if params:
            lm.log_params(params)
        for step in range(steps):
            lm.log_metrics({k: v + step for k, v in (metrics or {}).items()}, step=step)
        lm.set_tag("team", "vision")
    return run.run_id


@pytest.fixture
def two_runs() -> tuple[str, str]:
    first = make_run("alpha", metrics={"acc": 0.8, "loss": 0.5}, params={"C": 1.0, "k": 3})
    second = make_run("beta", metrics={"acc": 0.95, "loss": 0.5}, params={"C": 10.0, "k": 3})
    return first, second


# -- list ---------------------------------------------------------------------------------
def test_list_shows_short_ids_names_status_metrics_and_params(two_runs: tuple[str, str]) -> None:
    first, second = two_runs
    result = invoke(["runs", "list"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert first[:8] in out and second[:8] in out
    assert first not in out  # the table shows short ids
    assert "alpha" in out and "beta" in out and "FINISHED" in out
    for header in ("acc", "loss", "C", "k"):
        assert header in out
    assert "0.95" in out and "10.0" in out


def test_list_json_has_full_runs(two_runs: tuple[str, str]) -> None:
    result = invoke(["runs", "list", "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert {r["run_id"] for r in runs} == set(two_runs)
    beta = next(r for r in runs if r["run_name"] == "beta")
    assert beta["metrics"] == {"acc": 0.95, "loss": 0.5}
    assert beta["params"]["C"] == "10.0"
    assert beta["status"] == "FINISHED"


def test_list_filters_and_orders(two_runs: tuple[str, str]) -> None:
    result = invoke(["runs", "list", "--filter", "metrics.acc > 0.9", "--json"])
    assert [r["run_name"] for r in json.loads(result.stdout)] == ["beta"]
    result = invoke(["runs", "list", "--order-by", "metrics.acc ASC", "--json"])
    assert [r["run_name"] for r in json.loads(result.stdout)] == ["alpha", "beta"]
    result = invoke(["runs", "list", "-o", "metrics.acc DESC", "--max", "1", "--json"])
    assert [r["run_name"] for r in json.loads(result.stdout)] == ["beta"]


def test_list_max_notes_that_more_runs_matched(two_runs: tuple[str, str]) -> None:
    result = invoke(["runs", "list", "--max", "1"])
    assert result.exit_code == 0, result.output
    assert "raise --max" in result.stdout


def test_list_columns_picks_what_to_show(two_runs: tuple[str, str]) -> None:
    result = invoke(["runs", "list", "--columns", "params.C,tags.team,user"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "vision" in out and "10.0" in out
    assert "loss" not in out  # metrics are not auto-added when --columns is given


def test_list_hides_columns_that_do_not_fit() -> None:
    make_run("wide", metrics={f"metric_number_{i}": 0.5 for i in range(12)})
    result = invoke(["runs", "list"], COLUMNS="80")
    assert result.exit_code == 0, result.output
    assert "did not fit" in result.stdout
    assert "--columns" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()[:4]) <= 80


def test_list_defaults_to_every_experiment_or_the_env_one() -> None:
    make_run("in-a", experiment="a")
    make_run("in-b", experiment="b")
    every = json.loads(invoke(["runs", "list", "--json"]).stdout)
    assert {r["run_name"] for r in every} == {"in-a", "in-b"}
    table = invoke(["runs", "list"]).stdout
    assert "Experiment" in table  # runs from several experiments name theirs
    only_b = json.loads(invoke(["runs", "list", "--json"], LOOPML_EXPERIMENT_NAME="b").stdout)
    assert [r["run_name"] for r in only_b] == ["in-b"]
    only_a = json.loads(invoke(["runs", "list", "-e", "a", "--json"]).stdout)
    assert [r["run_name"] for r in only_a] == ["in-a"]


def test_list_all_includes_deleted_runs(two_runs: tuple[str, str]) -> None:
    lm.delete_run(two_runs[0])
    active = json.loads(invoke(["runs", "list", "--json"]).stdout)
    assert [r["run_name"] for r in active] == ["beta"]
    everything = invoke(["runs", "list", "--all"])
    assert "alpha" in everything.stdout and "deleted" in everything.stdout


def test_list_with_no_runs_says_so() -> None:
    result = invoke(["runs", "list"])
    assert result.exit_code == 0
    assert "No runs" in result.stdout
    assert json.loads(invoke(["runs", "list", "--json"]).stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "metrics.acc >> 1"], "invalid filter"),
        (["--filter", "metrics.acc > 'high'"], "compared with a number"),
        (["--order-by", "colour.acc"], "unknown key type 'colour'"),
        (["--experiment", "missing"], "experiment 'missing' does not exist"),
        (["--columns", "speed"], "unknown column 'speed'"),
        (["--max", "0"], "--max"),
    ],
)
def test_list_bad_input_exits_2(two_runs: tuple[str, str], args: list[str], message: str) -> None:
    result = invoke(["runs", "list", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.startswith("error: ")


def test_list_unknown_env_experiment_names_the_variable() -> None:
    result = invoke(["runs", "list"], LOOPML_EXPERIMENT_NAME="ghost")
    assert result.exit_code == 2
    assert "LOOPML_EXPERIMENT_NAME" in result.stderr


# -- show ---------------------------------------------------------------------------------
def test_show_prints_attributes_params_metrics_tags_and_artifacts() -> None:
    lm.set_experiment("exp")
    with lm.start_run(run_name="shown") as run:
        lm.log_params({"C": 0.5})
        for step in range(3):
            lm.log_metric("loss", 1.0 / (step + 1), step=step)
        lm.set_tag("owner", "ada")
        lm.log_text("hello", "notes/readme.txt")
    result = invoke(["runs", "show", run.run_id])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert run.run_id in out and "shown" in out and "exp (id" in out
    assert "Params (1)" in out and "0.5" in out
    assert "Metrics (1)" in out and "0.3333" in out
    assert "Tags (1)" in out and "ada" in out
    assert "System tags" in out and "python" in out
    assert "notes/readme.txt" in out and "5 B" in out


def test_show_json_includes_history_summary_and_artifacts() -> None:
    run_id = make_run("json", metrics={"acc": 0.5}, steps=4)
    result = invoke(["runs", "show", run_id, "--json"])
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert details["run_id"] == run_id
    assert details["experiment_name"] == "exp"
    assert details["metric_summary"]["acc"] == {
        "latest": 3.5,
        "step": 3,
        "min": 0.5,
        "max": 3.5,
        "count": 4,
    }
    assert details["artifacts"] == []
    assert details["tags"]["loopml.python"]


def test_show_accepts_a_unique_prefix(two_runs: tuple[str, str]) -> None:
    result = invoke(["runs", "show", two_runs[1][:8], "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run_id"] == two_runs[1]


@pytest.mark.parametrize(
    ("run_id", "message"),
    [
        ("0123456789abcdef0123456789abcdef", "does not exist"),
        ("abcdef12", "does not exist"),
        ("abc", "at least 6 characters"),
        ("../../etc/passwd", "does not exist"),
    ],
)
def test_show_unknown_run_exits_2(run_id: str, message: str) -> None:
    make_run("other")
    result = invoke(["runs", "show", run_id])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


# -- compare ------------------------------------------------------------------------------
def test_compare_marks_the_differences(two_runs: tuple[str, str]) -> None:
    first, second = two_runs
    result = invoke(["runs", "compare", first, second])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    c_line = next(line for line in lines if "params.C" in line)
    k_line = next(line for line in lines if "params.k" in line)
    assert c_line.lstrip().startswith("*") and "1.0" in c_line and "10.0" in c_line
    assert not k_line.lstrip().startswith("*")
    assert "* marks" in result.stdout


def test_compare_json_and_diff_only(two_runs: tuple[str, str]) -> None:
    first, second = two_runs
    result = invoke(["runs", "compare", first[:8], second[:8], "--diff-only", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["run_id"] for r in data["runs"]] == [first, second]
    assert data["params"] == [
        {"key": "C", "values": {first: "1.0", second: "10.0"}, "differs": True}
    ]
    assert [m["key"] for m in data["metrics"]] == ["acc"]


def test_compare_needs_at_least_two_runs(two_runs: tuple[str, str]) -> None:
    result = invoke(["runs", "compare", two_runs[0]])
    assert result.exit_code == 2
    assert "at least two run ids" in result.stderr


def test_compare_refuses_the_same_run_twice(two_runs: tuple[str, str]) -> None:
    result = invoke(["runs", "compare", two_runs[0], two_runs[0][:8]])
    assert result.exit_code == 2
    assert "more than once" in result.stderr


def test_compare_unknown_run_exits_2(two_runs: tuple[str, str]) -> None:
    result = invoke(["runs", "compare", two_runs[0], "feedfacefeedface"])
    assert result.exit_code == 2
    assert "feedfacefeedface" in result.stderr


# -- delete / restore ---------------------------------------------------------------------
def test_delete_and_restore(two_runs: tuple[str, str]) -> None:
    run_id = two_runs[0]
    result = invoke(["runs", "delete", run_id[:8]])
    assert result.exit_code == 0, result.output
    assert "Deleted run" in result.stdout and "--restore" in result.stdout
    assert lm.get_run(run_id).lifecycle_stage.value == "deleted"
    again = invoke(["runs", "delete", run_id])
    assert again.exit_code == 0 and "already deleted" in again.stdout
    restored = invoke(["runs", "delete", run_id, "--restore"])
    assert restored.exit_code == 0 and "Restored" in restored.stdout
    assert lm.get_run(run_id).lifecycle_stage.value == "active"
    noop = invoke(["runs", "delete", run_id, "--restore"])
    assert noop.exit_code == 0 and "not deleted" in noop.stdout


def test_delete_unknown_run_exits_2() -> None:
    result = invoke(["runs", "delete", "0123456789abcdef0123456789abcdef"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# -- gc -----------------------------------------------------------------------------------
def _ghost_run() -> str:
    """A RUNNING run whose process stopped sending heartbeats an hour ago."""
    service = lm.get_service()
    experiment = service.get_or_create_experiment("exp")
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    run = service.create_run(experiment.experiment_id, run_name="ghost", start_time=an_hour_ago)
    service.runs.heartbeat(run.run_id, an_hour_ago)
    return run.run_id


def test_gc_marks_silent_runs_killed_and_prints_them() -> None:
    ghost = _ghost_run()
    result = invoke(["runs", "gc", "--timeout", "60"])
    assert result.exit_code == 0, result.output
    assert ghost in result.stdout and "KILLED" in result.stdout
    assert lm.get_run(ghost).status.value == "KILLED"
    second = invoke(["runs", "gc", "--timeout", "60"])
    assert "No stale runs" in second.stdout


def test_gc_json_and_default_timeout_keeps_recent_runs() -> None:
    ghost = _ghost_run()
    assert json.loads(invoke(["runs", "gc", "--json", "--timeout", "7200"]).stdout) == []
    killed = json.loads(invoke(["runs", "gc", "--json", "--timeout", "1"]).stdout)
    assert [(k["run_id"], k["status"]) for k in killed] == [(ghost, "KILLED")]


def test_gc_negative_timeout_exits_2() -> None:
    result = invoke(["runs", "gc", "--timeout", "-5"])
    assert result.exit_code == 2
    assert "timeout" in result.stderr
