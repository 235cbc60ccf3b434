"""Judging and rolling out a candidate: the gate, the alias move, and the canary.

The gate compares the candidate with the version the policy's alias points at, both
evaluated on the window's holdout (the newest rows, which neither was trained on), so the
comparison is on equal terms. A :class:`~loopml.loop.Direct` rollout then moves the alias.
A :class:`~loopml.loop.Canary` rollout makes sure the serving deployment canaries alias moves
(``on_alias_move: canary`` with the policy's canary rule) and moves the alias: the model
server that serves the deployment (``loopml deploy serve NAME --reload-interval N``) gives
the new version ``share`` of the traffic and promotes it or moves the alias back on its own
numbers, recording a deployment event the loop controller reads.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, NotFound
from loopml.store.base import DeploymentEvent, DeploymentStore

if TYPE_CHECKING:
    import pandas as pd

    from loopml.registry.service import RegistryService

__all__ = [
    "GateOutcome",
    "RolloutVerdict",
    "canary_deployment",
    "current_version",
    "ensure_deployment",
    "judge_candidate",
    "read_verdict",
]

logger = logging.getLogger("loopml.loop")
#: Who the loop's registry and deployment changes are recorded as.
LOOP_USER = "loopml-loop"


@dataclass(frozen=True)
class GateOutcome:
    """The gate's decision on a candidate, with the evaluations behind it."""

    passed: bool
    evidence: dict[str, Any]


def current_version(registry: RegistryService, model: str, alias: str) -> int | None:
    """The version ``model@alias`` points at, or None when the alias is not set."""
    try:
        return registry.resolve(f"{model}@{alias}").version
    except NotFound:
        return None


def _features(model: Any, frame: pd.DataFrame, label: str, timestamp: str) -> list[str]:
    signature = getattr(model, "signature", None) or {}
    names = [column["name"] for column in signature.get("inputs") or []]
    if names:
        return names
    return [c for c in frame.columns if c not in (label, timestamp)]


def _evaluate(spec: str, holdout: pd.DataFrame, label: str, timestamp: str) -> Any:
    from loopml.models import load
    from loopml.training import evaluate

    model = load(spec)
    return evaluate(
        model,
        holdout,
        target=label,
        features=_features(model, holdout, label, timestamp),
        latency_rows=0,
        log=False,
    )


def _metrics(result: Any) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in result.metrics.items() if v == v}


def judge_candidate(
    registry: RegistryService,
    definition: dict[str, Any],
    candidate: int,
    holdout: pd.DataFrame,
) -> GateOutcome:
    """Evaluate the candidate and the current champion on the holdout and apply the gate.

    Without a gate in the policy every candidate passes (the evaluations are still
    recorded). The decision is stored with the candidate version, as ``gate.check`` does.
    """
    from loopml.training import Gate

    model, alias = definition["model"], definition["alias"]
    label, timestamp = definition["label"], definition["timestamp"]
    champion = current_version(registry, model, alias)
    cand_eval = _evaluate(f"{model}/{candidate}", holdout, label, timestamp)
    champ_eval = None
    if champion is not None and champion != candidate:
        champ_eval = _evaluate(f"{model}/{champion}", holdout, label, timestamp)
    evidence: dict[str, Any] = {
        "candidate_version": candidate,
        "champion_version": champion,
        "holdout_rows": int(len(holdout)),
        "candidate_metrics": _metrics(cand_eval),
        "champion_metrics": None if champ_eval is None else _metrics(champ_eval),
    }
    if definition.get("gate") is None:
        return GateOutcome(True, {**evidence, "gate": None, "summary": "no gate: passed"})
    gate = Gate(**definition["gate"])
    infra = None
    if gate.require_infra_check:
        from loopml.registry.gating import infrastructure_check

        infra = infrastructure_check(registry.get_version(model, candidate))
    result = gate.check(cand_eval, champion=champ_eval, infra=infra)
    registry.record(model, candidate, "gate", json.loads(json.dumps(result.to_dict(), default=str)))
    evidence.update(
        {
            "gate": json.loads(json.dumps(result.to_dict(), default=str)),
            "summary": result.summary(),
            "failures": [reason.message for reason in result.failures],
        }
    )
    return GateOutcome(result.passed, evidence)


