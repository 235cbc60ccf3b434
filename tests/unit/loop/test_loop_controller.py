"""The loop controller: triggers, cooldown and limits, failures, the gate and rollouts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import loop_flows
import pytest

import loopml as lm
from loopml.config import load_settings
from loopml.store.base import DeploymentEvent
from loopml.store.registry import open_deployment_store

# The fixtures shared by the loop tests live beside the pipelines they name.
bikes, clock, make_policy = loop_flows.bikes, loop_flows.clock, loop_flows.make_policy


def kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in events]


def champion() -> int:
    return lm.registry.resolve("bikeshare@champion").version


def drift(value: float = 0.5, model: str = "bikeshare") -> None:
    lm.triggers.fire(
        "drift",
        {"status": "firing", "model": model, "check": "drift_share", "value": value},
    )


def test_manual_trigger_retrains_gates_and_promotes(make_policy: Callable[..., Any]) -> None:
    lm.loop.apply(make_policy())
    lm.loop.trigger("bikes", reason="labels arrived")
    events = lm.loop.Controller().run_once()

    assert kinds(events) == ["triggered", "window_built", "trained", "gate_passed", "promoted"]
    assert len({e.retrain for e in events}) == 1
    assert events[0].evidence["trigger"]["reason"] == "labels arrived"
    window = events[1].evidence
    assert window["rows"] == 120 and window["train_rows"] == 96 and window["holdout_rows"] == 24
    assert window["window_dataset"] == "bikes-window@v1"
    assert events[2].evidence["version"] == 2
    gate = events[3].evidence
    assert gate["champion_version"] == 1 and "accuracy" in gate["candidate_metrics"]
    assert events[4].evidence["from_version"] == 1 and events[4].evidence["to_version"] == 2
    assert champion() == 2
    # The move is audited with the loop's reason, and the version has the window's lineage.
    moved = [a for a in lm.registry.audit("bikeshare") if a.action == "set_alias:champion"][-1]
    assert "loop bikes" in moved.reason and moved.user == "loopml-loop"
    assert "bikes-window@v1" in lm.registry.get_model_version("bikeshare", 2).datasets
    assert kinds(lm.loop.history("bikes"))[-5:] == kinds(events)


def test_pipeline_may_be_an_lm_pipeline_or_return_a_dict(make_policy: Callable[..., Any]) -> None:
    lm.loop.apply(make_policy(pipeline=loop_flows.train_pipeline, cooldown=0))
    lm.loop.trigger("bikes")
    controller = lm.loop.Controller()
    trained = [e for e in controller.run_once() if e.kind == "trained"]
    assert trained and trained[0].evidence["pipeline_run"]
    lm.loop.apply(make_policy(pipeline=loop_flows.train_dict, cooldown=0))
    lm.loop.trigger("bikes")
    trained = [e for e in controller.run_once() if e.kind == "trained"]
    assert trained[0].evidence["note"] == "dict" and champion() == 3


def test_a_storm_of_drift_events_gives_one_retrain(make_policy: Callable[..., Any]) -> None:
    lm.loop.apply(make_policy(triggers=[lm.loop.Drift(share=0.3)]))
    for _ in range(100):
        drift(0.5)
    drift(0.1)  # below the policy's share: not a trigger at all
    drift(0.9, model="other")  # another model's monitor
    events = lm.loop.Controller().run_once()

    counts = Counter(kinds(events))
    assert counts["triggered"] == 1 and counts["trained"] == 1
    assert counts["skipped_cooldown"] == 99
    assert counts["promoted"] == 1
    skipped = next(e for e in events if e.kind == "skipped_cooldown")
    assert "cooldown" in skipped.evidence["reason"]
    assert skipped.evidence["trigger"]["type"] == "drift"
    # A second pass (or a second controller) never reacts to the same events again.
    assert lm.loop.Controller().run_once() == []


def _occur_twice(kind: str, clock: Any) -> None:
    if kind == "cron":
        clock.advance(120)
    elif kind == "new_data":
        seed = len(lm.datasets.versions("bikes"))
        lm.datasets.register("bikes", loop_flows.make_data(130, seed=seed))
        lm.datasets.register("bikes", loop_flows.make_data(140, seed=seed + 1))
    elif kind == "drift":
        drift(0.6)
        drift(0.7)
    elif kind == "degradation":
        for value in (0.61, 0.55):
            lm.triggers.fire(
                "degradation",
                {
                    "status": "firing",
                    "model": "bikeshare",
                    "check": "accuracy",
                    "value": value,
                    "baseline": 0.9,
                },
            )
    else:
        lm.loop.trigger("bikes", reason="first")
        lm.loop.trigger("bikes", reason="second")


TRIGGERS: dict[str, Any] = {
    "cron": lambda: lm.loop.Cron("* * * * *"),
    "new_data": lambda: lm.loop.NewData(),
    "drift": lambda: lm.loop.Drift(share=0.3),
    "degradation": lambda: lm.loop.Degradation(metric="accuracy", drop=0.05),
    "manual": lambda: lm.loop.Manual(),
}


@pytest.mark.parametrize("kind", sorted(TRIGGERS))
def test_each_trigger_kind_retrains_once_within_its_cooldown(
    kind: str, make_policy: Callable[..., Any], clock: Any
) -> None:
    lm.loop.apply(make_policy(triggers=[TRIGGERS[kind]()], cooldown="1h"))
    controller = lm.loop.Controller(clock=clock)
    assert controller.run_once() == []  # nothing happened yet
    _occur_twice(kind, clock)
    events = controller.run_once()
    if kind == "cron":  # one fire time per pass: the next minute comes next pass
        clock.advance(60)
        events += controller.run_once()
    counts = Counter(kinds(events))
    assert counts["triggered"] == 1, kinds(events)
    assert counts["skipped_cooldown"] == 1, kinds(events)
    assert counts["promoted"] == 1
    assert events[0].evidence["trigger"]["type"] == kind
    # Once the cooldown is over the same kind retrains again.
    clock.advance(3601)
    _occur_twice(kind, clock)
    assert Counter(kinds(controller.run_once()))["triggered"] == 1


def test_weak_signals_do_not_fire(make_policy: Callable[..., Any]) -> None:
    triggers = [lm.loop.Degradation(metric="accuracy", drop=0.2), lm.loop.Drift(share=0.5)]
    lm.loop.apply(make_policy(triggers=triggers))
    fire = lm.triggers.fire
    fire("degradation", {"model": "bikeshare", "check": "accuracy", "value": 0.85, "baseline": 0.9})
    fire("degradation", {"model": "bikeshare", "check": "f1", "value": 0.1, "baseline": 0.9})
    fire("drift", {"model": "bikeshare", "status": "resolved", "check": "drift_share", "value": 1})
    drift(0.4)
    assert lm.loop.Controller().run_once() == []


def test_daily_limit_and_force(make_policy: Callable[..., Any], clock: Any) -> None:
    lm.loop.apply(make_policy(cooldown=0, max_retrains_per_day=2))
    controller = lm.loop.Controller(clock=clock)
    for _ in range(3):
        lm.loop.trigger("bikes")
        clock.advance(60)
    events = controller.run_once()
    counts = Counter(kinds(events))
    assert counts["triggered"] == 2 and counts["skipped_rate_limit"] == 1
    limited = next(e for e in events if e.kind == "skipped_rate_limit")
    assert "limit 2" in limited.evidence["reason"]
    lm.loop.trigger("bikes", reason="hotfix", force=True)
    assert "triggered" in kinds(controller.run_once())
    clock.advance(86_400)
    lm.loop.trigger("bikes")
    assert "triggered" in kinds(controller.run_once())


def test_a_failing_pipeline_is_recorded_and_serving_is_untouched(
    make_policy: Callable[..., Any],
) -> None:
    lm.loop.apply(make_policy(pipeline=loop_flows.broken, cooldown=0))
    lm.loop.trigger("bikes")
    controller = lm.loop.Controller()
    events = controller.run_once()
    assert kinds(events) == ["triggered", "window_built", "failed"]
    failed = events[-1].evidence
    assert failed["stage"] == "pipeline" and "cannot train on bikes-window@v1" in failed["error"]
    assert champion() == 1 and [v.version for v in lm.registry.versions("bikeshare")] == [1]

    lm.loop.apply(make_policy(pipeline=loop_flows.wrong_output, cooldown=0))
    lm.loop.trigger("bikes")
    events = controller.run_once()
    assert events[-1].kind == "failed" and "must return the URI" in events[-1].evidence["error"]
    # The controller keeps going: a good pipeline promotes.
    lm.loop.apply(make_policy(cooldown=0))
    lm.loop.trigger("bikes")
    assert kinds(controller.run_once())[-1] == "promoted" and champion() == 2


def test_a_too_small_window_fails_cleanly(make_policy: Callable[..., Any]) -> None:
    lm.loop.apply(make_policy(window=lm.loop.RepresentativeSample(n=5)))
    lm.loop.trigger("bikes")
    events = lm.loop.Controller().run_once()
    assert kinds(events) == ["triggered", "failed"]
    assert events[-1].evidence["stage"] == "window" and "at least" in events[-1].evidence["error"]


def test_a_rejected_candidate_never_gets_traffic(make_policy: Callable[..., Any]) -> None:
    canary = lm.loop.Canary(share=0.2, min_requests=5, max_duration="1h")
    lm.loop.apply(make_policy(pipeline_params={"quality": "bad"}, rollout=canary))
    deployments = open_deployment_store(load_settings())
    before = deployments.list_deployment_events("bikeshare")
    lm.loop.trigger("bikes")
    events = lm.loop.Controller().run_once()

    assert kinds(events) == ["triggered", "window_built", "trained", "gate_rejected"]
    rejected = events[-1].evidence
    assert rejected["candidate_version"] == 2 and rejected["failures"]
    assert "baseline" in " ".join(rejected["failures"])
    assert champion() == 1
    assert lm.registry.get_model_version("bikeshare", 2).aliases == ()
    assert deployments.list_deployment_events("bikeshare") == before
    assert lm.registry.get_model_version("bikeshare", 2).gate["passed"] is False


def _canary_policy(make_policy: Callable[..., Any], **rollout: Any) -> Any:
    canary = lm.loop.Canary(
        **{"share": 0.5, "min_requests": 5, "max_duration": "1h", "check_interval": 0.1, **rollout}
    )
    return make_policy(rollout=canary, triggers=[lm.loop.Manual(), lm.loop.Drift()])


def test_canary_start_stores_the_deployment_and_defers_triggers(
    make_policy: Callable[..., Any],
) -> None:
    lm.loop.apply(_canary_policy(make_policy))
    deployments = open_deployment_store(load_settings())
    config = deployments.get_deployment("bikeshare").config
    assert config["on_alias_move"] == "canary" and config["canary"]["share"] == 0.5
    lm.loop.trigger("bikes")
    controller = lm.loop.Controller()
    events = controller.run_once()
    assert kinds(events)[-1] == "canary_started"
    started = events[-1].evidence
    assert started["from_version"] == 1 and started["to_version"] == 2
    assert started["deployment"] == "bikeshare"
    assert champion() == 2  # the model server canaries the alias move
    drift(0.9)
    events = controller.run_once()
    assert kinds(events) == ["skipped_busy"]
    assert "still running" in events[0].evidence["reason"]
    assert lm.loop.get("bikes").version == 1


def _server_verdict(kind: str, candidate: int = 2, baseline: int = 1) -> None:
    """Record what the model server's canary controller records, and move the alias."""
    store = open_deployment_store(load_settings())
    revision = store.get_deployment("bikeshare").revision
    if kind == "rolled_back":
        lm.registry.set_alias("bikeshare", "champion", baseline, reason="canary rollback: errors")
        event = DeploymentEvent(
            "bikeshare",
            revision,
            "rolled_back",
            "canary",
            candidate,
            baseline,
            {"reason": "canary rollback: error rate 1.00 > 0.05 over 5 requests", "requests": 5},
        )
    else:
        event = DeploymentEvent(
            "bikeshare",
            revision,
            "promoted",
            "canary",
            baseline,
            candidate,
            {"reason": "canary promoted: error rate 0.00 <= 0.05 over 5 requests"},
        )
    store.add_deployment_event(event)


