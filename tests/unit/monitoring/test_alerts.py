"""Alerts: one per incident, no repeated notifications, resolution, webhooks with retries."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from monitor_helpers import MODEL, FakeSource, clock, features_frame, register_model, window

import loopml as lm
from conftest import free_port
from loopml.config import load_settings
from loopml.monitoring.alerts import Notifier, event_kind, post_webhook
from loopml.monitoring.metrics import MonitorMetrics
from loopml.monitoring.monitors import Monitor
from loopml.monitoring.service import MonitorService
from loopml.store.sql.monitors import SqlMonitorStore


class Hook:
    """A local webhook receiver answering scripted status codes and counting calls."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                index = min(len(hook.bodies), len(hook.statuses)) - 1
                self.send_response(hook.statuses[index])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def calls(self) -> int:
        return len(self.bodies)


@pytest.fixture
def hook_factory() -> Iterator[Any]:
    started: list[Hook] = []

    def start(statuses: list[int]) -> Hook:
        hook = Hook(statuses)
        hook.thread.start()
        started.append(hook)
        return hook

    yield start
    for hook in started:
        hook.server.shutdown()
        hook.server.server_close()
        hook.thread.join(timeout=5)


def test_an_alert_fires_once_stays_firing_and_resolves(
    hook_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    register_model()
    hook = hook_factory([200])
    events: list[tuple[str, dict[str, Any]]] = []
    service = MonitorService(
        SqlMonitorStore(load_settings().resolved_store_uri),
        notifier=Notifier(backoff=0.01, fire_event=lambda kind, p: events.append((kind, p))),
        metrics=MonitorMetrics(),
        clock=clock(),
    )
    drifted = window(features_frame(300, 1, shift=1.5))
    calm = window(features_frame(300, 2))
    source = FakeSource([drifted, drifted, drifted, calm, drifted])
    monitor = Monitor(MODEL, rules=["drift_share > 0.3"], webhooks=[hook.url])

    with caplog.at_level(logging.WARNING, logger="loopml.monitoring"):
        first = service.run(monitor, source=source)
    assert first.verdict == "alert"
    assert [a["status"] for a in first.alerts] == ["firing"]
    assert hook.calls == 1 and hook.bodies[0]["status"] == "firing"
    assert hook.bodies[0]["model"] == MODEL and hook.bodies[0]["check"] == "drift_share"
    assert hook.bodies[0]["value"] == 0.5 and hook.bodies[0]["threshold"] == 0.3
    assert [kind for kind, _ in events] == ["drift"] and events[0][1]["model"] == MODEL
    fired = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(fired) == 1 and "drift_share > 0.3 fired" in fired[0].getMessage()

    for _ in range(2):  # still drifting: the same incident, nobody told again
        again = service.run(monitor, source=source)
        assert again.verdict == "alert" and again.alerts == []
    assert hook.calls == 1 and len(events) == 1
    firing = service.store.list_alerts(monitor=MODEL, state="firing")
    assert len(firing) == 1 and firing[0].id == first.alerts[0]["alert"]["id"]

    recovered = service.run(monitor, source=source)
    assert recovered.verdict == "ok"
    assert [a["status"] for a in recovered.alerts] == ["resolved"]
    assert hook.calls == 2 and hook.bodies[1]["status"] == "resolved"
    assert service.store.list_alerts(monitor=MODEL, state="firing") == []

    relapse = service.run(monitor, source=source)  # a new incident: a new alert
    assert [a["status"] for a in relapse.alerts] == ["firing"]
    assert relapse.alerts[0]["alert"]["id"] != first.alerts[0]["alert"]["id"]
    assert hook.calls == 3 and len(events) == 2


def test_a_new_version_closes_the_incident_so_a_still_failing_check_fires_again() -> None:
    register_model()
    events: list[tuple[str, dict[str, Any]]] = []
    service = MonitorService(
        SqlMonitorStore(load_settings().resolved_store_uri),
        notifier=Notifier(fire_event=lambda kind, p: events.append((kind, p))),
        metrics=MonitorMetrics(),
        clock=clock(),
    )
    drifted = window(features_frame(300, 1, shift=1.5))
    source = FakeSource([drifted, drifted])
    monitor = service.save(Monitor(MODEL, rules=["drift_share > 0.3"]))
    first = service.run(monitor, source=source)
    assert [a["status"] for a in first.alerts] == ["firing"]

    assert service.resolve_alerts(MODEL, "version 2 promoted") == 1
    assert service.store.list_alerts(monitor=monitor.name, state="firing") == []
    assert service.resolve_alerts(MODEL, "nothing open") == 0

    again = service.run(monitor, source=source)  # the new version drifts too: announced anew
    assert [a["status"] for a in again.alerts] == ["firing"]
    assert [kind for kind, _ in events] == ["drift", "drift"]


def test_firing_records_a_trigger_event() -> None:
    register_model()
    service = MonitorService(
        SqlMonitorStore(load_settings().resolved_store_uri), metrics=MonitorMetrics(), clock=clock()
    )
    traffic = window(features_frame(300, 3), predictions=[0] * 300, labels=[1] * 300)
    service.run(Monitor(MODEL, features=["tenure"]), source=FakeSource([traffic]))
    events = lm.triggers.list_events()
    assert [e.kind for e in events] == ["degradation"]
    assert events[0].payload["model"] == MODEL and events[0].payload["check"] == "f1"


def test_skipped_checks_leave_the_alert_alone() -> None:
    register_model()
    events: list[str] = []
    service = MonitorService(
        SqlMonitorStore(load_settings().resolved_store_uri),
        notifier=Notifier(fire_event=lambda kind, p: events.append(kind)),
        metrics=MonitorMetrics(),
        clock=clock(),
    )
    wrong = window(features_frame(200, 4), predictions=[0] * 200, labels=[1] * 200)
    unlabelled = window(features_frame(200, 4), predictions=[0] * 200)
    monitor = Monitor(MODEL, rules=["f1 drop 0.05"])
    service.run(monitor, source=FakeSource([wrong]))
    later = service.run(monitor, source=FakeSource([unlabelled]))
    assert later.checks[0]["verdict"] == "skipped" and later.alerts == []
    assert len(service.store.list_alerts(monitor=MODEL, state="firing")) == 1
    assert events == ["degradation"]


def test_a_webhook_is_retried_with_backoff(hook_factory: Any) -> None:
    hook = hook_factory([503, 500, 200])
    assert post_webhook(hook.url, {"status": "firing"}, attempts=3, backoff=0.01)
    assert hook.calls == 3


def test_a_failing_webhook_never_raises(
    hook_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    down = hook_factory([500])
    with caplog.at_level(logging.WARNING, logger="loopml.monitoring"):
        assert not post_webhook(down.url, {"a": 1}, attempts=3, backoff=0.01)
    assert down.calls == 3
    assert "HTTP 500" in caplog.text
    refused = hook_factory([404])
    assert not post_webhook(refused.url, {"a": 1}, attempts=3, backoff=0.01)
    assert refused.calls == 1  # the receiver refused the request: no point retrying
    unreachable = f"http://127.0.0.1:{free_port()}/nobody"
    assert not post_webhook(unreachable, {"a": 1}, attempts=2, backoff=0.01, timeout=1)


def test_a_broken_event_sink_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    register_model()

    def broken(kind: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("scheduler store is down")

    service = MonitorService(
        SqlMonitorStore(load_settings().resolved_store_uri),
        notifier=Notifier(fire_event=broken),
        metrics=MonitorMetrics(),
        clock=clock(),
    )
    with caplog.at_level(logging.WARNING, logger="loopml.monitoring"):
        result = service.run(
            Monitor(MODEL), source=FakeSource([window(features_frame(200, 5, shift=2))])
        )
    assert result.verdict == "alert" and result.alerts
    assert "could not record the drift event" in caplog.text


def test_event_kinds() -> None:
    assert event_kind("drift_share") == "drift"
    assert event_kind("prediction_drift_score") == "drift"
    assert event_kind("drift_score.age") == "drift"
    assert event_kind("latency_p99_ms") == "degradation"
    assert event_kind("rmse") == "degradation"
