"""Plain, frozen data objects shared by every layer; no I/O happens here."""

from loopml.entities.tracking import (
    ArtifactEntry,
    Experiment,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
)

__all__ = [
    "ArtifactEntry",
    "Experiment",
    "LifecycleStage",
    "Metric",
    "Param",
    "Run",
    "RunStatus",
    "RunTag",
]
