"""loopml.training.ci: configuration, planning and each check of the ML CI service."""

from __future__ import annotations

import shlex
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopml as lm
from loopml.errors import InvalidInput, NotFound
from loopml.pipelines import load_pipeline
from loopml.training.ci import CIConfig, CIReport, CIService, load_config

FLOW = textwrap.dedent(
    """
    from __future__ import annotations

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml as lm

    FEATURES = ["x1", "x2"]
    SEEN = {}


    @lm.step
    def load(dataset: str) -> pd.DataFrame:
        SEEN["dataset"] = dataset
        return lm.datasets.get(dataset)


    @lm.step
    def load_rows(sample: int) -> pd.DataFrame:
        SEEN["sample"] = sample
        return lm.datasets.get("churn").head(sample)


    @lm.step
    def fit(frame: pd.DataFrame, C: float) -> LogisticRegression:
        return LogisticRegression(C=C).fit(frame[FEATURES], frame["y"])


    @lm.step
    def score(model: LogisticRegression, frame: pd.DataFrame) -> dict:
        data = frame[FEATURES + ["y"]]
        return lm.evaluate(model, data, "y", log=False, latency_rows=3).to_dict()


    @lm.step(cache=False)
    def register(model: LogisticRegression, frame: pd.DataFrame) -> str:
        info = lm.log_model(model, "model", input_example=frame[FEATURES].head())
        version = lm.registry.register(info.uri, "churn-model")
        spec = f"churn-model/{version.version}"
        lm.evaluate(lm.models.load(spec), frame[FEATURES + ["y"]], "y", log=False, latency_rows=3)
        return spec


    @lm.step
    def explode(frame: pd.DataFrame) -> dict:
        raise ValueError("the training data has no positive rows")


    @lm.pipeline
    def train(dataset: str = "churn", C: float = 1.0):
        frame = load(dataset)
        return score(fit(frame, C), frame)


    @lm.pipeline
    def train_rows(sample: int = 100):
        frame = load_rows(sample)
        return score(fit(frame, 1.0), frame)


    @lm.pipeline
    def train_and_register(dataset: str = "churn"):
        frame = load(dataset)
        return register(fit(frame, 1.0), frame)


    @lm.pipeline
    def broken(sample: int = 100):
        return explode(load_rows(sample))


    @lm.pipeline
    def fixed_data():
        return explode(load_rows(5))


    strict_gate = lm.Gate(thresholds={"accuracy": 0.999}, require_infra_check=False)
    """
)


