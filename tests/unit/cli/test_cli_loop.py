"""``loopml loop``: apply, list, show, trigger, run-once, start and history."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_helpers import Cli

import loopml as lm

cli = Cli()

POLICY = """
import loopml as lm
from sklearn.linear_model import LogisticRegression


def train(dataset: str) -> str:
    frame = lm.datasets.get(dataset)
    X, y = frame[["x1", "x2"]], frame["label"]
    with lm.start_run():
        return lm.log_model(LogisticRegression().fit(X, y), "model", input_example=X.head()).uri


policy = lm.loop.Policy(
    name="bikes",
    model="bikeshare",
    pipeline=train,
    data="bikes",
    timestamp="ts",
    triggers=[lm.loop.Manual(), lm.loop.Drift(share=0.3), lm.loop.Cron("0 3 * * *")],
    window=lm.loop.FixedWindow(days=30),
    gate=lm.Gate(min_improvement={"accuracy": -1.0}, require_infra_check=False),
    cooldown=COOLDOWN,
)
not_a_policy = 42
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Any:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=100), rng.normal(size=100)
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2011-01-01", periods=100, freq="h", tz="UTC"),
            "x1": x1,
            "x2": x2,
            "label": (x1 + x2 > 0).astype(int),
        }
    )
    lm.datasets.register("bikes", frame)
    # A module name of its own per test: the controller imports the pipeline by name.
    module = f"loop_cli_policy_{uuid.uuid4().hex[:8]}"

    def write(cooldown: str = "'6h'") -> Path:
        path = tmp_path / f"{module}.py"
        path.write_text(POLICY.replace("COOLDOWN", cooldown), encoding="utf-8")
        return path

    from sklearn.linear_model import LogisticRegression

    with lm.start_run():
        info = lm.log_model(
            LogisticRegression().fit(frame[["x1", "x2"]], frame["label"]),
            "model",
            input_example=frame[["x1", "x2"]].head(),
        )
    lm.registry.register(info.uri, "bikeshare")
    lm.registry.set_alias("bikeshare", "champion", 1, reason="first model")
    return write


def test_apply_list_show_trigger_run_once_history(policy_file: Any) -> None:
    path = policy_file()
    out = cli.ok(["loop", "apply", f"{path}:policy"])
    assert "Applied policy bikes version 1" in out and "bikeshare@champion" in out
    assert "Policy bikes is unchanged (version 1)" in cli.ok(["loop", "apply", f"{path}:policy"])
    listed = cli.ok(["loop", "list"])
    assert "bikes" in listed and "last 30 days" in listed and "drift ≥ 0.3" in listed
    assert json.loads(cli.ok(["loop", "list", "--json"]))[0]["version"] == 1

    assert "Recorded trigger event" in cli.ok(
        ["loop", "trigger", "bikes", "--reason", "new labels"]
    )
    ran = cli.ok(["loop", "run-once"])
    for kind in ("triggered", "window_built", "trained", "gate_passed", "promoted"):
        assert kind in ran
    assert "manual (new labels): retrain" in ran
    assert "Nothing to do" in cli.ok(["loop", "run-once"])

    history = cli.ok(["loop", "history", "bikes"])
    assert "v1 → v2" in history and "applied" in history
    events = json.loads(cli.ok(["loop", "history", "bikes", "--json", "-n", "3"]))
    assert [e["kind"] for e in events] == ["trained", "gate_passed", "promoted"]
    assert events[-1]["evidence"]["to_version"] == 2

    shown = cli.ok(["loop", "show", "bikes"])
    assert "bikeshare@champion" in shown and "Last events" in shown
    detail = json.loads(cli.ok(["loop", "show", "bikes", "--json"]))
    assert detail["state"]["rollout"] is None and detail["events"]

    path = policy_file(cooldown="'1h'")
    assert "version 2" in cli.ok(["loop", "apply", f"{path}:policy"])


def test_start_runs_the_controller(policy_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.ok(["loop", "apply", f"{policy_file()}:policy"])
    cli.ok(["loop", "trigger", "bikes"])
    passes: list[list[Any]] = []

    def one_pass(self: Any, stop_event: Any = None) -> None:
        passes.append(self.run_once())
        self.close()

    monkeypatch.setattr(lm.loop.Controller, "run_forever", one_pass)
    result = cli.invoke(["loop", "start", "--poll-interval", "0.1"])
    assert result.exit_code == 0, result.output
    assert "Loop controller" in result.output
    assert [e.kind for e in passes[0]][-1] == "promoted"


def test_bad_input_is_one_line(policy_file: Any, tmp_path: Path) -> None:
    path = policy_file()
    assert "must look like" in cli.fails(["loop", "apply", "no-colon"])
    assert "does not exist" in cli.fails(["loop", "apply", f"{tmp_path}/none.py:policy"])
    assert "not an lm.loop.Policy" in cli.fails(["loop", "apply", f"{path}:not_a_policy"])
    assert "cannot load policy" in cli.fails(["loop", "apply", f"{path}:missing"])
    assert "does not exist" in cli.fails(["loop", "show", "nobody"])
    assert "does not exist" in cli.fails(["loop", "history", "nobody"])
    assert "does not exist" in cli.fails(["loop", "trigger", "nobody"])
    broken = tmp_path / f"loop_cli_broken_{uuid.uuid4().hex[:8]}.py"
    broken.write_text(POLICY.replace("COOLDOWN", "'soon'"), encoding="utf-8")
    assert "cooldown 'soon' is not a duration" in cli.fails(["loop", "apply", f"{broken}:policy"])
    assert "No policies yet" in cli.ok(["loop", "list"])
