"""``loopml models``: list, show, versions, version, register, alias, archive, tag, audit, card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import loopml as lm
from loopml.cli.main import app
from loopml.tracking.system import current_user

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _invoke(args: list[str]) -> Result:
    return runner.invoke(app, args, env=WIDE)


def _ok(args: list[str]) -> str:
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(args: list[str], message: str) -> None:
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def model_uri() -> str:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"tenure": rng.integers(0, 72, 150), "charges": rng.normal(70, 20, 150)})
    target = (frame.charges > 70).astype(int)
    lm.datasets.register("churn", frame.assign(churned=target))
    with lm.start_run():
        lm.datasets.get("churn")
        lm.log_metrics({"f1": 0.91, "accuracy": 0.9, "auc": 0.95, "log_loss": 0.3})
        info = lm.log_model(LogisticRegression().fit(frame, target), "model", input_example=frame)
    return info.uri


def test_register_list_show_and_versions(model_uri: str) -> None:
    assert "No registered models yet" in _ok(["models", "list"])
    registered = _ok(["models", "register", model_uri, "churn-model", "--description", "base"])
    assert f"Registered churn-model v1 from {model_uri}." in registered
    as_json = json.loads(
        _ok(["models", "register", model_uri, "churn-model", "--tag", "team=risk", "--json"])
    )
    assert as_json["version"] == 2 and as_json["tags"] == {"team": "risk"}
    assert as_json["datasets"] == ["churn@v1"] and as_json["user"] == current_user()

    listed = json.loads(_ok(["models", "list", "--json"]))
    assert [(m["name"], m["latest_version"]) for m in listed] == [("churn-model", 2)]
    assert "churn-model" in _ok(["models", "list"])

    shown = _ok(["models", "show", "churn-model"])
    assert "Registered model" in shown and "Latest version" in shown and "sklearn" in shown
    detail = json.loads(_ok(["models", "show", "churn-model", "--json"]))
    assert detail["latest_version"] == 2 and detail["latest"]["version"] == 2

    table = _ok(["models", "versions", "churn-model"])
    assert "READY" in table and model_uri.split("/")[1][:8] in table
    assert "accuracy=0.9, auc=0.95, f1=0.91, +1" in table
    versions = json.loads(_ok(["models", "versions", "churn-model", "--json"]))
    assert [v["version"] for v in versions] == [1, 2]

    one = _ok(["models", "version", "churn-model", "1"])
    for text in ("models:/churn-model/1", "churn@v1", "tenure", "charges", "log_loss", "base"):
        assert text in one
    assert json.loads(_ok(["models", "version", "churn-model", "2", "--json"]))["version"] == 2
    assert json.loads(_ok(["models", "show", "churn-model/1", "--json"]))["version"] == 1
    assert "models:/churn-model/2" in _ok(["models", "show", "churn-model@latest"])


def test_aliases_archive_tags_and_audit(model_uri: str) -> None:
    for _ in range(2):
        _ok(["models", "register", model_uri, "churn-model"])
    assert "churn-model@challenger → v2." in _ok(
        ["models", "alias", "set", "churn-model", "challenger", "2"]
    )
    _fails(["models", "alias", "set", "churn-model", "champion", "1"], "needs a reason")
    _ok(["models", "alias", "set", "churn-model", "champion", "1", "--reason", "first"])
    moved = _ok(["models", "alias", "set", "churn-model", "champion", "2", "--reason", "better"])
    assert "churn-model@champion → v2 (was v1)." in moved
    assert "champion → v2" in _ok(["models", "show", "churn-model"])
    shown = json.loads(_ok(["models", "show", "churn-model@champion", "--json"]))
    assert shown["version"] == 2 and shown["aliases"] == ["challenger", "champion"]

    removed = _ok(["models", "alias", "delete", "churn-model", "challenger", "--reason", "done"])
    assert "Removed churn-model@challenger (was v2)." in removed
    _fails(["models", "archive", "churn-model", "2"], "move them first")
    assert "Archived churn-model v1." in _ok(
        ["models", "archive", "churn-model", "1", "--reason", "superseded"]
    )
    _fails(["models", "alias", "set", "churn-model", "shadow", "1"], "only READY versions")
    assert "ARCHIVED" in _ok(["models", "versions", "churn-model"])
    assert "Restored churn-model v1." in _ok(["models", "restore", "churn-model", "1"])

    assert "Tagged churn-model with team=risk." in _ok(
        ["models", "tag", "churn-model", "team", "risk"]
    )
    _ok(["models", "tag", "churn-model", "checked", "yes", "--version", "2"])
    assert json.loads(_ok(["models", "show", "churn-model", "--json"]))["tags"] == {"team": "risk"}
    assert json.loads(_ok(["models", "version", "churn-model", "2", "--json"]))["tags"] == {
        "checked": "yes"
    }

    entries = json.loads(_ok(["models", "audit", "churn-model", "--json"]))
    assert {e["user"] for e in entries} == {current_user()}
    champion = [
        (e["from_value"], e["to_value"], e["reason"])
        for e in entries
        if e["action"] == "set_alias:champion"
    ]
    assert champion == [(None, "1", "first"), ("1", "2", "better")]
    table = _ok(["models", "audit", "churn-model"])
    for text in ("set_alias:champion", "better", "superseded", "delete_alias:challenger"):
        assert text in table


def test_model_card(model_uri: str, tmp_path: Path) -> None:
    _ok(["models", "register", model_uri, "churn-model", "--description", "first cut"])
    markdown = _ok(["models", "card", "churn-model", "1"])
    assert markdown.startswith("# Model card: churn-model v1\n")
    assert "first cut" in markdown and "- churn@v1" in markdown and "| f1 | 0.91 |" in markdown
    target = tmp_path / "cards" / "churn.html"
    assert "Model card written to" in _ok(
        ["models", "card", "churn-model", "1", "--html", "--out", str(target)]
    )
    assert "<h1>Model card: churn-model v1</h1>" in target.read_text()
    assert not list(target.parent.glob(".*.partial"))


def test_errors_exit_2_with_one_line(model_uri: str) -> None:
    _fails(["models", "show", "nope"], "does not exist")
    _fails(["models", "versions", "nope"], "does not exist")
    _fails(["models", "register", "s3://bucket/model", "x"], "is not a runs:/")
    _fails(["models", "register", model_uri, "bad name"], "may only contain")
    _fails(["models", "tag", "churn-model", "k", "v", "--version", "1"], "does not exist")
    _ok(["models", "register", model_uri, "churn-model"])
    _fails(["models", "version", "churn-model", "9"], "has no version 9")
    _fails(["models", "show", "churn-model@nobody"], "nobody")
    _fails(["models", "alias", "set", "churn-model", "Bad", "1"], "lowercase")
    _fails(["models", "alias", "delete", "churn-model", "nobody"], "nobody")
    _fails(["models", "card", "churn-model", "9"], "has no version 9")
    assert _invoke(["models", "version", "churn-model", "0"]).exit_code == 2


def test_help() -> None:
    text = _ok(["models", "--help"])
    for command in ("list", "show", "versions", "version", "register", "alias", "audit", "card"):
        assert command in text
    assert "set" in _ok(["models", "alias", "--help"])


def test_refuses_a_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_TRACKING_URI", "http://127.0.0.1:9")
    _fails(["models", "list"], "LOOPML_STORE_URI")
