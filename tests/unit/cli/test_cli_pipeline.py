"""``loopml pipeline``: run, list, runs, show (tree, JSON, logs) and the exit codes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.cli.pipeline import choose_params, parse_params
from loopml.errors import InvalidInput
from loopml.pipelines import load_pipeline

runner = CliRunner()
WIDE = {"COLUMNS": "200"}

FLOW = textwrap.dedent(
    """
    from __future__ import annotations

    import loopml as lm


    @lm.step
    def load(n: int) -> list[int]:
        print(f"loading {n} values")
        return list(range(n))


    @lm.step
    def doubled(values: list[int]) -> list[int]:
        return [2 * v for v in values]


    @lm.step
    def squared(values: list[int]) -> list[int]:
        return [v * v for v in values]


    @lm.step
    def total(a: list[int], b: list[int], label: str, ratio: float) -> dict:
        if label == "boom":
            raise ValueError("label boom is refused\\nsecond line of the error")
        return {"label": label, "sum": sum(a) + sum(b), "ratio": ratio}


    @lm.pipeline
    def counting(n: int = 4, label: str = "x", ratio: float = 0.5):
        values = load(n)
        return total(doubled(values), squared(values), label, ratio)


    not_a_pipeline = 42
    """
)


@pytest.fixture
def flow(tmp_path: Path) -> str:
    path = tmp_path / "flow_cli.py"
    path.write_text(FLOW, encoding="utf-8")
    return f"{path}:counting"


def _invoke(args: list[str]) -> Any:
    return runner.invoke(app, args, env=WIDE)


def _ok(args: list[str]) -> str:
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def _fails(args: list[str], code: int, message: str) -> None:
    result = _invoke(args)
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output


def _run_json(flow: str, *extra: str) -> dict[str, Any]:
    tree: dict[str, Any] = json.loads(_ok(["pipeline", "run", flow, "--json", *extra]))
    return tree


def test_run_prints_the_tree_then_hits_the_cache(flow: str) -> None:
    first = _invoke(["pipeline", "run", flow, "--param", "n=3"])
    assert first.exit_code == 0, first.output
    assert "Running pipeline counting" in first.stderr
    out = first.stdout
    assert "pipeline counting" in out and "COMPLETED" in out
    for name in ("load", "doubled", "squared", "total"):
        assert name in out
    assert "cache miss: no earlier execution of this step" in out
    assert "(also after doubled)" in out
    assert "cache hit" not in out
    assert "4 steps: 4 completed" in out

    again = _ok(["pipeline", "run", flow, "--param", "n=3"])
    assert again.count("cache hit") == 4
    assert "4 steps: 4 cached" in again
    assert "cache miss" not in again

    changed = _ok(["pipeline", "run", flow, "--param", "n=3", "-p", "ratio=2"])
    assert changed.count("cache hit") == 3
    assert "cache miss: parameter ratio changed" in changed


def test_run_json_parses_params_by_the_signature(flow: str) -> None:
    tree = _run_json(flow, "--param", "n=2", "--param", "label=007", "--param", "ratio=1")
    run = tree["run"]
    assert run["params"] == {"n": 2, "label": "007", "ratio": 1.0}
    assert run["status"] == "COMPLETED" and run["trigger"] == "cli"
    assert [s["step_name"] for s in tree["steps"]][0] == "load"
    assert tree["summary"]["steps"] == 4


def test_no_cache_runs_every_step(flow: str) -> None:
    _run_json(flow)
    tree = _run_json(flow, "--no-cache")
    assert tree["summary"]["cache_hits"] == 0
    assert {s["cache_reason"] for s in tree["steps"]} == {"cache miss: cache disabled for this run"}


def test_failed_run_exits_1_with_the_first_error_line(flow: str) -> None:
    result = _invoke(["pipeline", "run", flow, "--param", "label=boom"])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stdout
    assert "ValueError: label boom is refused" in result.stdout
    assert "second line of the error" not in result.stdout
    assert "3 completed, 1 failed" in result.stdout
    tree = json.loads(_invoke(["pipeline", "run", flow, "-p", "label=boom", "--json"]).stdout)
    assert tree["run"]["status"] == "FAILED"


def test_bad_input_exits_2(flow: str, tmp_path: Path) -> None:
    _fails(["pipeline", "run", flow, "--param", "n=abc"], 2, "parameter n")
    _fails(["pipeline", "run", flow, "--param", "n=[1]"], 2, "parameter n")
    _fails(["pipeline", "run", flow, "--param", "colour=red"], 2, "no parameter(s) colour")
    _fails(["pipeline", "run", flow, "--param", "n"], 2, "must look like NAME=VALUE")
    _fails(["pipeline", "run", flow, "-p", "n=1", "-p", "n=2"], 2, "given twice")
    _fails(["pipeline", "run", flow.replace(":counting", ":nope")], 2, "cannot load pipeline")
    _fails(["pipeline", "run", flow.replace(":counting", ":not_a_pipeline")], 2, "not an @lm")
    _fails(["pipeline", "run", str(tmp_path / "missing.py:counting")], 2, "does not exist")
    _fails(["pipeline", "run", "no_such_module_xyz:counting"], 2, "cannot load pipeline")
    _fails(["pipeline", "run", "counting"], 2, "must look like module:pipeline")
    _fails(["pipeline", "run", flow, "--executor", "cluster"], 2, "--executor")
    assert json.loads(_ok(["pipeline", "list", "--json"])) == []


def test_list_and_runs(flow: str) -> None:
    assert "No pipeline runs yet" in _ok(["pipeline", "list"])
    assert "No pipeline runs yet" in _ok(["pipeline", "runs"])
    first = _run_json(flow, "-p", "n=1")["run"]["id"]
    second = _run_json(flow, "-p", "n=2")["run"]["id"]
    listed = json.loads(_ok(["pipeline", "list", "--json"]))
    assert [(p["pipeline_name"], p["runs"], p["last_run_id"]) for p in listed] == [
        ("counting", 2, second)
    ]
    table = _ok(["pipeline", "list"])
    assert "counting" in table and second[:8] in table
    runs = json.loads(_ok(["pipeline", "runs", "--json"]))
    assert [r["id"] for r in runs] == [second, first]
    assert [r["id"] for r in json.loads(_ok(["pipeline", "runs", "--max", "1", "--json"]))] == [
        second
    ]
    assert json.loads(_ok(["pipeline", "runs", "--pipeline", "other", "--json"])) == []
    assert "No runs of pipeline 'other'" in _ok(["pipeline", "runs", "--pipeline", "other"])
    text = _ok(["pipeline", "runs", "--pipeline", "counting"])
    assert first[:8] in text and second[:8] in text and "n=2" in text and "cli" in text
    _fails(["pipeline", "runs", "--max", "0"], 2, "--max")


def test_show_tree_json_and_logs(flow: str) -> None:
    run_id = _run_json(flow, "-p", "n=5")["run"]["id"]
    shown = _ok(["pipeline", "show", run_id[:8]])
    assert f"run {run_id[:8]}" in shown and "COMPLETED" in shown
    assert shown.index("load") < shown.index("doubled") < shown.index("total")
    assert 'params: label="x", n=5, ratio=0.5' in shown
    tree = json.loads(_ok(["pipeline", "show", run_id, "--json"]))
    assert tree["run"]["id"] == run_id
    assert {s["step_name"] for s in tree["steps"]} == {"load", "doubled", "squared", "total"}

    assert _ok(["pipeline", "show", run_id[:8], "--logs", "load"]) == "loading 5 values\n"
    quiet = _invoke(["pipeline", "show", run_id[:8], "--logs", "doubled"])
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert "printed nothing" in quiet.stderr
    logs = json.loads(_ok(["pipeline", "show", run_id[:8], "--logs", "load", "--json"]))
    assert logs == {"run_id": run_id, "step": "load", "logs": "loading 5 values\n"}

    cached = _run_json(flow, "-p", "n=5")["run"]["id"]
    shown = _ok(["pipeline", "show", cached])
    assert shown.count("cache hit") == 4
    # Reused executions are named by the short ids the CLI accepts.
    assert f"(pipeline run {run_id[:8]})" in shown and run_id not in shown
    assert _ok(["pipeline", "show", cached, "--logs", "load"]) == "loading 5 values\n"


def test_show_failed_run_and_traceback(flow: str) -> None:
    result = _invoke(["pipeline", "run", flow, "-p", "label=boom", "--json"])
    run_id = json.loads(result.stdout)["run"]["id"]
    shown = _invoke(["pipeline", "show", run_id])
    assert shown.exit_code == 0
    assert "ValueError: label boom is refused" in shown.stdout
    logs = _ok(["pipeline", "show", run_id, "--logs", "total"])
    assert "Traceback" in logs and "second line of the error" in logs


def test_show_unknown_runs_and_steps(flow: str) -> None:
    run_id = _run_json(flow)["run"]["id"]
    _fails(["pipeline", "show", "0" * 32], 2, "does not exist")
    _fails(["pipeline", "show", run_id[:5]], 2, "at least 8 characters")
    _fails(["pipeline", "show", "not/an/id"], 2, "does not exist")
    _fails(["pipeline", "show", run_id, "--logs", "nope"], 2, "has no step 'nope'")


def test_choose_params_prefers_what_the_signature_takes(flow: str) -> None:
    pipeline = load_pipeline(flow)
    parsed = parse_params(["n=7", "label=123", "ratio=1e-3"])
    assert parsed["label"] == (123, "123")
    assert choose_params(pipeline, parsed) == {"n": 7, "label": "123", "ratio": 0.001}
    assert choose_params(pipeline, parse_params(['label="quoted"'])) == {"label": "quoted"}
    assert choose_params(pipeline, parse_params(["label="])) == {"label": ""}
    with pytest.raises(InvalidInput) as error:
        choose_params(pipeline, parse_params(["n=1.5"]))
    assert error.value.field == "n"


def test_help_lists_the_commands() -> None:
    out = _ok(["pipeline", "--help"])
    for command in ("list", "runs", "show", "run"):
        assert command in out
