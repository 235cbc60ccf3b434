"""``loopml models``: list, show, versions, version, register, alias, archive, tag, audit, card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import Cli
from sklearn.linear_model import LogisticRegression

import loopml as lm
from loopml.tracking.system import current_user

cli = Cli()


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
    assert "No registered models yet" in cli.ok(["models", "list"])
    registered = cli.ok(["models", "register", model_uri, "churn-model", "--description", "base"])
    assert f"Registered churn-model v1 from {model_uri}." in registered
    as_json = json.loads(
        cli.ok(["models", "register", model_uri, "churn-model", "--tag", "team=risk", "--json"])
    )
    assert as_json["version"] == 2 and as_json["tags"] == {"team": "risk"}
    assert as_json["datasets"] == ["churn@v1"] and as_json["user"] == current_user()

    listed = json.loads(cli.ok(["models", "list", "--json"]))
    assert [(m["name"], m["latest_version"]) for m in listed] == [("churn-model", 2)]
    assert "churn-model" in cli.ok(["models", "list"])

    shown = cli.ok(["models", "show", "churn-model"])
    assert "Registered model" in shown and "Latest version" in shown and "sklearn" in shown
    detail = json.loads(cli.ok(["models", "show", "churn-model", "--json"]))
    assert detail["latest_version"] == 2 and detail["latest"]["version"] == 2

    table = cli.ok(["models", "versions", "churn-model"])
    assert "READY" in table and model_uri.split("/")[1][:8] in table
    assert "accuracy=0.9, auc=0.95, f1=0.91, +1" in table
    versions = json.loads(cli.ok(["models", "versions", "churn-model", "--json"]))
    assert [v["version"] for v in versions] == [1, 2]

    one = cli.ok(["models", "version", "churn-model", "1"])
    for text in ("models:/churn-model/1", "churn@v1", "tenure", "charges", "log_loss", "base"):
        assert text in one
    assert json.loads(cli.ok(["models", "version", "churn-model", "2", "--json"]))["version"] == 2
    assert json.loads(cli.ok(["models", "show", "churn-model/1", "--json"]))["version"] == 1
    assert "models:/churn-model/2" in cli.ok(["models", "show", "churn-model@latest"])


def test_aliases_archive_tags_and_audit(model_uri: str) -> None:
    for _ in range(2):
        cli.ok(["models", "register", model_uri, "churn-model"])
    assert "churn-model@challenger → v2." in cli.ok(
        ["models", "alias", "set", "churn-model", "challenger", "2"]
    )
    cli.fails(["models", "alias", "set", "churn-model", "champion", "1"], "needs a reason")
    cli.ok(["models", "alias", "set", "churn-model", "champion", "1", "--reason", "first"])
    moved = cli.ok(["models", "alias", "set", "churn-model", "champion", "2", "--reason", "better"])
    assert "churn-model@champion → v2 (was v1)." in moved
    assert "champion → v2" in cli.ok(["models", "show", "churn-model"])
    shown = json.loads(cli.ok(["models", "show", "churn-model@champion", "--json"]))
    assert shown["version"] == 2 and shown["aliases"] == ["challenger", "champion"]

    removed = cli.ok(["models", "alias", "delete", "churn-model", "challenger", "--reason", "done"])
    assert "Removed churn-model@challenger (was v2)." in removed
    cli.fails(["models", "archive", "churn-model", "2"], "move them first")
    assert "Archived churn-model v1." in cli.ok(
        ["models", "archive", "churn-model", "1", "--reason", "superseded"]
    )
    cli.fails(["models", "alias", "set", "churn-model", "shadow", "1"], "only READY versions")
    assert "ARCHIVED" in cli.ok(["models", "versions", "churn-model"])
    assert "Restored churn-model v1." in cli.ok(["models", "restore", "churn-model", "1"])

    assert "Tagged churn-model with team=risk." in cli.ok(
        ["models", "tag", "churn-model", "team", "risk"]
    )
    cli.ok(["models", "tag", "churn-model", "checked", "yes", "--version", "2"])
    assert json.loads(cli.ok(["models", "show", "churn-model", "--json"]))["tags"] == {
        "team": "risk"
    }
    assert json.loads(cli.ok(["models", "version", "churn-model", "2", "--json"]))["tags"] == {
        "checked": "yes"
    }

    entries = json.loads(cli.ok(["models", "audit", "churn-model", "--json"]))
    assert {e["user"] for e in entries} == {current_user()}
    champion = [
        (e["from_value"], e["to_value"], e["reason"])
        for e in entries
        if e["action"] == "set_alias:champion"
    ]
    assert champion == [(None, "1", "first"), ("1", "2", "better")]
    table = cli.ok(["models", "audit", "churn-model"])
    for text in ("set_alias:champion", "better", "superseded", "delete_alias:challenger"):
        assert text in table


def test_model_card(model_uri: str, tmp_path: Path) -> None:
    cli.ok(["models", "register", model_uri, "churn-model", "--description", "first cut"])
    markdown = cli.ok(["models", "card", "churn-model", "1"])
    assert markdown.startswith("# Model card: churn-model v1\n")
    assert "first cut" in markdown and "- churn@v1" in markdown and "| f1 | 0.91 |" in markdown
    target = tmp_path / "cards" / "churn.html"
    assert "Model card written to" in cli.ok(
        ["models", "card", "churn-model", "1", "--html", "--out", str(target)]
    )
    assert "<h1>Model card: churn-model v1</h1>" in target.read_text()
    assert not list(target.parent.glob(".*.partial"))


def test_errors_exit_2_with_one_line(model_uri: str) -> None:
    cli.fails(["models", "show", "nope"], "does not exist")
    cli.fails(["models", "versions", "nope"], "does not exist")
    cli.fails(["models", "register", "s3://bucket/model", "x"], "is not a runs:/")
    cli.fails(["models", "register", model_uri, "bad name"], "may only contain")
    cli.fails(["models", "tag", "churn-model", "k", "v", "--version", "1"], "does not exist")
    cli.ok(["models", "register", model_uri, "churn-model"])
    cli.fails(["models", "version", "churn-model", "9"], "has no version 9")
    cli.fails(["models", "show", "churn-model@nobody"], "nobody")
    cli.fails(["models", "alias", "set", "churn-model", "Bad", "1"], "lowercase")
    cli.fails(["models", "alias", "delete", "churn-model", "nobody"], "nobody")
    cli.fails(["models", "card", "churn-model", "9"], "has no version 9")
    assert cli.invoke(["models", "version", "churn-model", "0"]).exit_code == 2


def test_help() -> None:
    text = cli.ok(["models", "--help"])
    for command in ("list", "show", "versions", "version", "register", "alias", "audit", "card"):
        assert command in text
    assert "set" in cli.ok(["models", "alias", "--help"])


def test_refuses_a_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_TRACKING_URI", "http://127.0.0.1:9")
    cli.fails(["models", "list"], "LOOPML_STORE_URI")