@pytest.mark.parametrize("verdict", ["rolled_back", "promoted"])
def test_a_restarted_controller_resumes_watching_the_canary(
    verdict: str, make_policy: Callable[..., Any]
) -> None:
    lm.loop.apply(_canary_policy(make_policy))
    lm.loop.trigger("bikes")
    first = lm.loop.Controller(owner="first")
    assert kinds(first.run_once())[-1] == "canary_started"
    first.close()  # killed mid-rollout; its state is in the store
    _server_verdict(verdict)

    second = lm.loop.Controller(owner="second")
    events = second.run_once()
    assert kinds(events) == [verdict]
    evidence = events[0].evidence
    assert evidence["to_version"] == 2 and evidence["from_version"] == 1
    assert evidence["reason"].startswith(
        f"canary {verdict.split('_')[0].replace('rolled', 'rollback')}"
    )
    assert champion() == (1 if verdict == "rolled_back" else 2)
    assert events[0].retrain == lm.loop.history("bikes")[-2].retrain
    assert lm.loop.Controller().run_once() == []


def test_an_undecided_canary_is_rolled_back_after_max_duration(
    make_policy: Callable[..., Any], clock: Any
) -> None:
    lm.loop.apply(_canary_policy(make_policy, max_duration="10m"))
    lm.loop.trigger("bikes")
    controller = lm.loop.Controller(clock=clock)
    assert kinds(controller.run_once())[-1] == "canary_started"
    clock.advance(300)
    assert controller.run_once() == []
    clock.advance(301)
    events = controller.run_once()
    assert kinds(events) == ["rolled_back"]
    assert events[0].evidence["timed_out"] is True
    assert "no model server picked it up" in events[0].evidence["reason"]
    assert champion() == 1 and events[0].evidence["alias_version"] == 1


