"""``GET /api/v1/loop/policies``, ``/api/v1/loop/{name}`` and ``/{name}/history``."""

from __future__ import annotations

from typing import Any

import loop_flows

import loopml as lm
from conftest import serve_app
from loopml.server.app import create_app

bikes, make_policy = loop_flows.bikes, loop_flows.make_policy


def test_the_rest_api_shows_policies_and_history(make_policy: Any) -> None:
    lm.loop.apply(make_policy(window=lm.loop.FixedWindow(days=3)))
    lm.loop.trigger("bikes", reason="api test")
    lm.loop.Controller().run_once()
    with serve_app(create_app()) as client:
        policies = client.get("/api/v1/loop/policies").json()["policies"]
        assert [p["name"] for p in policies] == ["bikes"]
        assert policies[0]["definition"]["window"] == {"type": "fixed", "days": 3.0}
        assert policies[0]["rollout_in_flight"] is None

        one = client.get("/api/v1/loop/bikes").json()
        assert one["version"] == 1 and one["state"]["retrains"]

        history = client.get("/api/v1/loop/bikes/history", params={"limit": 3}).json()
        assert [e["kind"] for e in history["events"]] == ["trained", "gate_passed", "promoted"]
        assert history["events"][-1]["evidence"]["to_version"] == 2
        assert history["events"][-1]["summary"].startswith("v1 → v2")

        missing = client.get("/api/v1/loop/nobody/history")
        assert missing.status_code == 404
        assert missing.json()["field"] == "name"
        assert client.get("/api/v1/loop/bikes/history", params={"limit": 0}).status_code == 422
