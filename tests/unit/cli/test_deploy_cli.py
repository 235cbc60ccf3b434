"""``loopml deploy``: apply, status, history, list and serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli

import loopml as lm
from conftest import register_iris
from loopml.store.base import DeploymentEvent

cli = Cli()


DEPLOYMENT = """\
name: iris-api
model: iris
sticky_key: X-User-Id
variants:
  - {name: blue, model: champion, weight: 90}
  - {name: green, model: 2, weight: 10}
  - {name: next, model: 2, role: canary}
canary: {share: 0.2, duration: 10m, min_requests: 200, max_error_rate: 0.05}
on_alias_move: canary
"""


@pytest.fixture
def iris() -> None:
    register_iris()
    lm.registry.register(lm.registry.resolve("iris/1").source, "iris")


def _write(tmp_path: Path, text: str, name: str = "deployment.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_apply_status_history_and_list(iris: None, tmp_path: Path) -> None:
    path = _write(tmp_path, DEPLOYMENT)
    out = cli.ok(["deploy", "apply", path])
    assert "Applied iris-api revision 1: blue primary 72% → iris@champion (v1)" in out
    assert "next canary 20% → iris/2 (v2)" in out
    applied = json.loads(cli.ok(["deploy", "apply", path, "--json"]))
    assert applied["revision"] == 2 and applied["versions"] == {"blue": 1, "green": 2, "next": 2}
    assert applied["config"]["canary"]["duration"] == 600.0

    status = json.loads(cli.ok(["deploy", "status", "iris-api", "--json"]))
    assert status["revision"] == 2
    shares = {v["name"]: v["share"] for v in status["variants"]}
    assert shares == pytest.approx({"blue": 0.72, "green": 0.08, "next": 0.2})
    assert [e["kind"] for e in status["events"]] == ["applied", "applied"]

    from loopml.config import load_settings
    from loopml.store.registry import open_deployment_store

    open_deployment_store(load_settings()).add_deployment_event(
        DeploymentEvent(
            "iris-api",
            2,
            "rolled_back",
            "next",
            2,
            1,
            {"reason": "canary rollback: error rate 0.31 > 0.05 over 200 requests"},
        )
    )
    status = json.loads(cli.ok(["deploy", "status", "iris-api", "--json"]))
    shares = {v["name"]: v["share"] for v in status["variants"]}
    assert shares == pytest.approx({"blue": 0.9, "green": 0.1, "next": 0.0})
    assert status["canary"].startswith("rolled back (canary rollback: error rate 0.31")

    table = cli.ok(["deploy", "status", "iris-api"])
    assert "iris-api (revision 2)" in table and "rolled_back" in table and "90%" in table
    history = cli.ok(["deploy", "history", "iris-api"])
    assert history.count("applied") == 2 and "v2 → v1" in history
    assert "error rate 0.31 > 0.05" in history
    newest = json.loads(cli.ok(["deploy", "history", "iris-api", "--limit", "1", "--json"]))
    assert [e["kind"] for e in newest] == ["rolled_back"]
    listed = json.loads(cli.ok(["deploy", "list", "--json"]))
    assert [(d["name"], d["revision"], d["variants"]) for d in listed] == [("iris-api", 2, 3)]


def test_bad_files_exit_2_naming_the_field(iris: None, tmp_path: Path) -> None:
    bad_files = [
        ("bad.yaml", "name: x\nvariants: [\n  - {a: 1\n", "bad.yaml: not valid YAML at line"),
        (
            "zero.yaml",
            DEPLOYMENT.replace("weight: 10", "weight: 0"),
            "zero.yaml: variants.1.weight: Input should be greater than 0",
        ),
        (
            "roses.yaml",
            DEPLOYMENT.replace("model: iris", "model: roses"),
            "registered model 'roses' does not exist",
        ),
        (
            "gold.yaml",
            DEPLOYMENT.replace("model: champion", "model: gold"),
            "variant 'blue': model 'iris' has no alias 'gold'",
        ),
        ("v7.yaml", DEPLOYMENT.replace("model: 2, weight", "model: 7, weight"), "has no version 7"),
    ]
    for name, text, message in bad_files:
        cli.fails(["deploy", "apply", _write(tmp_path, text, name)], message)
    cli.fails(["deploy", "apply", str(tmp_path / "missing.yaml")], "does not exist")
    cli.fails(["deploy", "status", "nope"], "deployment 'nope' does not exist")
    cli.fails(["deploy", "history", "nope"], "deployment 'nope' does not exist")
    assert "No deployments yet" in cli.ok(["deploy", "list"])


def test_serve_runs_the_stored_revision(
    iris: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    path = _write(tmp_path, DEPLOYMENT)
    cli.ok(["deploy", "apply", path])
    cli.ok(["deploy", "serve", "iris-api", "--port", "9123", "--reload-interval", "0.5"])
    served = calls[-1]
    assert (served["host"], served["port"]) == ("127.0.0.1", 9123)
    runtime = served["app"].state.runtime
    assert (runtime.name, runtime.revision) == ("iris-api", 1)
    assert [p.name for p in runtime.plans] == ["blue", "green", "next"]
    cli.fails(["deploy", "serve", "iris-api", "--revision", "4"], "has no revision 4")
    cli.fails(["deploy", "serve", "nope"], "deployment 'nope' does not exist")
