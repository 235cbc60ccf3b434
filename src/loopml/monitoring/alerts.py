"""Alerts: one incident per failing check, announced once, resolved when the check recovers.

After every run, each rule verdict moves its alert through two states kept in the store:

- ``alert`` and nothing firing: a new alert is opened and announced: a WARNING log line,
  a JSON ``POST`` to every webhook of the monitor, and a ``drift`` or ``degradation`` event
  (:func:`loopml.pipelines.triggers.fire`) that scheduler triggers and continuous-training
  policies react to;
- ``alert`` while firing: the alert keeps firing, its value is refreshed, nobody is told
  again;
- ``ok`` while firing: the alert is resolved (an INFO log line and a ``resolved`` webhook);
- ``skipped`` (no labels yet, no baseline): nothing changes.

Notifications never raise into the monitor run: a webhook is retried with exponential
backoff for a few attempts on connection errors, 429 and 5xx answers, then given up with a
WARNING log line.

Examples
--------
>>> from loopml.monitoring.alerts import event_kind
>>> event_kind("drift_share"), event_kind("f1"), event_kind("feature_drift.age")
('drift', 'degradation', 'drift')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from loopml.store.base import AlertRecord, MonitorStore

__all__ = [
    "AlertTransition",
    "Notifier",
    "event_kind",
    "post_webhook",
    "process_alerts",
]

logger = logging.getLogger("loopml.monitoring")

#: Checks about distributions raise ``drift`` events; every other check ``degradation``.
_DRIFT_CHECKS = ("drift_share", "dataset_drift", "prediction_drift", "target_drift")
_DRIFT_PREFIXES = ("feature_drift.", "drift_score.", "prediction_drift", "target_drift")
EventSink = Callable[[str, dict[str, Any]], Any]


def event_kind(check: str) -> str:
    """``drift`` for checks on distributions, ``degradation`` for quality and latency."""
    if check in _DRIFT_CHECKS or check.startswith(_DRIFT_PREFIXES):
        return "drift"
    return "degradation"


def _fire_trigger(kind: str, payload: dict[str, Any]) -> None:
    from loopml.pipelines.triggers import fire

    fire(kind, payload)


def post_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    attempts: int = 3,
    backoff: float = 0.5,
    timeout: float = 5.0,
) -> bool:
    """POST ``payload`` as JSON, retrying transient failures; never raises.

    Parameters
    ----------
    url : str
        The webhook.
    payload : dict
        JSON-able body.
    attempts : int
        Tries in all; connection errors, timeouts, 429 and 5xx answers are retried.
    backoff : float
        Seconds before the second try, doubled before each further one.
    timeout : float
        Seconds per try.

    Returns
    -------
    bool
        Whether an attempt got a 2xx answer.
    """
    reason = ""
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for attempt in range(max(1, attempts)):
                if attempt:
                    time.sleep(backoff * 2 ** (attempt - 1))
                try:
                    response = client.post(url, json=payload)
                except httpx.HTTPError as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    continue
                if response.is_success:
                    return True
                reason = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    break  # the receiver refuses the request itself: trying again won't help
    except Exception as exc:  # noqa: BLE001 - a broken webhook must never break the run
        reason = f"{type(exc).__name__}: {exc}"
    logger.warning("monitoring webhook %s failed: %s", url, reason)
    return False


@dataclass
class Notifier:
    """Announces alert transitions: log lines, webhooks and trigger events.

    Parameters
    ----------
    attempts, backoff, timeout : int, float, float
        Webhook retry settings (see :func:`post_webhook`).
    fire_event : callable, optional
        ``fire_event(kind, payload)`` records a trigger event; default
        :func:`loopml.pipelines.triggers.fire`.
    """

    attempts: int = 3
    backoff: float = 0.5
    timeout: float = 5.0
    fire_event: EventSink | None = None

    def announce(self, transition: AlertTransition, webhooks: Sequence[str]) -> None:
        """Log, post and record one transition; failures are logged, never raised."""
        payload = transition.payload()
        if transition.status == "firing":
            logger.warning(
                "monitor %s: alert %s fired for model %s: %s",
                transition.alert.monitor,
                transition.alert.check,
                transition.alert.model,
                transition.alert.message,
            )
        else:
            logger.info(
                "monitor %s: alert %s resolved for model %s",
                transition.alert.monitor,
                transition.alert.check,
                transition.alert.model,
            )
        for url in webhooks:
            post_webhook(
                url, payload, attempts=self.attempts, backoff=self.backoff, timeout=self.timeout
            )
        if transition.status == "firing":
            sink = self.fire_event or _fire_trigger
            try:
                sink(event_kind(transition.check), payload)
            except Exception as exc:  # noqa: BLE001 - the alert is stored; the event is extra
                logger.warning(
                    "monitor %s: could not record the %s event: %s",
                    transition.alert.monitor,
                    event_kind(transition.check),
                    exc,
                )


@dataclass(frozen=True)
class AlertTransition:
    """An alert opened (``firing``) or closed (``resolved``) by a run.

    Attributes
    ----------
    status : {"firing", "resolved"}
        What happened.
    alert : AlertRecord
        The stored alert after the change.
    check : str
        The check value the rule reads (``f1``, ``drift_share``...).
    verdict : dict
        The rule verdict of the run (see :class:`~loopml.monitoring.checks.CheckVerdict`).
    version : int or None
        The model version the run saw.
    """

    status: str
    alert: AlertRecord
    check: str
    verdict: dict[str, Any]
    version: int | None = None

    def payload(self) -> dict[str, Any]:
        """The webhook body and trigger event payload."""
        return {
            "status": self.status,
            "kind": event_kind(self.check),
            "monitor": self.alert.monitor,
            "model": self.alert.model,
            "version": self.version,
            "alert_id": self.alert.id,
            "rule": self.alert.check,
            "check": self.check,
            "op": self.verdict.get("op"),
            "threshold": self.verdict.get("threshold"),
            "value": self.verdict.get("value"),
            "baseline": self.verdict.get("baseline"),
            "message": self.alert.message,
            "fired_time": self.alert.fired_time,
            "resolved_time": self.alert.resolved_time,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {"status": self.status, "alert": self.alert.to_dict()}


def process_alerts(
    store: MonitorStore,
    *,
    monitor: str,
    model: str,
    version: int | None,
    verdicts: Sequence[dict[str, Any]],
    time_ms: int,
    webhooks: Sequence[str] = (),
    notifier: Notifier | None = None,
) -> list[AlertTransition]:
    """Move each rule's alert to the state its verdict implies and announce the changes.

    Parameters
    ----------
    store : MonitorStore
        Where alert state lives.
    monitor, model : str
        Whose alerts.
    version : int or None
        The model version the run saw (in payloads).
    verdicts : sequence of dict
        The run's rule verdicts (``name``, ``check``, ``verdict``, ``value``, ``message``).
    time_ms : int
        The run's time.
    webhooks : sequence of str
        Where to post transitions.
    notifier : Notifier, optional
        How to announce; a default :class:`Notifier` when omitted.

    Returns
    -------
    list of AlertTransition
        The alerts opened and resolved by this run.
    """
    announcer = notifier if notifier is not None else Notifier()
    firing = {a.check: a for a in store.list_alerts(monitor=monitor, state="firing", limit=1000)}
    transitions: list[AlertTransition] = []
    for verdict in verdicts:
        name, state = str(verdict["name"]), verdict.get("verdict")
        if state == "alert":
            alert, opened = store.fire_alert(
                monitor, model, name, verdict.get("value"), str(verdict.get("message", "")), time_ms
            )
            if opened:
                transitions.append(
                    AlertTransition("firing", alert, str(verdict["check"]), dict(verdict), version)
                )
        elif state == "ok" and name in firing:
            alert = store.resolve_alert(firing[name].id, time_ms)
            transitions.append(
                AlertTransition("resolved", alert, str(verdict["check"]), dict(verdict), version)
            )
    for transition in transitions:
        announcer.announce(transition, webhooks)
    return transitions
