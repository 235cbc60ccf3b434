"""``loopml ci``: the summary table, exit 0 / 1 / 2, and --json."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import loopml as lm
from loopml.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}

FLOW = textwrap.dedent(
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml as lm

    FEATURES = ["x1", "x2"]


    @lm.step
    def load(dataset: str) -> pd.DataFrame:
        return lm.datasets.get(dataset)


    @lm.step
    def fit(frame: pd.DataFrame) -> LogisticRegression:
        if frame["x1"].max() > 30:
            raise ValueError("x1 is out of any sane range")
        return LogisticRegression().fit(frame[FEATURES], frame["y"])


    @lm.step
    def score(model: LogisticRegression, frame: pd.DataFrame) -> dict:
        data = frame[FEATURES + ["y"]]
        return lm.evaluate(model, data, "y", log=False, latency_rows=3).to_dict()


    @lm.pipeline
    def train(dataset: str = "churn"):
        frame = load(dataset)
        return score(fit(frame), frame)
    """
)


def churn(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x1": rng.normal(size=rows), "x2": rng.normal(size=rows)})
    frame["y"] = (frame["x1"] + rng.normal(scale=0.3, size=rows) > 0).astype(int)
    return frame


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A green project: a passing test, a dataset with a schema, a pipeline, a gate."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_model.py").write_text(
        "def test_features():\n    assert ['x1', 'x2']\n", encoding="utf-8"
    )
    (tmp_path / "ci_train.py").write_text(FLOW, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "churn-model"

            [tool.loopml.ci]
            dataset = "churn"
            pipeline = "ci_train.py:train"
            sample = 200

            [tool.loopml.ci.gate]
            thresholds = { f1 = 0.7 }
            require_infra_check = false
            """
        ),
        encoding="utf-8",
    )
    lm.datasets.register("churn", churn())
    lm.datasets.set_schema("churn", lm.data.infer_schema(lm.datasets.get("churn")))
    return tmp_path


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["ci", *args], env=WIDE)


def row(output: str, check: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(check + " "))


def test_green_project_exits_0_with_a_summary_table(project: Path) -> None:
    result = invoke()
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"ML CI of {project}" in out
    assert "Check" in out and "Status" in out and "Detail" in out and "Seconds" in out
    assert "pytest -q: 1 passed" in row(out, "tests") and "passed" in row(out, "tests")
    assert "churn@v1 against its schema: passed" in row(out, "data")
    assert "completed on 200 rows" in row(out, "pipeline")
    assert "the evaluation accepted (no champion)" in row(out, "gate")
    assert "settings: " in out and "pyproject.toml [tool.loopml.ci]" in out
    assert "ML CI passed (4 passed)" in out


def test_failing_data_validation_exits_1_naming_it(project: Path) -> None:
    bad = churn(seed=1)
    bad.loc[:30, "x1"] = 50.0
    lm.datasets.register("churn", bad)
    result = invoke("--skip", "tests", "--skip", "pipeline")
    assert result.exit_code == 1, result.output
    assert "failed" in row(result.stdout, "data")
    assert "churn@v2 against its schema: FAILED" in row(result.stdout, "data")
    assert "error out_of_range x1: 31 values" in result.stdout
    assert "ML CI FAILED: data" in result.stdout


def test_failing_pipeline_exits_1_naming_the_step(project: Path) -> None:
    bad = churn(seed=2)
    bad.loc[:5, "x1"] = 50.0
    lm.datasets.register("churn", bad)
    result = invoke("--skip", "tests", "--skip", "data", "--sample", "1000")
    assert result.exit_code == 1, result.output
    assert "train run" in row(result.stdout, "pipeline")
    assert "failed on 300 rows: fit" in row(result.stdout, "pipeline")
    assert "step fit: ValueError: x1 is out of any sane range" in result.stdout
    assert "the pipeline did not produce a model" in row(result.stdout, "gate")
    assert "ML CI FAILED: pipeline" in result.stdout


def test_rejecting_gate_exits_1_with_its_reasons(project: Path) -> None:
    (project / "strict.toml").write_text(
        '[ci]\npipeline = "ci_train.py:train"\nskip = ["tests"]\n'
        "[ci.gate]\nthresholds = { accuracy = 0.999 }\n",
        encoding="utf-8",
    )
    result = invoke("--config", "strict.toml")
    assert result.exit_code == 1, result.output
    assert "the evaluation rejected (no champion)" in row(result.stdout, "gate")
    assert "gate failed:" in result.stdout
    assert "threshold accuracy >= 0.999" in result.stdout
    assert "ML CI FAILED: gate" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nope"], "dataset 'nope' does not exist"),
        (["--pipeline", "ci_train.py:nope"], "cannot load pipeline 'ci_train.py:nope'"),
        (["--pipeline", "missing.py:train"], "missing.py does not exist"),
        (["--skip", "lint"], "ci setting 'skip.0'"),
        (["--config", "absent.toml"], "config file absent.toml does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(project: Path, args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert "Check" not in result.stdout  # nothing ran


def test_bad_config_exits_2(project: Path) -> None:
    text = (project / "pyproject.toml").read_text(encoding="utf-8")
    (project / "pyproject.toml").write_text(text.replace("sample = 200", "smaple = 200"))
    result = invoke()
    assert result.exit_code == 2
    assert "ci setting 'smaple': Extra inputs are not permitted (known keys:" in result.output


def test_json_report(project: Path) -> None:
    result = invoke("--json", "--skip", "tests", "-p", "dataset=churn@v1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["failed"] == []
    assert [c["check"] for c in report["checks"]] == ["tests", "data", "pipeline", "gate"]
    pipeline = report["checks"][2]
    assert pipeline["data"]["params"] == {"dataset": "churn@v1"}
    assert report["checks"][3]["data"]["result"]["passed"] is True


def test_report_file_is_written_next_to_the_table(project: Path) -> None:
    result = invoke("--skip", "tests", "--skip", "pipeline", "--report", "ci-report.json")
    assert result.exit_code == 0, result.output
    assert "ML CI passed (1 passed, 3 skipped)" in result.stdout
    written = json.loads((project / "ci-report.json").read_text(encoding="utf-8"))
    assert written["passed"] is True and written["checks"][1]["status"] == "passed"
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []


def test_github_actions_workflow_runs_loopml_ci_on_push_schedule_and_dispatch(
    project: Path,
) -> None:
    path = Path(__file__).resolve().parents[3] / "deploy" / "github-actions-ml-ci.yml"
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert {"push", "schedule", "workflow_dispatch", "repository_dispatch"} <= set(triggers)
    steps = workflow["jobs"]["ml-ci"]["steps"]
    run = next(s["run"] for s in steps if s.get("name") == "loopml ci")
    assert 'loopml ci "${args[@]}"' in run and "${{" not in run
    summary = next(s["run"] for s in steps if s.get("name") == "Job summary")
    script = summary.split("<<'EOF' >> \"$GITHUB_STEP_SUMMARY\"\n", 1)[1].rsplit("EOF", 1)[0]
    assert invoke("--skip", "pipeline", "--report", "ml-ci-report.json").exit_code == 0
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("### ML CI passed")
    assert "| data | passed | churn@v1 against its schema: passed" in done.stdout
