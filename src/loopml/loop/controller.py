"""The loop controller: what ``loopml loop start`` runs.

Every pass (:meth:`Controller.run_once`) takes or renews a lease (the ``loop-controller`` row
of the store's lock table, as the scheduler does), so one controller acts at a time and a
standby takes over when it dies. For each stored policy the active controller

1. watches the rollout in flight, if any: the model server's ``promoted`` or ``rolled_back``
   deployment event becomes a loop event; a canary still undecided after ``max_duration``
   is rolled back by the loop (the alias goes back to the previous version);
2. collects the trigger occurrences since its last pass: cron fire times, new versions of
   watched datasets, ``drift`` and ``degradation`` events of monitors of the model, and
   :func:`loopml.loop.trigger` requests;
3. claims each occurrence in the store (a row under a unique key, so two controllers never
   act on one occurrence) and either skips it (cooldown, daily limit, a rollout in
   flight) or retrains: builds the window, runs the pipeline, registers the candidate,
   applies the gate against the current champion and rolls the candidate out.

Every decision is a loop event with its evidence. A failing step records ``failed`` and
leaves serving untouched; the controller carries on with the next policy. All state (the
cursors, the retrain times, the rollout in flight) lives in the store, so a restarted
controller resumes where the last one stopped, also in the middle of a canary.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from loopml.errors import InvalidInput, LoopmlError
from loopml.loop.service import load_pipeline_function
from loopml.loop.triggers import Occurrence, pending
from loopml.store.loop_base import LoopEvent, LoopPolicyRecord

__all__ = ["LOCK_NAME", "Controller"]

logger = logging.getLogger("loopml.loop")

#: Name of the lease row that makes one controller active at a time.
LOCK_NAME = "loop-controller"
_DAY = 86_400.0


class Controller:
    """Runs continuous-training policies; run one or several for availability.

    Parameters
    ----------
    poll_interval : float
        Seconds between passes in :meth:`run_forever`.
    clock : callable, optional
        Returns the current epoch seconds; cron times, cooldowns, the daily limit, canary
        deadlines and event times follow it (a replay of history can drive it). The wall
        clock by default. The lease always uses the wall clock.
    owner : str, optional
        This controller's name in the lease and claims; unique per process by default.
    lease_seconds : float
        How long the lease lasts without renewal.
    policies : list of str, optional
        Only run these policies (all by default).
    store_uri : str, optional
        The metadata store; the current settings' by default.
    """

    def __init__(
        self,
        poll_interval: float = 5.0,
        clock: Callable[[], float] | None = None,
        *,
        owner: str | None = None,
        lease_seconds: float = 120.0,
        policies: list[str] | None = None,
        store_uri: str | None = None,
    ) -> None:
        if not poll_interval > 0 or not lease_seconds > 0:
            raise InvalidInput(
                "poll_interval and lease_seconds must be positive", field="poll_interval"
            )
        from loopml.config import load_settings
        from loopml.pipelines.scheduler import default_owner
        from loopml.store.sql.deployments import SqlDeploymentStore
        from loopml.store.sql.loop import SqlLoopStore
        from loopml.store.sql.scheduling import SqlSchedulingStore

        uri = store_uri or load_settings().resolved_store_uri
        self.store = SqlLoopStore(uri)
        self.events = SqlSchedulingStore(uri)
        self.deployments = SqlDeploymentStore(uri)
        self.poll_interval = float(poll_interval)
        self.lease_seconds = float(lease_seconds)
        self.owner = owner or default_owner()
        self.only = set(policies) if policies else None
        self._clock = clock or time.time
        self._holding = False
        self._attempted: set[tuple[str, str]] = set()
        self._recorded: list[LoopEvent] = []

    # -- the lease ----------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        """Whether this controller held the lease at its last pass."""
        return self._holding

    def _renew(self) -> bool:
        held = self.events.acquire_lock(LOCK_NAME, self.owner, self.lease_seconds)
        if held != self._holding:
            logger.info(
                "loop controller %s %s the lease", self.owner, "took" if held else "waits for"
            )
        self._holding = held
        return held

    def close(self) -> None:
        """Give the lease up so that a standby controller takes over at once."""
        if self._holding:
            self.events.release_lock(LOCK_NAME, self.owner)
            self._holding = False

    # -- one pass -----------------------------------------------------------------------
    def run_once(self) -> list[LoopEvent]:
        """Handle every pending trigger and the rollouts in flight once.

        Returns
        -------
        list of LoopEvent
            The events recorded in this pass (none when another controller holds the lease).
        """
        if not self._renew():
            return []
        self._recorded = []
        for record in self.store.list_loop_policies():
            if self.only is not None and record.name not in self.only:
                continue
            try:
                self._run_policy(record)
            except LoopmlError as exc:
                logger.warning("policy %s: pass failed: %s", record.name, exc.message)
            except Exception:
                logger.exception("policy %s: pass failed", record.name)
        return list(self._recorded)

    def _now(self) -> float:
        return float(self._clock())

    def _record(
        self,
        policy: LoopPolicyRecord,
        kind: str,
        evidence: dict[str, Any],
        retrain: str | None = None,
    ) -> LoopEvent:
        event = self.store.add_loop_event(
            LoopEvent(
                policy=policy.name,
                kind=kind,
                evidence=evidence,
                time=int(self._now() * 1000),
                policy_version=policy.version,
                retrain=retrain,
            )
        )
        level = logging.DEBUG if kind.startswith("skipped") else logging.INFO
        logger.log(level, "policy %s: %s %s", policy.name, kind, retrain or "")
        self._recorded.append(event)
        if kind == "promoted":
            self._close_incidents(policy, evidence)
        return event

    def _close_incidents(self, policy: LoopPolicyRecord, evidence: dict[str, Any]) -> None:
        """Close the model's open alerts: they were about the version just replaced.

        Otherwise a new version that is also failing would inherit the open incident, and
        no new alert (hence no new trigger) would ever reach the loop for it.
        """
        from loopml.monitoring.service import get_service

        model = policy.definition["model"]
        reason = f"version {evidence.get('to_version')} promoted by policy {policy.name}"
        try:
            get_service().resolve_alerts(model, reason, time_ms=int(self._now() * 1000))
        except Exception:  # monitoring trouble must not stop the loop
            logger.exception("could not close the open alerts of %s", model)

    def _save(self, policy: LoopPolicyRecord, state: dict[str, Any]) -> None:
        self.store.set_loop_state(policy.name, state, time=int(self._now() * 1000))

    def _run_policy(self, policy: LoopPolicyRecord) -> None:
        state = self.store.get_loop_state(policy.name)
        if not state:
            state = self._initial_state(policy)
            self._save(policy, state)
        if state.get("retraining"):
            # Only the lease holder retrains, and it clears this when done: the controller
            # that set it stopped in the middle. Nothing was rolled out (that comes last).
            self._record(
                policy,
                "failed",
                {
                    "stage": "interrupted",
                    "error": "the loop controller stopped during this retrain; serving is "
                    "unchanged and the next trigger retrains",
                },
                state["retraining"],
            )
            state["retraining"] = None
            self._save(policy, state)
        if state.get("rollout"):
            self._watch(policy, state)
        occurrences, progress = self._occurrences(policy, state)
        for occurrence in occurrences:
            claim = (policy.name, occurrence.key)
            if claim in self._attempted:
                continue
            self._attempted.add(claim)
            if not self._renew():
                return
            if self.store.claim_loop_trigger(
                policy.name, occurrence.key, self.owner, int(self._now() * 1000)
            ):
                self._decide(policy, state, occurrence)
        # The cursors move only once every occurrence before them was claimed, so a
        # controller that dies in a retrain leaves the later ones to its successor.
        state["cursor"] = progress["cursor"]
        state["cron"].update(progress["cron"])
        state["data"].update(progress["data"])
        self._save(policy, state)

    def _initial_state(self, policy: LoopPolicyRecord) -> dict[str, Any]:
        """Start from the policy's first version: only what happens after it counts."""
        first = self.store.list_loop_policy_versions(policy.name)[0]
        return {
            "since": first.created_time,
            "cursor": 0,
            "cron": {},
            "data": {},
            "retrains": [],
            "rollout": None,
        }

    # -- trigger occurrences ------------------------------------------------------------
    def _occurrences(
        self, policy: LoopPolicyRecord, state: dict[str, Any]
    ) -> tuple[list[Occurrence], dict[str, Any]]:
        """The pending occurrences, oldest first, and the cursors once they are handled."""
        return pending(self.events, policy.name, policy.definition, state, self._now())

    # -- deciding -----------------------------------------------------------------------
    def _decide(
        self, policy: LoopPolicyRecord, state: dict[str, Any], occurrence: Occurrence
    ) -> None:
        definition = policy.definition
        now = self._now()
        evidence = occurrence.evidence()
        retrains = [t for t in state["retrains"] if t > now - _DAY]
        state["retrains"] = retrains
        forced = bool(occurrence.details.get("force"))
        if state.get("rollout"):
            rollout = state["rollout"]
            self._record(
                policy,
                "skipped_busy",
                {
                    **evidence,
                    "reason": f"the canary of version {rollout['candidate']} is still running",
                    "retrain_in_flight": rollout.get("retrain"),
                },
            )
            return
        cooldown = float(definition["cooldown"])
        if retrains and not forced and now < retrains[-1] + cooldown:
            self._record(
                policy,
                "skipped_cooldown",
                {
                    **evidence,
                    "reason": (
                        f"last retrain {_span(now - retrains[-1])} ago; the cooldown is "
                        f"{_span(cooldown)}"
                    ),
                    "last_retrain": _iso(retrains[-1]),
                    "cooldown_until": _iso(retrains[-1] + cooldown),
                },
            )
            return
        limit = int(definition["max_retrains_per_day"])
        if len(retrains) >= limit and not forced:
            self._record(
                policy,
                "skipped_rate_limit",
                {
                    **evidence,
                    "reason": f"{len(retrains)} retrains in the last 24h (limit {limit})",
                    "next_allowed": _iso(retrains[-limit] + _DAY),
                },
            )
            return
        retrain = uuid.uuid4().hex[:12]
        retrains.append(now)
        self._record(policy, "triggered", evidence, retrain)
        state["retraining"] = retrain
        self._save(policy, state)
        try:
            with self._lease_kept():
                self._retrain(policy, state, occurrence, retrain)
        finally:
            state["retraining"] = None
            self._save(policy, state)

    @contextmanager
    def _lease_kept(self) -> Iterator[None]:
        """Renew the lease while a long pipeline runs, so no standby takes over meanwhile."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_seconds / 3):
                try:
                    self.events.acquire_lock(LOCK_NAME, self.owner, self.lease_seconds)
                except Exception:  # noqa: BLE001 - the next pass renews or gives up
                    logger.warning("could not renew the loop controller lease", exc_info=True)

        thread = threading.Thread(target=renew, name="loopml-loop-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- retraining ---------------------------------------------------------------------
    def _fail(self, policy: LoopPolicyRecord, retrain: str, stage: str, exc: BaseException) -> None:
        message = exc.message if isinstance(exc, LoopmlError) else f"{type(exc).__name__}: {exc}"
        evidence: dict[str, Any] = {"stage": stage, "error": message}
        if not isinstance(exc, LoopmlError):
            evidence["traceback"] = "".join(traceback.format_exception(exc))[-4000:]
        self._record(policy, "failed", evidence, retrain)

    def _retrain(
        self,
        policy: LoopPolicyRecord,
        state: dict[str, Any],
        occurrence: Occurrence,
        retrain: str,
    ) -> None:
        from loopml.loop.windows import build_window
        from loopml.registry import get_service as registry_service

        definition = policy.definition
        try:
            window = build_window(definition)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded, serving untouched
            self._fail(policy, retrain, "window", exc)
            return
        self._record(policy, "window_built", window.evidence, retrain)
        registry = registry_service()
        try:
            trained = self._train(definition, window.train_uri, retrain)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user pipeline may raise anything
            self._fail(policy, retrain, "pipeline", exc)
            return
        try:
            version = self._register(registry, definition, trained, window, retrain)
        except Exception as exc:  # noqa: BLE001
            self._fail(policy, retrain, "register", exc)
            return
        self._record(policy, "trained", {**trained, "version": version}, retrain)
        from loopml.loop.rollout import judge_candidate

        try:
            outcome = judge_candidate(registry, definition, version, window.holdout)
        except Exception as exc:  # noqa: BLE001
            self._fail(policy, retrain, "gate", exc)
            return
        if not outcome.passed:
            self._record(policy, "gate_rejected", outcome.evidence, retrain)
            return
        self._record(policy, "gate_passed", outcome.evidence, retrain)
        reason = _reason(policy.name, occurrence, retrain)
        try:
            if definition["rollout"]["type"] == "canary":
                self._start_canary(policy, state, version, retrain, reason)
            else:
                self._promote_direct(policy, registry, version, retrain, reason)
        except Exception as exc:  # noqa: BLE001
            self._fail(policy, retrain, "rollout", exc)

    def _train(self, definition: dict[str, Any], dataset: str, retrain: str) -> dict[str, Any]:
        from loopml.pipelines.dsl import Pipeline

        function = load_pipeline_function(definition["pipeline"])
        params = {**definition.get("pipeline_params", {}), "dataset": dataset}
        started = time.monotonic()
        info: dict[str, Any] = {"pipeline": definition["pipeline"], "dataset": dataset}
        if isinstance(function, Pipeline):
            result = function.run(params, trigger=f"loop:{definition['name']}#{retrain}")
            info["pipeline_run"] = result.run.id
            result.raise_if_failed()
            output = result.output("model_uri" if "model_uri" in result.returned else "output")
        else:
            output = function(**params)
        if isinstance(output, dict):
            info.update({k: v for k, v in output.items() if k != "model_uri" and _jsonable(v)})
            output = output.get("model_uri")
        if not isinstance(output, str) or not output.startswith("runs:/"):
            raise InvalidInput(
                f"the pipeline returned {output!r}: it must return the URI of the model it "
                "logged ('runs:/<run_id>/model'), or a dict with 'model_uri'",
                field="pipeline",
            )
        info["model_uri"] = output
        info["duration_s"] = round(time.monotonic() - started, 3)
        return info

    def _register(
        self,
        registry: Any,
        definition: dict[str, Any],
        trained: dict[str, Any],
        window: Any,
        retrain: str,
    ) -> int:
        from loopml import datasets
        from loopml.models.storage import parse_runs_uri

        # The pipeline read the window: recording it as the run's input gives the new
        # version its training-data lineage, as a run that read it itself would.
        name, _, number = window.train_uri.rpartition("@v")
        datasets.get_service().record_input(
            name, int(number), parse_runs_uri(trained["model_uri"])[0]
        )
        version = registry.register(
            trained["model_uri"],
            definition["model"],
            description=f"trained by loop policy {definition['name']} on {window.train_uri}",
            tags={"loopml.loop.policy": definition["name"], "loopml.loop.retrain": retrain},
        )
        return int(version.version)

    def _promote_direct(
        self,
        policy: LoopPolicyRecord,
        registry: Any,
        version: int,
        retrain: str,
        reason: str,
    ) -> None:
        from loopml.loop.rollout import LOOP_USER

        definition = policy.definition
        previous = registry.set_alias(
            definition["model"], definition["alias"], version, reason=reason, user=LOOP_USER
        )
        self._record(
            policy,
            "promoted",
            {
                "rollout": "direct",
                "alias": definition["alias"],
                "from_version": previous,
                "to_version": version,
                "reason": reason,
            },
            retrain,
        )

    # -- canaries -----------------------------------------------------------------------
    def _start_canary(
        self,
        policy: LoopPolicyRecord,
        state: dict[str, Any],
        version: int,
        retrain: str,
        reason: str,
    ) -> None:
        from loopml.loop.rollout import LOOP_USER, current_version, ensure_deployment
        from loopml.registry import get_service as registry_service

        definition = policy.definition
        registry = registry_service()
        model, alias = definition["model"], definition["alias"]
        baseline = current_version(registry, model, alias)
        if baseline is None:
            # Nothing is served yet: there is nothing to compare a canary with.
            self._promote_direct(policy, registry, version, retrain, reason + " (first version)")
            return
        name, revision, applied = ensure_deployment(self.deployments, definition)
        events = self.deployments.list_deployment_events(name, limit=1)
        cursor = events[-1].id if events and events[-1].id is not None else 0
        now = self._now()
        rollout = definition["rollout"]
        state["rollout"] = {
            "retrain": retrain,
            "deployment": name,
            "revision": revision,
            "candidate": version,
            "baseline": baseline,
            "started": now,
            "deadline": now + float(rollout["max_duration"]),
            "event_cursor": cursor,
            "server_started": False,
        }
        self._save(policy, state)
        registry.set_alias(model, alias, version, reason=f"{reason}; canary", user=LOOP_USER)
        self._record(
            policy,
            "canary_started",
            {
                "deployment": name,
                "revision": revision,
                "deployment_applied": applied,
                "alias": alias,
                "from_version": baseline,
                "to_version": version,
                "share": rollout["share"],
                "min_requests": rollout["min_requests"],
                "max_error_rate": rollout["max_error_rate"],
                "deadline": _iso(now + float(rollout["max_duration"])),
                "reason": reason,
            },
            retrain,
        )

    def _watch(self, policy: LoopPolicyRecord, state: dict[str, Any]) -> None:
        """Turn the model server's verdict on the canary into a loop event, or time it out."""
        from loopml.loop.rollout import read_verdict

        rollout = state["rollout"]
        verdict, cursor, started = read_verdict(self.deployments, rollout)
        rollout["event_cursor"], rollout["server_started"] = cursor, started
        retrain = rollout.get("retrain")
        common = {
            "deployment": rollout["deployment"],
            "alias": policy.definition["alias"],
            "from_version": rollout["baseline"],
            "to_version": rollout["candidate"],
        }
        if verdict is not None:
            evidence = {
                **common,
                "reason": verdict.event.evidence.get("reason", verdict.event.kind),
                "canary": verdict.event.evidence,
                "deployment_event": verdict.event.id,
            }
            if verdict.kind == "rolled_back":
                evidence["alias_version"] = self._restore_alias(policy, rollout, evidence["reason"])
            state["rollout"] = None
            self._record(policy, verdict.kind, evidence, retrain)
            return
        now = self._now()
        if now < float(rollout["deadline"]):
            return
        reason = (
            f"canary of version {rollout['candidate']} undecided after "
            f"{now - float(rollout['started']):.0f}s (max_duration); "
            + ("the model server started it" if started else "no model server picked it up")
        )
        version = self._restore_alias(policy, rollout, f"loop {policy.name}: {reason}")
        state["rollout"] = None
        self._record(
            policy,
            "rolled_back",
            {**common, "reason": reason, "timed_out": True, "alias_version": version},
            retrain,
        )

    def _restore_alias(
        self, policy: LoopPolicyRecord, rollout: dict[str, Any], reason: str
    ) -> int | None:
        """Make sure the alias is off the rolled-back candidate; return where it points."""
        from loopml.loop.rollout import LOOP_USER, current_version
        from loopml.registry import get_service as registry_service

        registry = registry_service()
        model, alias = policy.definition["model"], policy.definition["alias"]
        now_at = current_version(registry, model, alias)
        if now_at == rollout["candidate"]:
            registry.set_alias(model, alias, rollout["baseline"], reason=reason, user=LOOP_USER)
            return int(rollout["baseline"])
        return now_at

    # -- the loop -----------------------------------------------------------------------
    def run_forever(self, stop_event: threading.Event | None = None) -> None:
        """Pass every ``poll_interval`` seconds until ``stop_event`` is set, SIGTERM or SIGINT.

        Store outages and failing passes are logged and retried; the lease is released on
        the way out.
        """
        from loopml.pipelines.scheduler import _stop_on_signals

        stop = stop_event or threading.Event()
        with _stop_on_signals(stop):
            logger.info(
                "loop controller %s started (poll every %ss)", self.owner, self.poll_interval
            )
            try:
                while not stop.is_set():
                    try:
                        self.run_once()
                    except LoopmlError as exc:
                        logger.warning("loop pass failed, retrying: %s", exc.message)
                    except Exception:
                        logger.exception("loop pass failed; retrying")
                    stop.wait(self.poll_interval)
            finally:
                try:
                    self.close()
                except Exception:
                    logger.exception("could not release the loop controller lease")
                logger.info("loop controller %s stopped", self.owner)


def _iso(seconds: float) -> str:
    from loopml.pipelines.triggers import iso_utc

    return iso_utc(seconds)


def _span(seconds: float) -> str:
    """``42s``, ``5m``, ``6h``, ``1.5d``: a duration as people say it."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.0f}s"


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _reason(policy: str, occurrence: Occurrence, retrain: str) -> str:
    trigger = occurrence.trigger["type"]
    detail = occurrence.details.get("reason") or occurrence.details.get("check") or ""
    if occurrence.details.get("dataset"):
        detail = str(occurrence.details["dataset"])
    suffix = f" ({detail})" if detail else ""
    return f"loop {policy}: retrain {retrain} on {trigger}{suffix} passed the gate"
