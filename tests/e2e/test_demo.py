"""The demo end to end: train, log everything, then find it all again through the SDK and CLI."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

import loopml as lm
from loopml.cli.main import app

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
EPOCHS = 12


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loopml_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return load_demo()


def test_demo_run_is_complete(
    demo: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = demo.main(["--epochs", str(EPOCHS), "--run-name", "e2e"])

    summary = capsys.readouterr().out
    assert run_id in summary and "test accuracy" in summary
    assert "loopml runs list" in summary and "loopml server" in summary

    run = lm.get_run(run_id)
    assert run.status is lm.RunStatus.FINISHED
    assert run.run_name == "e2e"
    assert lm.get_service().get_experiment(run.experiment_id).name == "demo"
    assert run.params["model"] == "SGDClassifier"
    assert run.params["loss"] == "log_loss"
    assert run.params["epochs"] == str(EPOCHS)

    service = lm.get_service()
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_f1"):
        history = service.get_metric_history(run_id, key)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1)), key
    assert len(service.get_metric_history(run_id, "val_loss")) >= 10
    assert run.metrics["test_accuracy"] > 0.9
    assert {"test_loss", "test_f1"} <= set(run.metrics)

    paths = {entry.path for entry in service.list_artifacts(run_id)}
    assert {"learning_curve.html", "confusion_matrix.parquet", "model/model.skops"} <= paths
    pytest.importorskip("matplotlib")
    assert "learning_curve.png" in paths

    # The artifacts are usable: the table reads back, the model loads without pickle.
    import pandas as pd
    import skops.io
    from sklearn.datasets import load_breast_cancer

    service.download_artifacts(run_id, ".", tmp_path / "artifacts")
    table = pd.read_parquet(tmp_path / "artifacts" / "confusion_matrix.parquet")
    assert list(table.columns) == ["actual", "predicted_malignant", "predicted_benign"]
    assert int(table[["predicted_malignant", "predicted_benign"]].to_numpy().sum()) == int(
        run.params["n_test"]
    )
    model_file = tmp_path / "artifacts" / "model" / "model.skops"
    assert skops.io.get_untrusted_types(file=model_file) == []
    model = skops.io.load(model_file)
    data = load_breast_cancer()
    assert (model.predict(data.data) == data.target).mean() > 0.9
    html = (tmp_path / "artifacts" / "learning_curve.html").read_text(encoding="utf-8")
    assert "Learning curve" in html

    listed = CliRunner().invoke(app, ["runs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert run_id in [r["run_id"] for r in json.loads(listed.stdout)]
    shown = CliRunner().invoke(app, ["runs", "show", run_id[:8]], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "model/model.skops" in shown.stdout


def test_demo_refuses_zero_epochs(demo: ModuleType) -> None:
    with pytest.raises(SystemExit) as exited:
        demo.main(["--epochs", "0"])
    assert exited.value.code == 2
