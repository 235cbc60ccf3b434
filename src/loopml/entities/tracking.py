"""Tracking entities: experiments, runs, params, metrics, tags and artifact entries."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class RunStatus(str, enum.Enum):
    """Where a run is in its life; every run ends FINISHED, FAILED or KILLED."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended."""
        return self is not RunStatus.RUNNING


class LifecycleStage(str, enum.Enum):
    """Soft-delete marker for experiments and runs."""

    ACTIVE = "active"
    DELETED = "deleted"


@dataclass(frozen=True)
class Experiment:
    """A named group of runs."""

    experiment_id: str
    name: str
    lifecycle_stage: LifecycleStage
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        data = asdict(self)
        data["lifecycle_stage"] = self.lifecycle_stage.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        """Build from the dict :meth:`to_dict` returns."""
        return cls(
            experiment_id=str(data["experiment_id"]),
            name=data["name"],
            lifecycle_stage=LifecycleStage(data["lifecycle_stage"]),
            creation_time=int(data["creation_time"]),
            last_update_time=int(data["last_update_time"]),
            tags=dict(data.get("tags") or {}),
        )


@dataclass(frozen=True)
class Metric:
    """One value of a metric at a step; timestamps are epoch milliseconds."""

    key: str
    value: float
    timestamp: int
    step: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (NaN and infinities become strings)."""
        return {
            "key": self.key,
            "value": _float_out(self.value),
            "timestamp": self.timestamp,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metric:
        """Build from the dict :meth:`to_dict` returns."""
        return cls(
            key=data["key"],
            value=float(data["value"]),
            timestamp=int(data["timestamp"]),
            step=int(data.get("step", 0)),
        )


@dataclass(frozen=True)
class Param:
    """A run parameter; params are write-once strings."""

    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    """A mutable string label on a run."""

    key: str
    value: str


@dataclass(frozen=True)
class ArtifactEntry:
    """One file in a run's artifact index: a path pointing at a content-addressed blob."""

    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class Run:
    """A tracked execution: its attributes plus its latest metrics, params and tags."""

    run_id: str
    experiment_id: str
    run_name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    lifecycle_stage: LifecycleStage
    user: str
    parent_run_id: str | None = None
    host: str = ""
    pid: int | None = None
    heartbeat_time: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        data = asdict(self)
        data["status"] = self.status.value
        data["lifecycle_stage"] = self.lifecycle_stage.value
        data["metrics"] = {k: _float_out(v) for k, v in self.metrics.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """Build from the dict :meth:`to_dict` returns."""
        return cls(
            run_id=data["run_id"],
            experiment_id=str(data["experiment_id"]),
            run_name=data["run_name"],
            status=RunStatus(data["status"]),
            start_time=int(data["start_time"]),
            end_time=None if data.get("end_time") is None else int(data["end_time"]),
            lifecycle_stage=LifecycleStage(data["lifecycle_stage"]),
            user=data.get("user", ""),
            parent_run_id=data.get("parent_run_id"),
            host=data.get("host", ""),
            pid=data.get("pid"),
            heartbeat_time=data.get("heartbeat_time"),
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
            params=dict(data.get("params") or {}),
            tags=dict(data.get("tags") or {}),
        )


def _float_out(value: float) -> float | str:
    """JSON has no NaN or infinity; send them as the strings Python's float() reads back."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return value
