"""Pipeline entities: pipeline runs, step executions, output references, schedules, triggers."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class PipelineStatus(str, enum.Enum):
    """Status of a pipeline run."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class StepStatus(str, enum.Enum):
    """Status of one step execution; CACHED means its outputs were reused."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CACHED = "CACHED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    @property
    def succeeded(self) -> bool:
        """Whether downstream steps may use the outputs."""
        return self in (StepStatus.COMPLETED, StepStatus.CACHED)


@dataclass(frozen=True)
class OutputRef:
    """A step output stored in the blob store: what it is and how to load it back."""

    name: str
    sha256: str
    size: int
    materializer: str
    type_name: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputRef:
        """Build from :meth:`to_dict` output."""
        return cls(**data)


@dataclass(frozen=True)
class StepExecution:
    """One execution (or cache hit) of a step inside a pipeline run."""

    id: str
    pipeline_run_id: str
    step_name: str
    step_version: str
    cache_key: str
    status: StepStatus
    start_time: int | None = None
    end_time: int | None = None
    attempts: int = 0
    executor: str = ""
    host: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: tuple[OutputRef, ...] = ()
    upstream: tuple[str, ...] = ()
    logs_sha256: str | None = None
    error: str | None = None
    traceback: str | None = None
    cache_reason: str = ""
    run_id: str | None = None

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from start to end, when both are known."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        data = asdict(self)
        data["status"] = self.status.value
        data["outputs"] = [o.to_dict() for o in self.outputs]
        data["upstream"] = list(self.upstream)
        data["duration_ms"] = self.duration_ms
        return data


@dataclass(frozen=True)
class PipelineRun:
    """One run of a pipeline with its parameters; steps are listed separately."""

    id: str
    pipeline_name: str
    pipeline_version: str
    status: PipelineStatus
    start_time: int
    end_time: int | None
    executor: str
    host: str
    params: dict[str, Any]
    run_id: str | None = None
    trigger: str = "manual"
    error: str | None = None

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from start to end, once ended."""
        return None if self.end_time is None else self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        data = asdict(self)
        data["status"] = self.status.value
        data["duration_ms"] = self.duration_ms
        return data


@dataclass(frozen=True)
class Schedule:
    """A pipeline to run on a cron schedule."""

    id: int
    name: str
    pipeline_ref: str
    cron: str
    params: dict[str, Any]
    catchup: bool
    enabled: bool
    created_time: int
    last_fire_time: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class Trigger:
    """A pipeline to run when an event of a kind arrives (``new_dataset``, ``drift``...)."""

    id: int
    name: str
    pipeline_ref: str
    event_kind: str
    match: dict[str, Any]
    params: dict[str, Any]
    enabled: bool
    created_time: int
    last_event_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """Something that happened and may trigger pipelines (``lm.triggers.fire``)."""

    id: int
    kind: str
    payload: dict[str, Any]
    created_time: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)
