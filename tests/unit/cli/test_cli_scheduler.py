"""``loopml scheduler``, ``loopml schedule`` and ``loopml trigger``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from loopml.cli.main import LoopmlGroup
from loopml.cli.scheduler import parse_pairs, schedule_app, scheduler_app, trigger_app
from loopml.errors import InvalidInput
from loopml.pipelines import scheduler as scheduler_module
from loopml.pipelines import triggers

runner = CliRunner()
WIDE = {"COLUMNS": "200"}

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True)
app.add_typer(scheduler_app)
app.add_typer(schedule_app)
app.add_typer(trigger_app)


@app.callback()
def _root() -> None:
    """The loopml commands under test."""


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(args: list[str]) -> str:
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 2, result.output
    return result.output


def test_parse_pairs() -> None:
    assert parse_pairs(["n=10", "flag=true", "name=churn", "x=a=b", "l=[1, 2]"], "param") == {
        "n": 10,
        "flag": True,
        "name": "churn",
        "x": "a=b",
        "l": [1, 2],
    }
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        parse_pairs(["novalue"], "param")


def test_schedule_lifecycle() -> None:
    out = _ok(
        ["schedule", "create", "nightly", "flows.train:training", "--cron", "0 3 * * *",
         "--param", "epochs=5", "--catchup"]
    )  # fmt: skip
    assert "Created schedule 'nightly'" in out and "'0 3 * * *'" in out
    listed = json.loads(_ok(["schedule", "list", "--json"]))
    assert [(s["name"], s["params"], s["catchup"], s["enabled"]) for s in listed] == [
        ("nightly", {"epochs": 5}, True, True)
    ]
    assert listed[0]["next_fire_time"] % 86_400_000 == 3 * 3_600_000
    table = _ok(["schedule", "list"])
    assert "nightly" in table and "flows.train:training" in table
    assert "Disabled" in _ok(["schedule", "disable", "nightly"])
    assert json.loads(_ok(["schedule", "show", "nightly", "--json"]))["enabled"] is False
    assert "Enabled" in _ok(["schedule", "enable", "nightly"])
    assert "epochs=5" in _ok(["schedule", "show", "nightly"])
    assert "already exists" in _fails(
        ["schedule", "create", "nightly", "flows:x", "--cron", "* * * * *"]
    )
    assert "Deleted" in _ok(["schedule", "delete", "nightly"])
    assert "does not exist" in _fails(["schedule", "delete", "nightly"])
    assert "No schedules yet" in _ok(["schedule", "list"])


def test_bad_cron_exits_2_naming_the_expression() -> None:
    out = _fails(["schedule", "create", "s", "flows:train", "--cron", "0 25 * * *"])
    assert "invalid cron expression '0 25 * * *'" in out
    assert _fails(["schedule", "create", "s", "flows:train"])  # --cron is required
    assert triggers.list_schedules() == []


def test_trigger_lifecycle_and_events() -> None:
    assert "each new version of dataset 'churn'" in _ok(
        ["trigger", "create", "retrain", "flows:retrain", "--on-dataset", "churn", "-p", "k=1"]
    )
    assert 'matching model="churn"' in _ok(
        ["trigger", "create", "drift", "flows:d", "--on-event", "drift", "--match", "model=churn"]
    )
    listed = json.loads(_ok(["trigger", "list", "--json"]))
    assert [(t["name"], t["event_kind"], t["match"], t["params"]) for t in listed] == [
        ("drift", "drift", {"model": "churn"}, {}),
        ("retrain", "new_dataset", {"dataset": "churn"}, {"k": 1}),
    ]
    assert "retrain" in _ok(["trigger", "list"])
    assert "Recorded 'drift' event" in _ok(
        ["trigger", "fire", "drift", "--payload", '{"model": "churn"}']
    )
    event = json.loads(_ok(["trigger", "fire", "degradation", "--json"]))
    assert event["kind"] == "degradation" and event["payload"] == {}
    events = json.loads(_ok(["trigger", "events", "--kind", "drift", "--json"]))
    assert [e["payload"] for e in events] == [{"model": "churn"}]
    assert "degradation" in _ok(["trigger", "events"])
    assert json.loads(_ok(["trigger", "show", "drift", "--json"]))["fires"] == []
    assert "Deleted" in _ok(["trigger", "delete", "drift"])
    assert "does not exist" in _fails(["trigger", "show", "drift"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trigger", "create", "t", "flows:x"], "exactly one of"),
        (["trigger", "create", "t", "flows:x", "--on-dataset", "d", "--on-event", "e"], "one of"),
        (["trigger", "create", "t", "flows:x", "--on-dataset", "d", "--match", "a=1"], "--match"),
        (["trigger", "create", "t", "flows:x", "--on-event", "bad kind"], "event kind"),
        (["trigger", "create", "t", "noref", "--on-event", "drift"], "pipeline reference"),
        (["trigger", "fire", "drift", "--payload", "{not json"], "not valid JSON"),
        (["trigger", "fire", "drift", "--payload", "[1, 2]"], "dict"),
        (["trigger", "fire", "bad-kind"], "event kind"),
    ],
)
def test_bad_trigger_input_exits_2(args: list[str], message: str) -> None:
    assert message in _fails(args)


def test_scheduler_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any], str]] = []

    def fake_run(ref: str, params: dict[str, Any], trigger: str) -> str:
        calls.append((ref, params, trigger))
        return uuid.uuid4().hex

    monkeypatch.setattr(scheduler_module, "run_pipeline", fake_run)
    assert json.loads(_ok(["scheduler", "--once", "--json"])) == {
        "active": True,
        "pipeline_run_ids": [],
    }
    assert "Nothing was due" in _ok(["scheduler", "--once"])
    _ok(["trigger", "create", "t", "flows:x", "--on-event", "go", "--param", "n=2"])
    _ok(["trigger", "fire", "go"])
    assert "Started 1 pipeline run(s)" in _ok(["scheduler", "--once"])
    assert calls == [("flows:x", {"n": 2}, calls[0][2])] and calls[0][2].startswith("event:go#")
    fires = json.loads(_ok(["trigger", "show", "t", "--json"]))["fires"]
    assert len(fires) == 1 and fires[0]["pipeline_run_id"]
    # Another process holding the lease: a pass fires nothing.
    triggers.get_service().store.acquire_lock(scheduler_module.LOCK_NAME, "other", 60)
    assert "Another scheduler holds the lease" in _ok(["scheduler", "--once"])


def test_scheduler_runs_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_forever(self: scheduler_module.Scheduler, stop: Any = None) -> None:
        seen["poll"] = self.poll_interval
        seen["lease"] = self.lease_seconds

    monkeypatch.setattr(scheduler_module.Scheduler, "run_forever", fake_forever)
    result = runner.invoke(
        app, ["scheduler", "--poll-interval", "0.5", "--lease-seconds", "10"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert seen == {"poll": 0.5, "lease": 10.0}
    assert "polling every 0.5s" in result.output
    assert _fails(["scheduler", "--poll-interval", "0"])
