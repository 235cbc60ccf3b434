"""Storing policies and reading the loop's history: ``lm.loop.apply``, ``get``, ``history``.

Policies are stored with a version: applying a changed definition stores the next version
(and an ``applied`` loop event), applying the same one again changes nothing. The pipeline
is stored by import path, so the controller (another process) imports it itself.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopml.config import load_settings
from loopml.errors import InvalidInput, NotFound
from loopml.loop.policy import Policy, policy_from_dict, policy_to_dict
from loopml.pipelines.loading import load_object
from loopml.store.loop_base import LoopEvent, LoopPolicyRecord, LoopStore

__all__ = [
    "EVENT_KINDS",
    "MANUAL_EVENT",
    "LoopEvent",
    "LoopService",
    "StoredPolicy",
    "apply",
    "event_summary",
    "get",
    "get_service",
    "history",
    "list_policies",
    "load_pipeline_function",
    "trigger",
]

#: Every kind of loop event, in the order a retrain goes through them.
EVENT_KINDS = (
    "applied",
    "triggered",
    "skipped_cooldown",
    "skipped_rate_limit",
    "skipped_busy",
    "window_built",
    "trained",
    "gate_passed",
    "gate_rejected",
    "canary_started",
    "promoted",
    "rolled_back",
    "failed",
)
#: Kind of the trigger events :func:`trigger` records (the Manual trigger).
MANUAL_EVENT = "loop_trigger"
_MAX_REASON = 1000


@dataclass(frozen=True)
class StoredPolicy:
    """A stored policy version.

    Attributes
    ----------
    name : str
        The policy name.
    version : int
        Counts up from 1 with every changed definition.
    definition : dict
        The validated definition (pipeline as ``module:function``, durations in seconds).
    created_time : int
        When this version was stored (epoch ms).
    """

    name: str
    version: int
    definition: dict[str, Any]
    created_time: int

    @property
    def policy(self) -> Policy:
        """The definition as a :class:`Policy` (its pipeline an import path)."""
        return policy_from_dict(self.definition)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "name": self.name,
            "version": self.version,
            "created_time": self.created_time,
            "definition": self.definition,
        }

    @classmethod
    def from_record(cls, record: LoopPolicyRecord) -> StoredPolicy:
        """Wrap a store record."""
        return cls(record.name, record.version, record.definition, record.created_time)


def load_pipeline_function(reference: str) -> Callable[..., Any]:
    """Import ``module:function`` (or ``path/to/file.py:function``) and return it.

    Raises
    ------
    InvalidInput
        When it cannot be imported, or takes no ``dataset`` keyword.
    """
    found = load_object(reference, field="pipeline")
    if not callable(found):
        raise InvalidInput(f"pipeline {reference!r} is not callable", field="pipeline")
    signature = inspect.signature(getattr(found, "fn", found))
    accepts = "dataset" in signature.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    )
    if not accepts:
        raise InvalidInput(
            f"pipeline {reference!r} must take a keyword 'dataset' (the window, 'name@vN')",
            field="pipeline",
        )
    result: Callable[..., Any] = found
    return result


def _check_references(definition: dict[str, Any]) -> None:
    """Refuse a policy whose pipeline, dataset, columns or model do not exist."""
    load_pipeline_function(definition["pipeline"])
    from loopml import datasets, registry

    try:
        latest = datasets.get_service().resolve(definition["data"])
    except NotFound:
        raise NotFound(f"dataset {definition['data']!r} is not registered", field="data") from None
    columns = {column.name for column in latest.columns}
    for field in ("timestamp", "label"):
        if definition[field] not in columns:
            raise InvalidInput(
                f"dataset {latest.uri} has no {field} column {definition[field]!r} "
                f"(columns: {', '.join(sorted(columns))})",
                field=field,
            )
    for trigger in definition["triggers"]:
        watched = trigger.get("dataset") if trigger["type"] == "new_data" else None
        if watched and watched != definition["data"]:
            try:
                datasets.get_service().resolve(watched)
            except NotFound:
                raise NotFound(f"dataset {watched!r} is not registered", field="dataset") from None
    try:
        registry.get_service().store.get_registered_model(definition["model"])
    except NotFound:
        raise NotFound(
            f"registered model {definition['model']!r} does not exist: register a first "
            "version (and set its alias) before the loop keeps it fresh",
            field="model",
        ) from None


def _prepare_deployment(definition: dict[str, Any]) -> None:
    """Store the canary deployment now, so a model server started next already canaries."""
    from loopml.loop.rollout import current_version, ensure_deployment
    from loopml.registry import get_service as registry_service
    from loopml.store.registry import open_deployment_store

    if current_version(registry_service(), definition["model"], definition["alias"]) is None:
        return  # nothing served yet: the first candidate is promoted directly
    ensure_deployment(open_deployment_store(load_settings()), definition)


class LoopService:
    """Stores policies and reads and writes loop events.

    Parameters
    ----------
    store : LoopStore
        Where policies, events and the controller's state live.
    """

    def __init__(self, store: LoopStore) -> None:
        self.store = store

    def apply(self, policy: Policy, *, check: bool = True) -> StoredPolicy:
        """Validate ``policy`` and store it; see :func:`apply`."""
        definition = policy_to_dict(policy)
        if check:
            _check_references(definition)
            if definition["rollout"]["type"] == "canary":
                _prepare_deployment(definition)
        record, created = self.store.put_loop_policy(definition["name"], definition)
        if created:
            self.store.add_loop_event(
                LoopEvent(
                    policy=record.name,
                    kind="applied",
                    evidence={"version": record.version},
                    policy_version=record.version,
                )
            )
        return StoredPolicy.from_record(record)

    def get(self, name: str, version: int | None = None) -> StoredPolicy:
        """Return a stored policy (the latest version by default)."""
        return StoredPolicy.from_record(self.store.get_loop_policy(name, version))

    def list_policies(self) -> list[StoredPolicy]:
        """Return the latest version of every policy, by name."""
        return [StoredPolicy.from_record(r) for r in self.store.list_loop_policies()]

    def history(self, name: str, limit: int = 50) -> list[LoopEvent]:
        """Return the last ``limit`` events of a policy, oldest first."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", field="limit")
        self.store.get_loop_policy(name)
        return self.store.list_loop_events(name, limit=limit)


