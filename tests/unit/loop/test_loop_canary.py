"""End to end: the loop canaries a candidate on a real model server, which decides."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import loop_flows
import pytest

import loopml as lm
from conftest import serve_app
from loopml.config import load_settings
from loopml.serving.app import create_serving_app
from loopml.serving.deployment import parse_deployment
from loopml.store.registry import open_deployment_store

# The fixtures shared by the loop tests live beside the pipelines they name.
bikes, clock, make_policy = loop_flows.bikes, loop_flows.clock, loop_flows.make_policy


class Crashing:
    """Wraps a model so that it fails on rows the test marks (x1 above 100)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _check(self, frame: Any) -> None:
        if (frame["x1"] > 100).any():
            raise RuntimeError("the candidate crashes on this input")

    def predict(self, frame: Any) -> Any:
        self._check(frame)
        return self.model.predict(frame)

    def predict_proba(self, frame: Any) -> Any:
        self._check(frame)
        return self.model.predict_proba(frame)


def _loader(crash_version: int | None) -> Callable[[str], Any]:
    def load(spec: str) -> Any:
        model = lm.models.load(spec)
        if crash_version is not None and model.registered == ("bikeshare", crash_version):
            model.model = Crashing(model.model)
        return model

    return load


def _drive(client: httpx.Client, controller: Any, until: set[str], x1: float) -> list[Any]:
    """Send traffic and run the controller until it records one of ``until``."""
    row = {"x1": x1, "x2": 0.3}
    recorded: list[Any] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for _ in range(10):
            client.post("/predict", json={"inputs": [row]})
        recorded += controller.run_once()
        if until & {e.kind for e in recorded}:
            return recorded
        time.sleep(0.05)
    raise AssertionError(f"no {until} within 30 s; recorded {[e.kind for e in recorded]}")


@pytest.mark.parametrize("crash", [True, False], ids=["rollback", "promotion"])
def test_canary_on_a_live_server(crash: bool, make_policy: Callable[..., Any]) -> None:
    rollout = lm.loop.Canary(
        share=0.5, min_requests=5, max_duration="5m", max_error_rate=0.05, check_interval=0.05
    )
    lm.loop.apply(make_policy(rollout=rollout))
    deployments = open_deployment_store(load_settings())
    stored = deployments.get_deployment("bikeshare")
    app = create_serving_app(
        parse_deployment(stored.config),
        revision=stored.revision,
        reload_interval=0.05,
        loader=_loader(2 if crash else None),
        max_wait_ms=1,
        seed=7,
    )
    with serve_app(app) as client:
        assert client.post("/predict", json={"inputs": [{"x1": 0.1, "x2": 0.2}]}).status_code == 200
        controller = lm.loop.Controller(poll_interval=0.05)
        lm.loop.trigger("bikes", reason="test canary")
        started = controller.run_once()
        assert started[-1].kind == "canary_started"
        events = _drive(client, controller, {"promoted", "rolled_back"}, 500.0 if crash else 0.2)
        served = client.get("/metadata").json()

    outcome = events[-1]
    assert outcome.retrain == started[-1].retrain
    if crash:
        assert outcome.kind == "rolled_back"
        assert "error rate" in outcome.evidence["reason"]
        assert outcome.evidence["canary"]["requests"] >= 5
        assert lm.registry.resolve("bikeshare@champion").version == 1
        assert all(v["version"] == 1 for v in served["variants"])
    else:
        assert outcome.kind == "promoted"
        assert "canary promoted" in outcome.evidence["reason"]
        assert lm.registry.resolve("bikeshare@champion").version == 2
    kinds = [e.kind for e in deployments.list_deployment_events("bikeshare")]
    assert "canary_started" in kinds and ("rolled_back" if crash else "promoted") in kinds
    assert [e.kind for e in lm.loop.history("bikes")][-2:] == ["canary_started", outcome.kind]
    assert loop_flows  # the pipeline the policy names