def test_only_one_controller_acts(make_policy: Callable[..., Any]) -> None:
    lm.loop.apply(make_policy(triggers=[lm.loop.Drift()]))
    active, standby = lm.loop.Controller(owner="a"), lm.loop.Controller(owner="b")
    assert active.run_once() == [] and active.is_active
    for _ in range(5):
        drift()
    assert standby.run_once() == [] and not standby.is_active
    assert Counter(kinds(active.run_once()))["triggered"] == 1
    active.close()
    assert standby.run_once() == [] and standby.is_active  # takes over; nothing is left


def test_a_retrain_cut_short_is_recorded_as_failed(make_policy: Callable[..., Any]) -> None:
    from loopml.store.sql.loop import SqlLoopStore

    lm.loop.apply(make_policy())
    store = SqlLoopStore(load_settings().resolved_store_uri)
    controller = lm.loop.Controller()
    controller.run_once()
    state = store.get_loop_state("bikes")
    store.set_loop_state("bikes", {**state, "retraining": "abc123"}, time=1)  # died in it
    controller.close()
    events = lm.loop.Controller().run_once()
    assert kinds(events) == ["failed"] and events[0].retrain == "abc123"
    assert events[0].evidence["stage"] == "interrupted" and champion() == 1


def test_the_lease_is_kept_during_a_long_pipeline(make_policy: Callable[..., Any]) -> None:
    lm.loop.apply(make_policy(pipeline=loop_flows.slow_train))
    lm.loop.trigger("bikes")
    busy = lm.loop.Controller(owner="busy", lease_seconds=0.3)
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.extend(busy.run_once()))
    worker.start()
    time.sleep(0.7)  # more than two leases later, the pipeline still runs
    standby = lm.loop.Controller(owner="standby", lease_seconds=0.3)
    assert standby.run_once() == [] and not standby.is_active
    worker.join()
    assert kinds(result)[-1] == "promoted"
