"""``loopml monitor``: create, list, run, status, history and report, with their exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from loopml.cli.main import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring"))

from monitor_helpers import MODEL, FakeSource, features_frame, register_model, window  # noqa: E402

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _invoke(args: list[str]) -> Result:
    return runner.invoke(app, args, env=WIDE)


def _ok(args: list[str]) -> str:
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(args: list[str], message: str, code: int = 2) -> None:
    result = _invoke(args)
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def drifting(monkeypatch: pytest.MonkeyPatch) -> FakeSource:
    from loopml.monitoring import service
    from loopml.monitoring.alerts import Notifier

    register_model()
    source = FakeSource([window(features_frame(300, 1, shift=1.5))])
    monkeypatch.setattr(service, "_default_source", source)
    monkeypatch.setattr(service, "Notifier", lambda: Notifier(fire_event=lambda k, p: None))
    return source


def test_create_run_status_history_and_report(drifting: FakeSource, tmp_path: Path) -> None:
    created = _ok(["monitor", "create", MODEL, "--window", "1d", "--rule", "drift_share > 0.3"])
    assert f"Saved monitor {MODEL}" in created and "last 1d" in created
    assert MODEL in _ok(["monitor", "list"])

    report = tmp_path / "run.html"
    ran = _ok(["monitor", "run", MODEL, "--html", str(report)])
    assert "alert" in ran and "charges" in ran and "churn@v1" in ran
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert drifting.calls[-1]["since"] is not None  # the saved 1d window was used

    as_json = json.loads(_ok(["monitor", "run", MODEL, "--json"]))
    assert as_json["verdict"] == "alert" and as_json["drift_share"] == 0.5
    failing = _invoke(["monitor", "run", MODEL, "--fail-on-alert"])
    assert failing.exit_code == 1, failing.output

    status = _ok(["monitor", "status", MODEL])
    assert "drift_share > 0.3" in status and "Firing alert" in status
    assert json.loads(_ok(["monitor", "status", MODEL, "--json"]))["verdict"] == "alert"
    history = _ok(["monitor", "history", MODEL, "-n", "2"])
    assert history.count("alert") >= 2
    assert len(json.loads(_ok(["monitor", "history", MODEL, "--json"]))) == 3

    written = _ok(["monitor", "report", MODEL, "--html", str(tmp_path / "r.html")])
    assert "Report written" in written and (tmp_path / "r.html").exists()
    _ok(["monitor", "report", MODEL])
    assert Path(f"{MODEL}-monitor.html").exists()


def test_create_from_yaml(drifting: FakeSource, tmp_path: Path) -> None:
    spec = tmp_path / "monitor.yaml"
    spec.write_text(
        "window: {last: 100}\nfeatures: [tenure]\nrules:\n  - f1 drop 0.05\n"
        "webhooks: ['http://127.0.0.1:9/hook']\n",
        encoding="utf-8",
    )
    saved = json.loads(_ok(["monitor", "create", MODEL, "-f", str(spec), "--json"]))
    assert saved["window"] == {"last": 100} and saved["features"] == ["tenure"]
    assert saved["rules"][0]["op"] == "drop" and saved["name"] == MODEL
    _ok(["monitor", "run", MODEL])
    assert drifting.calls[-1]["limit"] == 100


def test_errors_exit_2_with_one_line(drifting: FakeSource, tmp_path: Path) -> None:
    _fails(["monitor", "run", "nobody"], "no monitor named 'nobody'")
    _fails(["monitor", "status", "nobody"], "loopml monitor create nobody")
    _fails(["monitor", "create", "ghost"], "reference='<dataset>@v<N>'")
    _fails(["monitor", "create", MODEL, "--last", "5", "--window", "1d"], "not both")
    _fails(["monitor", "create", MODEL, "--window", "soon"], "must look like '30m'")
    _fails(["monitor", "create", MODEL, "--rule", "f1 falls 1"], "unknown rule operator")
    _fails(["monitor", "create", MODEL, "--reference", "nope@v1"], "nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("window: [1, 2\n", encoding="utf-8")
    _fails(["monitor", "create", MODEL, "-f", str(bad)], "not valid YAML")
    _fails(["monitor", "history", MODEL, "-n", "0"], "-n")
