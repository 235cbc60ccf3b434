"""The demo's whole loop on a reduced replay: serve, monitor, retrain, gate, canary, promote."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from typer.testing import CliRunner

import loopml as lm
from conftest import service_missing
from loopml.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Six weeks from April 1st hold the first accuracy alert (its candidate is rejected), a
#: second one whose candidate passes and is canaried, and the canary's promotion.
WEEKS = 6


@pytest.fixture(scope="module")
def demo() -> Iterator[ModuleType]:
    if importlib.util.find_spec("ISLP") is None:
        service_missing("the demo's data needs ISLP: pip install --no-deps ISLP")
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("demo")
    finally:
        sys.path.remove(str(EXAMPLES))


def _kinds(events: list[lm.loop.LoopEvent]) -> list[str]:
    return [event.kind for event in events]


@pytest.mark.slow
def test_demo_closes_the_loop_on_a_reduced_replay(
    demo: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.html"
    result = demo.main(
        ["--weeks", str(WEEKS), "--trials", "2", "--tag", "e2e", "--report", str(report)]
    )
    out = capsys.readouterr().out
    names = result.names
    assert (names.model, names.policy, names.data) == ("bikeshare-e2e", "bikes-e2e", "bikes-e2e")
    assert len(result.weeks) == WEEKS
    assert all(week.requests > 160 for week in result.weeks)

    # Monitoring fired a degradation alert and the loop acted on it, step by step.
    kinds = _kinds(result.history)
    for kind in ("triggered", "window_built", "trained", "gate_passed", "canary_started"):
        assert kind in kinds, kinds
    assert kinds.index("triggered") < kinds.index("trained") < kinds.index("canary_started")
    triggered = next(e for e in result.history if e.kind == "triggered")
    assert triggered.evidence["trigger"]["type"] == "degradation"
    assert any(week.alerts == ["accuracy drop 0.05"] for week in result.weeks)
    assert "failed" not in kinds

    # The canary was promoted by the model server; the champion moved to it.
    promoted = [e for e in result.history if e.kind == "promoted"]
    assert len(promoted) == 1, kinds
    version = int(promoted[0].evidence["to_version"])
    assert result.champion == version != result.first_version
    assert lm.registry.resolve(f"{names.model}@champion").version == version
    last = result.weeks[-1]
    assert f"v{version}" in last.versions

    # A candidate the gate rejected never answered a request.
    rejected = {
        int(e.evidence["candidate_version"]) for e in result.history if e.kind == "gate_rejected"
    }
    served = {v for week in result.weeks for v in week.versions}
    assert not {f"v{v}" for v in rejected} & served

    # Accuracy recovers: the promoted model beats the first one on the last week's hours.
    import demo_bikes

    data = demo_bikes.load_bikeshare()
    hours = data[(data["ts"] >= last.start) & (data["ts"] < last.end)]
    fresh = demo_bikes.accuracy(lm.models.load(f"{names.model}/{version}"), hours)
    stale = demo_bikes.accuracy(lm.models.load(f"{names.model}/{result.first_version}"), hours)
    assert fresh > stale + 0.03

    # The summary, the report, and a server that is gone.
    assert "trained once" in out and "served" in out and "promoted" in out
    assert str(report) in out.replace("\n", "")
    assert result.report == report
    html = report.read_text(encoding="utf-8")
    assert "plotly" in html and names.model in html and "canary_started" in html
    assert [row["month"] for row in result.summary.to_dict("records")] == ["2011-04", "2011-05"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{result.url}/health", timeout=2)

    # Everything it did is on record for the CLI.
    runner = CliRunner()
    listed = runner.invoke(app, ["loop", "history", names.policy, "--json"])
    assert listed.exit_code == 0, listed.output
    assert "promoted" in [event["kind"] for event in json.loads(listed.stdout)]
    audit = runner.invoke(app, ["models", "audit", names.model], env={"COLUMNS": "200"})
    assert audit.exit_code == 0 and "loopml-loop" in audit.stdout

    # A second run on the same home starts from scratch beside the first one.
    again = demo.main(["--weeks", "1", "--trials", "1", "--quiet", "--no-infra-check"])
    assert again.names.tag != "e2e" and len(again.weeks) == 1
    assert lm.registry.resolve(f"{again.names.model}@champion").version == 1
    assert lm.registry.resolve(f"{names.model}@champion").version == version
    assert lm.datasets.resolve(names.data).version == WEEKS + 1


def test_demo_refuses_bad_options(demo: ModuleType) -> None:
    for argv in (["--weeks", "0"], ["--requests", "500"], ["--canary-share", "1.5"]):
        with pytest.raises(SystemExit) as exited:
            demo.main(argv)
        assert exited.value.code == 2


# -- the tracking-only demo (examples/demo_tracking.py) -----------------------------------
TRACKING_EPOCHS = 12


@pytest.fixture(scope="module")
def tracking_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "loopml_demo_tracking", EXAMPLES / "demo_tracking.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_tracking_demo_run_is_complete(
    tracking_demo: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = tracking_demo.main(["--epochs", str(TRACKING_EPOCHS), "--run-name", "e2e"])

    summary = capsys.readouterr().out
    assert run_id in summary and "test accuracy" in summary
    run = lm.get_run(run_id)
    assert run.status is lm.RunStatus.FINISHED
    assert run.run_name == "e2e"
    assert lm.get_service().get_experiment(run.experiment_id).name == "demo"
    assert run.params["epochs"] == str(TRACKING_EPOCHS)
    service = lm.get_service()
    history = service.get_metric_history(run_id, "val_loss")
    assert [m.step for m in history] == list(range(1, TRACKING_EPOCHS + 1))
    assert run.metrics["test_accuracy"] > 0.9
    paths = {entry.path for entry in service.list_artifacts(run_id)}
    assert {"learning_curve.html", "confusion_matrix.parquet", "model/model.skops"} <= paths

    import skops.io

    service.download_artifacts(run_id, ".", tmp_path / "artifacts")
    model_file = tmp_path / "artifacts" / "model" / "model.skops"
    assert skops.io.get_untrusted_types(file=model_file) == []
    listed = CliRunner().invoke(app, ["runs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert run_id in [r["run_id"] for r in json.loads(listed.stdout)]


def test_tracking_demo_refuses_zero_epochs(tracking_demo: ModuleType) -> None:
    with pytest.raises(SystemExit) as exited:
        tracking_demo.main(["--epochs", "0"])
    assert exited.value.code == 2
