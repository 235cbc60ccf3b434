"""The store interface of continuous-training policies, loop events, claims and state.

Exactly-once reactions rest on :meth:`LoopStore.claim_loop_trigger`, which inserts a row
under a unique key, so of several controllers claiming one trigger occurrence exactly one
gets ``True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class LoopPolicyRecord:
    """One stored version of a continuous-training policy (versions count up from 1)."""

    name: str
    version: int
    definition: dict[str, Any]
    created_time: int


@dataclass(frozen=True)
class LoopEvent:
    """A decision of the continuous-training loop, with its evidence.

    Attributes
    ----------
    policy : str
        The policy it belongs to.
    kind : str
        ``triggered``, ``skipped_cooldown``, ``skipped_rate_limit``, ``window_built``,
        ``trained``, ``gate_passed``, ``gate_rejected``, ``canary_started``, ``promoted``,
        ``rolled_back``, ``failed`` (and ``applied``, ``skipped_busy``).
    evidence : dict
        What the decision rests on: the trigger, the window (rows, time range, dataset
        version), the gate result, canary metrics, versions, the error.
    time : int
        Epoch milliseconds.
    policy_version : int or None
        The policy version in force.
    retrain : str or None
        Groups the events of one retrain, from its trigger to its promotion or rollback.
    id : int or None
        Assigned by the store, increasing.
    """

    policy: str
    kind: str
    evidence: dict[str, Any] = field(default_factory=dict)
    time: int = 0
    policy_version: int | None = None
    retrain: str | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "id": self.id,
            "time": self.time,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "kind": self.kind,
            "retrain": self.retrain,
            "evidence": self.evidence,
        }


@runtime_checkable
class LoopStore(Protocol):
    """Persists continuous-training policies, their events, trigger claims and loop state."""

    def put_loop_policy(
        self, name: str, definition: dict[str, Any], *, time: int | None = None
    ) -> tuple[LoopPolicyRecord, bool]:
        """Store ``definition`` as a new version unless it equals the latest; True if new."""
        ...

    def get_loop_policy(self, name: str, version: int | None = None) -> LoopPolicyRecord:
        """Return one version (the latest by default) or raise :class:`NotFound`."""
        ...

    def list_loop_policies(self) -> list[LoopPolicyRecord]:
        """Return the latest version of every policy, by name."""
        ...

    def list_loop_policy_versions(self, name: str) -> list[LoopPolicyRecord]:
        """Return every version of a policy, oldest first."""
        ...

    def delete_loop_policy(self, name: str) -> None:
        """Delete a policy, its versions, state and claims (its events stay)."""
        ...

    def add_loop_event(self, event: LoopEvent) -> LoopEvent:
        """Record an event (its time defaults to now); return it with its id and time."""
        ...

    def list_loop_events(
        self,
        policy: str | None = None,
        *,
        limit: int = 50,
        kinds: Sequence[str] | None = None,
        retrain: str | None = None,
    ) -> list[LoopEvent]:
        """Return the last ``limit`` matching events, oldest first."""
        ...

    def claim_loop_trigger(self, policy: str, key: str, owner: str, time: int) -> bool:
        """Claim the loop's reaction to one trigger occurrence; False if already claimed."""
        ...

    def get_loop_state(self, policy: str) -> dict[str, Any]:
        """Return the controller's saved state of a policy ({} when none)."""
        ...

    def set_loop_state(self, policy: str, state: dict[str, Any], *, time: int) -> None:
        """Save the controller's state of a policy."""
        ...