def churn(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=rows),
            "x2": rng.normal(size=rows),
            "plan": rng.choice(["basic", "pro"], rows),
        }
    )
    frame["y"] = (frame["x1"] + 0.5 * frame["x2"] + rng.normal(scale=0.3, size=rows) > 0).astype(
        int
    )
    return frame


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (the cwd) with the pipelines module and a dataset with a schema."""
    # ``ci_flow:...`` imports by module name: never reuse another test's module.
    monkeypatch.delitem(sys.modules, "ci_flow", raising=False)
    (tmp_path / "ci_flow.py").write_text(FLOW, encoding="utf-8")
    lm.datasets.register("churn", churn())
    lm.datasets.set_schema("churn", lm.data.infer_schema(lm.datasets.get("churn")))
    return tmp_path


def service() -> CIService:
    return CIService(lm.datasets.get_service(), lm.registry.get_service(), load_pipeline)


def run(project: Path, **settings: object) -> CIReport:
    config = load_config(project, overrides={"skip": ["tests"], **settings})
    return service().run(config)


def statuses(report: CIReport) -> dict[str, str]:
    return {check.check: check.status for check in report.checks}


def by_name(report: CIReport, name: str) -> dict[str, object]:
    return next(c.to_dict() for c in report.checks if c.check == name)


# -- configuration ---------------------------------------------------------------------------
def test_reads_pyproject_and_flags_override_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.loopml.ci]\ndataset = "churn"\nsample = 50\n[tool.loopml.ci.gate]\n'
        "thresholds = { f1 = 0.8 }\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path, overrides={"sample": 20, "model": None})
    assert (config.dataset, config.sample, config.gate) == (
        "churn",
        20,
        {"thresholds": {"f1": 0.8}},
    )
    assert config.source.endswith("pyproject.toml [tool.loopml.ci]")


def test_loopml_toml_comes_before_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.loopml.ci]\ndataset = "a"\n', encoding="utf-8")
    (tmp_path / "loopml.toml").write_text('[ci]\ndataset = "b"\n', encoding="utf-8")
    assert load_config(tmp_path).dataset == "b"
    assert load_config(tmp_path, config_file=tmp_path / "pyproject.toml").dataset == "a"


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        ('[ci]\ndatset = "churn"\n', "datset", "known keys: tests"),
        ("[ci]\nsample = 0\n", "sample", "greater than or equal to 1"),
        ('[ci]\nskip = ["lint"]\n', "skip.0", "'tests', 'data', 'pipeline' or 'gate'"),
        ("[ci]\nsample = [", "config", "not valid TOML"),
        ("[ci]\ngate = 3\n", "gate", "int is not one of the accepted types"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, field: str, needle: str) -> None:
    (tmp_path / "loopml.toml").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=needle) as info:
        load_config(tmp_path)
    assert info.value.field == field


def test_missing_config_file_and_section(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_config(tmp_path, config_file=tmp_path / "nope.toml")
    (tmp_path / "other.toml").write_text("[tool.ruff]\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"no \[ci\] or \[tool.loopml.ci\] section"):
        load_config(tmp_path, config_file=tmp_path / "other.toml")
    with pytest.raises(InvalidInput, match="project folder"):
        load_config(tmp_path / "missing")


# -- planning: configuration mistakes raise before anything runs -----------------------------
def test_configuration_mistakes_raise_before_any_check(project: Path) -> None:
    with pytest.raises(NotFound, match="dataset 'nope' does not exist"):
        run(project, dataset="nope")
    lm.datasets.register("raw", churn(50))
    with pytest.raises(InvalidInput, match="no schema attached: attach one with"):
        run(project, dataset="raw")
    with pytest.raises(InvalidInput, match="cannot load pipeline"):
        run(project, pipeline="ci_flow:nope")
    with pytest.raises(InvalidInput, match="neither a 'sample' nor a 'dataset' parameter"):
        run(project, pipeline="ci_flow.py:fixed_data")
    with pytest.raises(InvalidInput, match="gate has no parameter 'threshold'"):
        run(project, pipeline="ci_flow.py:train", gate={"threshold": {"f1": 1}})
    with pytest.raises(InvalidInput, match="nothing to check"):
        run(project)
    with pytest.raises(InvalidInput, match="'missing-tool' is not on PATH"):
        run(project, tests="missing-tool -q", skip=["data"], dataset="churn")
    assert lm.datasets.versions("churn")[-1].version == 1
    assert not [d for d in lm.datasets.list() if d.name.endswith(".ci-sample")]


# -- the checks ------------------------------------------------------------------------------
def test_green_project_samples_the_dataset_once(project: Path) -> None:
    report = run(project, dataset="churn", pipeline="ci_flow.py:train", sample=150)
    assert report.passed and statuses(report) == {
        "tests": "skipped",
        "data": "passed",
        "pipeline": "passed",
        "gate": "passed",
    }
    data = by_name(report, "data")
    assert "churn@v1 against its schema: passed" in str(data["detail"])
    pipeline = by_name(report, "pipeline")
    assert pipeline["data"]["params"]["dataset"] == "churn.ci-sample@v1"  # type: ignore[index]
    assert "completed on 150 rows" in str(pipeline["detail"])
    assert lm.datasets.resolve("churn.ci-sample").num_rows == 150
    gate = by_name(report, "gate")
    assert "the evaluation accepted (no champion)" in str(gate["detail"])
    again = run(project, dataset="churn", pipeline="ci_flow.py:train", sample=150)
    assert again.passed and len(lm.datasets.versions("churn.ci-sample")) == 1
    assert "3 steps, 3 cached" in str(by_name(again, "pipeline")["detail"])


def test_small_datasets_are_passed_whole_and_sample_parameters_get_the_rows(
    project: Path,
) -> None:
    whole = run(project, dataset="churn", pipeline="ci_flow.py:train", sample=5000)
    assert by_name(whole, "pipeline")["data"]["params"]["dataset"] == "churn@v1"  # type: ignore[index]
    rows = run(project, pipeline="ci_flow.py:train_rows", sample=120, skip=["tests", "data"])
    assert rows.passed and by_name(rows, "pipeline")["data"]["params"] == {"sample": 120}  # type: ignore[index]
    assert statuses(rows)["data"] == "skipped"


def test_failing_validation_fails_the_data_check_with_its_anomalies(project: Path) -> None:
    bad = churn(200, seed=1)
    bad.loc[:20, "x1"] = 40.0
    bad.loc[:60, "plan"] = "enterprise"
    lm.datasets.register("churn", bad)
    report = run(project, dataset="churn", reference="churn@v1")
    assert report.failed == ["data"]
    data = by_name(report, "data")
    assert "churn@v2 against its schema and churn@v1: FAILED" in str(data["detail"])
    lines = "\n".join(data["lines"])  # type: ignore[arg-type]
    assert "error out_of_range x1" in lines and "error unseen_category plan" in lines
    assert lm.datasets.describe("churn", 2)["validations"]


def test_failing_pipeline_names_the_step_and_skips_the_gate(project: Path) -> None:
    report = run(project, pipeline="ci_flow.py:broken", sample=50)
    assert report.failed == ["pipeline"] and statuses(report)["gate"] == "skipped"
    pipeline = by_name(report, "pipeline")
    assert "failed on 50 rows: explode" in str(pipeline["detail"])
    assert pipeline["lines"] == ["step explode: ValueError: the training data has no positive rows"]


@pytest.mark.parametrize(
    ("source", "reference", "check", "message"),
    [
        pytest.param(
            "import loopml as lm\n\n@lm.pipeline\ndef odd(sample: int = 1):\n"
            "    raise RuntimeError('bad graph')\n",
            "odd_flow.py:odd",
            "pipeline",
            "RuntimeError: bad graph",
            id="raises-while-building",
        ),
        pytest.param(
            "import loopml as lm\n\n@lm.step\ndef n(sample: int) -> int:\n    return sample\n\n"
            "@lm.pipeline\ndef plain(sample: int = 1):\n    return n(sample)\n",
            "plain_flow.py:plain",
            "gate",
            "must return a registered model version ('churn/7') or an evaluation",
            id="output-not-a-candidate",
        ),
    ],
)
def test_a_flow_that_goes_wrong_fails_the_check_at_fault(
    project: Path, source: str, reference: str, check: str, message: str
) -> None:
    (project / reference.split(":")[0]).write_text(source, encoding="utf-8")
    report = run(project, pipeline=reference)
    assert report.failed == [check]
    assert message in str(by_name(report, check)["detail"])


def test_gate_rejects_against_the_champions_evaluation(project: Path) -> None:
    first = run(project, dataset="churn", pipeline="ci_flow.py:train_and_register")
    assert first.passed, first.to_dict()
    assert by_name(first, "gate")["data"]["candidate"] == "churn-model/1"  # type: ignore[index]
    lm.registry.set_alias("churn-model", "champion", 1, reason="first")
    champion = lm.registry.get_model_version("churn-model", 1)
    assert champion.gate is not None and champion.gate["passed"] is True
    report = run(
        project,
        dataset="churn",
        pipeline="ci_flow.py:train",
        model="churn-model",
        sample=100,
        gate={"min_improvement": {"f1": 0.5}},
    )
    assert report.failed == ["gate"]
    gate = by_name(report, "gate")
    assert "the evaluation rejected (vs churn-model/1): 1 of" in str(gate["detail"])
    assert gate["lines"] == [
        next(r for r in gate["data"]["result"]["reasons"] if not r["passed"])["message"]
    ]  # type: ignore[index]


def test_gate_can_be_an_lm_gate_in_the_project(project: Path) -> None:
    report = run(project, pipeline="ci_flow.py:train_rows", gate="ci_flow:strict_gate")
    assert report.failed == ["gate"]
    assert "threshold accuracy >= 0.999" in str(by_name(report, "gate")["detail"])


def test_tests_check_runs_the_command_in_the_project(project: Path) -> None:
    ok = f"{shlex.quote(sys.executable)} -c \"print('3 passed in 0.1s')\""
    report = run(project, tests=ok, skip=[], dataset="churn")
    assert statuses(report)["tests"] == "passed"
    assert by_name(report, "tests")["detail"] == f"{ok}: 3 passed in 0.1s"
    failing = (
        f"{shlex.quote(sys.executable)} -c \"import sys; print('FAILED test_x'); "
        "print('1 failed'); sys.exit(1)\""
    )
    report = run(project, tests=failing, skip=[], dataset="churn", fail_fast=True)
    assert statuses(report) == {
        "tests": "failed",
        "data": "skipped",
        "pipeline": "skipped",
        "gate": "skipped",
    }
    tests = by_name(report, "tests")
    assert "exit code 1: 1 failed" in str(tests["detail"])
    assert tests["lines"] == ["FAILED test_x", "1 failed"]
    assert by_name(report, "data")["detail"] == "skipped after a failure"


def test_default_tests_command_needs_a_tests_folder(project: Path) -> None:
    config = load_config(project, overrides={"dataset": "churn"})
    plan = service().plan(config)
    assert plan.skipped["tests"] == "no tests/ folder and no tests command"
    (project / "tests").mkdir()
    plan = service().plan(config)
    assert plan.tests == [sys.executable, "-m", "pytest", "-q"] and "tests" not in plan.skipped


def test_report_is_json_able() -> None:
    report = CIReport([], "/p", "flags only")
    assert report.to_dict() == {
        "passed": True,
        "failed": [],
        "project": "/p",
        "config": "flags only",
        "checks": [],
    }
    assert CIConfig().sample == 1000