_lock = threading.Lock()
_service: LoopService | None = None
_service_uri: str | None = None


def get_service() -> LoopService:
    """The loop service for the current settings' metadata store."""
    global _service, _service_uri
    settings = load_settings()
    with _lock:
        if _service is None or settings.resolved_store_uri != _service_uri:
            from loopml.store.registry import open_loop_store

            _service = LoopService(open_loop_store(settings))
            _service_uri = settings.resolved_store_uri
        return _service


def apply(policy: Policy) -> StoredPolicy:
    """Validate a policy and store it; a changed definition becomes a new version.

    Parameters
    ----------
    policy : Policy
        The policy; its pipeline must be importable by ``module:function``.

    Returns
    -------
    StoredPolicy
        The stored version (the existing one when nothing changed).

    Raises
    ------
    InvalidInput
        For a bad field (named), or a pipeline that cannot be imported or takes no
        ``dataset`` keyword.
    NotFound
        When the dataset or the registered model does not exist.
    """
    return get_service().apply(policy)


def get(name: str) -> StoredPolicy:
    """Return the latest version of a stored policy, or raise :class:`NotFound`."""
    return get_service().get(name)


def list_policies() -> list[StoredPolicy]:
    """Return the latest version of every stored policy, by name."""
    return get_service().list_policies()


def trigger(name: str, reason: str = "manual", *, force: bool = False) -> int:
    """Ask the controller to retrain now: the :class:`~loopml.loop.Manual` trigger.

    Parameters
    ----------
    name : str
        The policy.
    reason : str
        Why (recorded in the loop history).
    force : bool
        Retrain even within the cooldown or over the daily limit (a rollout in flight
        still defers it).

    Returns
    -------
    int
        The id of the trigger event recorded for the controller.

    Raises
    ------
    NotFound
        When the policy does not exist.
    InvalidInput
        When the policy has no Manual trigger.
    """
    stored = get(name)
    if not any(t["type"] == "manual" for t in stored.definition["triggers"]):
        raise InvalidInput(
            f"policy {name!r} has no Manual() trigger: add lm.loop.Manual() to its triggers",
            field="name",
        )
    if not isinstance(reason, str):
        raise InvalidInput("reason must be text", field="reason")
    from loopml.pipelines.triggers import fire

    event = fire(
        MANUAL_EVENT, {"policy": name, "reason": reason[:_MAX_REASON], "force": bool(force)}
    )
    return event.id


def history(name: str, limit: int = 50) -> list[LoopEvent]:
    """Return the last ``limit`` loop events of a policy, oldest first.

    Raises
    ------
    NotFound
        When the policy does not exist.
    """
    return get_service().history(name, limit)


def _versions(evidence: dict[str, Any]) -> str:
    old, new = evidence.get("from_version"), evidence.get("to_version")
    return f"v{old} → v{new}" if old is not None else f"v{new}"


def event_summary(event: LoopEvent) -> str:
    """One line saying what a loop event decided and why (for tables and progress views)."""
    evidence = event.evidence
    trigger = evidence.get("trigger") or {}
    what = trigger.get("type", "")
    detail = trigger.get("reason") or trigger.get("check") or trigger.get("dataset") or ""
    fired = f"{what} ({detail})" if detail else what
    if event.kind == "applied":
        return f"policy version {evidence.get('version')} applied"
    if event.kind == "triggered":
        return f"{fired}: retrain"
    if event.kind.startswith("skipped"):
        return f"{fired}: {evidence.get('reason', '')}"
    if event.kind == "window_built":
        return (
            f"{evidence.get('rows')} rows ({evidence.get('from_logged', 0)} logged) "
            f"{str(evidence.get('start', ''))[:10]}..{str(evidence.get('end', ''))[:10]} → "
            f"{evidence.get('window_dataset') or '-'}"
        )
    if event.kind == "trained":
        return f"{evidence.get('model_uri')} → version {evidence.get('version')}"
    if event.kind in ("gate_passed", "gate_rejected"):
        metrics = evidence.get("candidate_metrics") or {}
        champion = evidence.get("champion_metrics") or {}
        shown = next((m for m in ("accuracy", "f1", "rmse", "mae") if m in metrics), None)
        score = ""
        if shown:
            score = f"{shown} {metrics[shown]:.4g}"
            if shown in champion:
                score += f" vs champion v{evidence.get('champion_version')} {champion[shown]:.4g}"
        failures = evidence.get("failures") or []
        return "; ".join([s for s in (score, *failures[:2]) if s]) or str(evidence.get("summary"))
    if event.kind == "canary_started":
        return (
            f"{_versions(evidence)} at {float(evidence.get('share', 0)) * 100:.3g}% on "
            f"deployment {evidence.get('deployment')}"
        )
    if event.kind in ("promoted", "rolled_back"):
        return f"{_versions(evidence)}: {evidence.get('reason', '')}"
    if event.kind == "failed":
        return f"{evidence.get('stage')}: {evidence.get('error')}"
    return ""
