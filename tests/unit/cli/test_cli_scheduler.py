"""``loopml scheduler``, ``loopml schedule`` and ``loopml trigger``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import typer
from cli_helpers import Cli

from loopml.cli.main import LoopmlGroup
from loopml.cli.scheduler import parse_pairs, schedule_app, scheduler_app, trigger_app
from loopml.errors import InvalidInput
from loopml.pipelines import scheduler as scheduler_module
from loopml.pipelines import triggers

app = typer.Typer(cls=LoopmlGroup, no_args_is_help=True)
app.add_typer(scheduler_app)
app.add_typer(schedule_app)
app.add_typer(trigger_app)


@app.callback()
def _root() -> None:
    """The loopml commands under test."""


cli = Cli(app)


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
    out = cli.ok(
        ["schedule", "create", "nightly", "flows.train:training", "--cron", "0 3 * * *",
         "--param", "epochs=5", "--catchup"]
    )  # fmt: skip
    assert "Created schedule 'nightly'" in out and "'0 3 * * *'" in out
    listed = json.loads(cli.ok(["schedule", "list", "--json"]))
    assert [(s["name"], s["params"], s["catchup"], s["enabled"]) for s in listed] == [
        ("nightly", {"epochs": 5}, True, True)
    ]
    assert listed[0]["next_fire_time"] % 86_400_000 == 3 * 3_600_000
    table = cli.ok(["schedule", "list"])
    assert "nightly" in table and "flows.train:training" in table
    assert "Disabled" in cli.ok(["schedule", "disable", "nightly"])
    assert json.loads(cli.ok(["schedule", "show", "nightly", "--json"]))["enabled"] is False
    assert "Enabled" in cli.ok(["schedule", "enable", "nightly"])
    assert "epochs=5" in cli.ok(["schedule", "show", "nightly"])
    assert "already exists" in cli.fails(
        ["schedule", "create", "nightly", "flows:x", "--cron", "* * * * *"]
    )
    assert "Deleted" in cli.ok(["schedule", "delete", "nightly"])
    assert "does not exist" in cli.fails(["schedule", "delete", "nightly"])
    assert "No schedules yet" in cli.ok(["schedule", "list"])


def test_bad_cron_exits_2_naming_the_expression() -> None:
    out = cli.fails(["schedule", "create", "s", "flows:train", "--cron", "0 25 * * *"])
    assert "invalid cron expression '0 25 * * *'" in out
    assert cli.fails(["schedule", "create", "s", "flows:train"])  # --cron is required
    assert triggers.list_schedules() == []


def test_trigger_lifecycle_and_events() -> None:
    assert "each new version of dataset 'churn'" in cli.ok(
        ["trigger", "create", "retrain", "flows:retrain", "--on-dataset", "churn", "-p", "k=1"]
    )
    assert 'matching model="churn"' in cli.ok(
        ["trigger", "create", "drift", "flows:d", "--on-event", "drift", "--match", "model=churn"]
    )
    listed = json.loads(cli.ok(["trigger", "list", "--json"]))
    assert [(t["name"], t["event_kind"], t["match"], t["params"]) for t in listed] == [
        ("drift", "drift", {"model": "churn"}, {}),
        ("retrain", "new_dataset", {"dataset": "churn"}, {"k": 1}),
    ]
    assert "retrain" in cli.ok(["trigger", "list"])
    assert "Recorded 'drift' event" in cli.ok(
        ["trigger", "fire", "drift", "--payload", '{"model": "churn"}']
    )
    event = json.loads(cli.ok(["trigger", "fire", "degradation", "--json"]))
    assert event["kind"] == "degradation" and event["payload"] == {}
    events = json.loads(cli.ok(["trigger", "events", "--kind", "drift", "--json"]))
    assert [e["payload"] for e in events] == [{"model": "churn"}]
    assert "degradation" in cli.ok(["trigger", "events"])
    assert json.loads(cli.ok(["trigger", "show", "drift", "--json"]))["fires"] == []
    assert "Deleted" in cli.ok(["trigger", "delete", "drift"])
    assert "does not exist" in cli.fails(["trigger", "show", "drift"])


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
    assert message in cli.fails(args)


def test_scheduler_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any], str]] = []

    def fake_run(ref: str, params: dict[str, Any], trigger: str) -> str:
        calls.append((ref, params, trigger))
        return uuid.uuid4().hex

    monkeypatch.setattr(scheduler_module, "run_pipeline", fake_run)
    assert json.loads(cli.ok(["scheduler", "--once", "--json"])) == {
        "active": True,
        "pipeline_run_ids": [],
    }
    assert "Nothing was due" in cli.ok(["scheduler", "--once"])
    cli.ok(["trigger", "create", "t", "flows:x", "--on-event", "go", "--param", "n=2"])
    cli.ok(["trigger", "fire", "go"])
    assert "Started 1 pipeline run(s)" in cli.ok(["scheduler", "--once"])
    assert calls == [("flows:x", {"n": 2}, calls[0][2])] and calls[0][2].startswith("event:go#")
    fires = json.loads(cli.ok(["trigger", "show", "t", "--json"]))["fires"]
    assert len(fires) == 1 and fires[0]["pipeline_run_id"]
    # Another process holding the lease: a pass fires nothing.
    triggers.get_service().store.acquire_lock(scheduler_module.LOCK_NAME, "other", 60)
    assert "Another scheduler holds the lease" in cli.ok(["scheduler", "--once"])


def test_scheduler_runs_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_forever(self: scheduler_module.Scheduler, stop: Any = None) -> None:
        seen["poll"] = self.poll_interval
        seen["lease"] = self.lease_seconds

    monkeypatch.setattr(scheduler_module.Scheduler, "run_forever", fake_forever)
    result = cli.invoke(["scheduler", "--poll-interval", "0.5", "--lease-seconds", "10"])
    assert result.exit_code == 0, result.output
    assert seen == {"poll": 0.5, "lease": 10.0}
    assert "polling every 0.5s" in result.output
    assert cli.fails(["scheduler", "--poll-interval", "0"])
