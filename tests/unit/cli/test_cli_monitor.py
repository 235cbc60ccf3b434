"""``loopml monitor``: create, list, run, status, history and report, with their exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_helpers import Cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring"))

from monitor_helpers import MODEL, FakeSource, features_frame, register_model, window  # noqa: E402

cli = Cli()


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
    created = cli.ok(["monitor", "create", MODEL, "--window", "1d", "--rule", "drift_share > 0.3"])
    assert f"Saved monitor {MODEL}" in created and "last 1d" in created
    assert MODEL in cli.ok(["monitor", "list"])

    report = tmp_path / "run.html"
    ran = cli.ok(["monitor", "run", MODEL, "--html", str(report)])
    assert "alert" in ran and "charges" in ran and "churn@v1" in ran
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert drifting.calls[-1]["since"] is not None  # the saved 1d window was used

    as_json = json.loads(cli.ok(["monitor", "run", MODEL, "--json"]))
    assert as_json["verdict"] == "alert" and as_json["drift_share"] == 0.5
    failing = cli.invoke(["monitor", "run", MODEL, "--fail-on-alert"])
    assert failing.exit_code == 1, failing.output

    status = cli.ok(["monitor", "status", MODEL])
    assert "drift_share > 0.3" in status and "Firing alert" in status
    assert json.loads(cli.ok(["monitor", "status", MODEL, "--json"]))["verdict"] == "alert"
    history = cli.ok(["monitor", "history", MODEL, "-n", "2"])
    assert history.count("alert") >= 2
    assert len(json.loads(cli.ok(["monitor", "history", MODEL, "--json"]))) == 3

    written = cli.ok(["monitor", "report", MODEL, "--html", str(tmp_path / "r.html")])
    assert "Report written" in written and (tmp_path / "r.html").exists()
    cli.ok(["monitor", "report", MODEL])
    assert Path(f"{MODEL}-monitor.html").exists()


def test_create_from_yaml(drifting: FakeSource, tmp_path: Path) -> None:
    spec = tmp_path / "monitor.yaml"
    spec.write_text(
        "window: {last: 100}\nfeatures: [tenure]\nrules:\n  - f1 drop 0.05\n"
        "webhooks: ['http://127.0.0.1:9/hook']\n",
        encoding="utf-8",
    )
    saved = json.loads(cli.ok(["monitor", "create", MODEL, "-f", str(spec), "--json"]))
    assert saved["window"] == {"last": 100} and saved["features"] == ["tenure"]
    assert saved["rules"][0]["op"] == "drop" and saved["name"] == MODEL
    cli.ok(["monitor", "run", MODEL])
    assert drifting.calls[-1]["limit"] == 100


def test_errors_exit_2_with_one_line(drifting: FakeSource, tmp_path: Path) -> None:
    cli.fails(["monitor", "run", "nobody"], "no monitor named 'nobody'")
    cli.fails(["monitor", "status", "nobody"], "loopml monitor create nobody")
    cli.fails(["monitor", "create", "ghost"], "reference='<dataset>@v<N>'")
    cli.fails(["monitor", "create", MODEL, "--last", "5", "--window", "1d"], "not both")
    cli.fails(["monitor", "create", MODEL, "--window", "soon"], "must look like '30m'")
    cli.fails(["monitor", "create", MODEL, "--rule", "f1 falls 1"], "unknown rule operator")
    cli.fails(["monitor", "create", MODEL, "--reference", "nope@v1"], "nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("window: [1, 2\n", encoding="utf-8")
    cli.fails(["monitor", "create", MODEL, "-f", str(bad)], "not valid YAML")
    cli.fails(["monitor", "history", MODEL, "-n", "0"], "-n")