# -- canary -------------------------------------------------------------------------------
def canary_deployment(definition: dict[str, Any], existing: dict[str, Any] | None) -> Any:
    """The deployment that canaries moves of the policy's alias with the policy's rule.

    An existing deployment keeps its variants and sticky key; a missing one serves the alias
    as the single ``primary`` variant.
    """
    from loopml.serving.deployment import parse_deployment

    rollout = definition["rollout"]
    model, alias = definition["model"], definition["alias"]
    name = rollout.get("deployment") or model
    rule = {
        "share": rollout["share"],
        "duration": rollout["duration"],
        "min_requests": rollout["min_requests"],
        "max_error_rate": rollout["max_error_rate"],
        "max_p99_latency_ms": rollout["max_p99_latency_ms"],
        "min_quality": rollout["min_quality"],
        "check_interval": rollout["check_interval"],
    }
    if existing is None:
        data: dict[str, Any] = {
            "name": name,
            "model": model,
            "variants": [{"name": "primary", "model": alias}],
        }
    else:
        data = dict(existing)
        if data.get("model") != model:
            raise InvalidInput(
                f"deployment {name!r} serves model {data.get('model')!r}, not {model!r}: name "
                "another deployment in Canary(deployment=...)",
                field="rollout.deployment",
            )
        variants = [v for v in data.get("variants", []) if v.get("role", "primary") != "canary"]
        if not any(
            v.get("role", "primary") == "primary" and v.get("model") == alias for v in variants
        ):
            variants.insert(0, {"name": _free_name(variants), "model": alias})
        data["variants"] = variants
    data["canary"] = rule
    data["on_alias_move"] = "canary"
    return parse_deployment(data, source=f"deployment {name}")


def _free_name(variants: list[dict[str, Any]]) -> str:
    taken = {v.get("name") for v in variants}
    return next(n for n in ("primary", "loop-primary", "loop-primary-2") if n not in taken)


def ensure_deployment(
    deployments: DeploymentStore, definition: dict[str, Any]
) -> tuple[str, int, bool]:
    """Store the canary deployment of a policy unless the latest revision already is it.

    Returns
    -------
    (str, int, bool)
        The deployment name, its revision, and whether a revision was applied now.
    """
    from loopml.serving.deployment import check_registered

    name = definition["rollout"].get("deployment") or definition["model"]
    try:
        latest = deployments.get_deployment(name)
    except NotFound:
        latest = None
    config = canary_deployment(definition, None if latest is None else latest.config)
    wanted = config.to_dict()
    if latest is not None and latest.config == wanted:
        return name, latest.revision, False
    check_registered(config)
    revision = deployments.apply_deployment(name, wanted, LOOP_USER)
    return name, revision.revision, True


@dataclass(frozen=True)
class RolloutVerdict:
    """What the model server decided about a canary the loop started."""

    kind: str
    event: DeploymentEvent


def read_verdict(
    deployments: DeploymentStore, rollout: dict[str, Any]
) -> tuple[RolloutVerdict | None, int, bool]:
    """Look through the deployment's events since the canary for the server's verdict.

    Parameters
    ----------
    rollout : dict
        The rollout in flight: ``deployment``, ``candidate`` (version), ``event_cursor``.

    Returns
    -------
    (RolloutVerdict or None, int, bool)
        The verdict (``promoted`` or ``rolled_back``) if the server gave one, the id of the
        last event read, and whether the server has started the canary.
    """
    candidate = rollout["candidate"]
    cursor = int(rollout.get("event_cursor") or 0)
    started = bool(rollout.get("server_started"))
    for event in deployments.list_deployment_events(rollout["deployment"], limit=1000):
        if event.id is None or event.id <= cursor:
            continue
        cursor = event.id
        if event.kind == "canary_started" and event.to_version == candidate:
            started = True
        elif event.kind == "promoted" and event.to_version == candidate:
            return RolloutVerdict("promoted", event), cursor, True
        elif event.kind == "swapped" and event.to_version == candidate:
            # A server started before the deployment canaried alias moves switches at once.
            return RolloutVerdict("promoted", event), cursor, True
        elif event.kind == "rolled_back" and event.from_version == candidate:
            return RolloutVerdict("rolled_back", event), cursor, True
    return None, cursor, started
