"""Small per-domain store interfaces; every backend implements the ones it serves.

The SQL backend (SQLite, PostgreSQL) and the REST client both implement
:class:`ExperimentStore` and :class:`RunStore`; blob backends implement
:class:`BlobStore`; :class:`RunArtifactStore` is what the tracking service uses to attach
files to runs (blobs plus the per-run path index locally, one HTTP call remotely).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, runtime_checkable

from loopml.entities.data import Dataset, DatasetVersion, LineageEdge, ValidationRecord
from loopml.entities.pipelines import PipelineRun, PipelineStatus, StepExecution
from loopml.entities.registry import AuditEntry, ModelVersion, RegisteredModel
from loopml.entities.search import Clause, OrderBy
from loopml.entities.tracking import (
    ArtifactEntry,
    Experiment,
    Metric,
    Run,
    RunStatus,
)


@dataclass(frozen=True)
class RunPage:
    """One page of search results; ``next_offset`` is None on the last page."""

    runs: list[Run]
    next_offset: int | None


@runtime_checkable
class ExperimentStore(Protocol):
    """Persists experiments."""

    def create_experiment(self, name: str, tags: dict[str, str] | None = None) -> str:
        """Create an experiment and return its id; :class:`Conflict` if the name is taken."""
        ...

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return the experiment or raise :class:`NotFound`."""
        ...

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return the experiment with this name, or None."""
        ...

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """Return experiments ordered by id."""
        ...

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark the experiment (and hide its runs) deleted."""
        ...

    def restore_experiment(self, experiment_id: str) -> None:
        """Undo :meth:`delete_experiment`."""
        ...

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set a tag on an active experiment."""
        ...


@runtime_checkable
class RunStore(Protocol):
    """Persists runs with their params, metrics, tags and artifact index."""

    def create_run(
        self,
        experiment_id: str,
        run_name: str,
        user: str,
        start_time: int,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        host: str = "",
        pid: int | None = None,
    ) -> Run:
        """Create a RUNNING run in an active experiment."""
        ...

    def get_run(self, run_id: str) -> Run:
        """Return the run (deleted ones too) or raise :class:`NotFound`."""
        ...

    def set_run_status(
        self, run_id: str, status: RunStatus, end_time: int | None, only_if_running: bool = False
    ) -> bool:
        """Set the status; with ``only_if_running`` change nothing unless the run is RUNNING.

        Returns whether the run was changed.
        """
        ...

    def set_run_name(self, run_id: str, run_name: str) -> None:
        """Rename a run."""
        ...

    def heartbeat(self, run_id: str, time_ms: int) -> None:
        """Record that the process owning the run is alive."""
        ...

    def delete_run(self, run_id: str) -> None:
        """Soft-delete a run."""
        ...

    def restore_run(self, run_id: str) -> None:
        """Undo :meth:`delete_run`."""
        ...

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Write metrics, params and tags in one transaction: all of them or none.

        Raises :class:`Conflict` when a param already holds a different value, and
        :class:`InvalidInput` when the run is not active.
        """
        ...

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag from a run."""
        ...

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Return every value of one metric, ordered by step then timestamp."""
        ...

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 1000,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> RunPage:
        """Return runs matching every clause, sorted, one page at a time."""
        ...

    def experiment_keys(self, experiment_id: str) -> dict[str, list[str]]:
        """Distinct ``metrics``, ``params`` and ``tags`` keys of an experiment's active runs.

        Each list is sorted; :class:`NotFound` for an unknown experiment.
        """
        ...

    def add_artifact(self, run_id: str, entry: ArtifactEntry) -> None:
        """Point ``entry.path`` of the run at a stored blob (replacing an earlier one)."""
        ...

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        """Return the run's artifact entries under a path prefix, sorted by path."""
        ...

    def get_artifact(self, run_id: str, path: str) -> ArtifactEntry:
        """Return one artifact entry or raise :class:`NotFound`."""
        ...


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed storage: blobs are named by the sha256 of their bytes."""

    uri: str

    def put_file(self, local_path: str) -> tuple[str, int]:
        """Store a file's bytes atomically; return ``(sha256, size)``."""
        ...

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store a stream's bytes atomically; return ``(sha256, size)``."""
        ...

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading or raise :class:`NotFound`."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove a blob (missing blobs are ignored)."""
        ...


@runtime_checkable
class RunArtifactStore(Protocol):
    """Files attached to runs, addressed by a relative path inside each run."""

    def log_artifact(self, run_id: str, path: str, stream: BinaryIO) -> ArtifactEntry:
        """Store the stream's bytes as ``path`` of the run."""
        ...

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        """Return the run's files under ``prefix``."""
        ...

    def open_artifact(self, run_id: str, path: str) -> Iterator[bytes]:
        """Yield the bytes of one file in chunks, or raise :class:`NotFound`."""
        ...


@dataclass(frozen=True)
class TokenInfo:
    """A stored API token: only the sha256 of the secret is kept."""

    name: str
    role: str
    token_hash: str
    created_time: int


@runtime_checkable
class AuthStore(Protocol):
    """Persists the server's bearer tokens."""

    def create_token(self, name: str, role: str, token_hash: str) -> TokenInfo:
        """Store a new token; :class:`Conflict` if the name is taken."""
        ...

    def get_token_by_hash(self, token_hash: str) -> TokenInfo | None:
        """Return the token with this hash, or None."""
        ...

    def list_tokens(self) -> list[TokenInfo]:
        """Return every token (without secrets)."""
        ...

    def delete_token(self, name: str) -> None:
        """Revoke a token or raise :class:`NotFound`."""
        ...


@runtime_checkable
class DatasetStore(Protocol):
    """Persists datasets, their versions, tags, lineage edges and validation results."""

    def add_dataset_version(
        self,
        version: DatasetVersion,
        profile_json: str | None,
        description: str = "",
    ) -> tuple[DatasetVersion, bool]:
        """Record a version (its ``version`` number is assigned here).

        Returns the stored version and whether it is new: content already registered under
        the name (same digest) returns the existing version and False.
        """
        ...

    def get_dataset(self, name: str) -> Dataset:
        """Return a dataset or raise :class:`NotFound`."""
        ...

    def list_datasets(self) -> list[Dataset]:
        """Return every dataset, by name."""
        ...

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """Return a dataset's versions, oldest first."""
        ...

    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """Return version N, or the latest when ``version`` is None."""
        ...

    def find_dataset_versions_by_digest(
        self, name: str, digest_prefix: str
    ) -> list[DatasetVersion]:
        """Return the dataset's versions whose digest starts with the prefix."""
        ...

    def get_dataset_profile(self, name: str, version: int) -> str | None:
        """Return the stored profile JSON of a version."""
        ...

    def set_dataset_profile(self, name: str, version: int, profile_json: str) -> None:
        """Store (or replace) a version's profile JSON."""
        ...

    def set_dataset_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Tag a dataset version."""
        ...

    def set_dataset_schema(self, name: str, schema_yaml: str | None) -> None:
        """Attach a schema (YAML text) to a dataset name, or detach it with None."""
        ...

    def get_dataset_schema(self, name: str) -> str | None:
        """Return the attached schema YAML, or None."""
        ...

    def delete_dataset_version(self, name: str, version: int) -> DatasetVersion:
        """Delete one version (and the dataset when it was the last); return what was deleted."""
        ...

    def blob_in_use(self, sha256: str) -> bool:
        """Whether any dataset version or run artifact still points at a blob."""
        ...

    def add_lineage(
        self, source_kind: str, source_id: str, target_kind: str, target_id: str, role: str
    ) -> None:
        """Record an edge (idempotent)."""
        ...

    def list_lineage(
        self,
        source: tuple[str, str] | None = None,
        target: tuple[str, str] | None = None,
    ) -> list[LineageEdge]:
        """Return edges from a ``(kind, id)`` source and/or to a target."""
        ...

    def add_validation_result(
        self, name: str, version: int, passed: bool, result_json: str, reference: str | None
    ) -> ValidationRecord:
        """Store a validation result of a version."""
        ...

    def list_validation_results(
        self, name: str, version: int | None = None
    ) -> list[ValidationRecord]:
        """Return validation results of a dataset (or one version), newest first."""
        ...


@runtime_checkable
class PipelineStore(Protocol):
    """Persists pipeline runs and their step executions."""

    def create_pipeline_run(self, run: PipelineRun) -> None:
        """Record a new pipeline run."""
        ...

    def finish_pipeline_run(
        self, run_id: str, status: PipelineStatus, end_time: int, error: str | None = None
    ) -> None:
        """Record how a pipeline run ended."""
        ...

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        """Return a pipeline run or raise :class:`NotFound`."""
        ...

    def list_pipeline_runs(
        self, pipeline_name: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[PipelineRun]:
        """Return pipeline runs, newest first."""
        ...

    def list_pipelines(self) -> list[dict[str, Any]]:
        """One summary per pipeline name: runs, last run id, status and start time."""
        ...

    def save_step_execution(self, execution: StepExecution) -> None:
        """Insert or replace a step execution."""
        ...

    def list_step_executions(self, pipeline_run_id: str) -> list[StepExecution]:
        """Return a pipeline run's step executions in the order they were recorded."""
        ...

    def find_cached_execution(self, step_name: str, cache_key: str) -> StepExecution | None:
        """The latest COMPLETED execution of a step with this cache key, or None."""
        ...

    def previous_step_execution(
        self, pipeline_name: str, step_name: str, before_run_id: str
    ) -> StepExecution | None:
        """The latest successful execution of the step in earlier runs of the pipeline."""
        ...


@runtime_checkable
class RegistryStore(Protocol):
    """Persists registered models, versions, aliases, tags and the audit trail."""

    def create_registered_model(
        self,
        name: str,
        description: str = "",
        user: str = "",
        tags: dict[str, str] | None = None,
    ) -> RegisteredModel:
        """Create a registered model."""
        ...

    def get_registered_model(self, name: str) -> RegisteredModel:
        """Return a registered model."""
        ...

    def list_registered_models(self) -> list[RegisteredModel]:
        """Return every registered model."""
        ...

    def create_model_version(self, version: ModelVersion) -> ModelVersion:
        """Record a new version (numbered by the store)."""
        ...

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """Return one version."""
        ...

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        """Return a model's versions."""
        ...

    def set_version_status(
        self, name: str, version: int, status: str, reason: str, user: str
    ) -> None:
        """Change a version's status."""
        ...

    def set_version_field(
        self, name: str, version: int, field: str, value: dict[str, Any], user: str
    ) -> None:
        """Store a version's evaluation or gate result."""
        ...

    def set_tag(self, name: str, version: int, key: str, value: str, user: str) -> None:
        """Tag a model (version 0) or a version."""
        ...

    def set_alias(self, name: str, alias: str, version: int, reason: str, user: str) -> int | None:
        """Point an alias at a version; return the previous version."""
        ...

    def delete_alias(self, name: str, alias: str, reason: str, user: str) -> int:
        """Remove an alias; return the version it pointed at."""
        ...

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """Return the version an alias points at."""
        ...

    def list_audit(self, name: str) -> list[AuditEntry]:
        """Return the audit trail of a model."""
        ...


@dataclass(frozen=True)
class DeploymentRevision:
    """One applied configuration of a deployment (revisions count up from 1)."""

    name: str
    revision: int
    config: dict[str, Any]
    user: str
    applied_at: int

    def summary(self) -> dict[str, Any]:
        """Name, revision, model, variant count, when and by whom: a line of a listing."""
        return {
            "name": self.name,
            "revision": self.revision,
            "model": self.config.get("model"),
            "variants": len(self.config.get("variants") or []),
            "applied_at": self.applied_at,
            "user": self.user,
        }


@dataclass(frozen=True)
class DeploymentEvent:
    """A decision taken for a deployment, with the versions involved and the evidence.

    ``kind`` is ``applied``, ``canary_started``, ``promoted``, ``rolled_back`` or ``swapped``.
    """

    deployment: str
    revision: int
    kind: str
    variant: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    time: int = 0
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready values (without the deployment's name)."""
        return {
            "id": self.id,
            "time": self.time,
            "revision": self.revision,
            "kind": self.kind,
            "variant": self.variant,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "evidence": self.evidence,
        }


@runtime_checkable
class DeploymentStore(Protocol):
    """Persists deployment configurations (one row per revision) and their events."""

    def apply_deployment(self, name: str, config: dict[str, Any], user: str) -> DeploymentRevision:
        """Store ``config`` as the next revision of ``name`` with an ``applied`` event."""
        ...

    def get_deployment(self, name: str, revision: int | None = None) -> DeploymentRevision:
        """Return one revision (the latest by default) or raise :class:`NotFound`."""
        ...

    def list_deployments(self) -> list[DeploymentRevision]:
        """Return the latest revision of every deployment, by name."""
        ...

    def list_deployment_revisions(self, name: str) -> list[DeploymentRevision]:
        """Return every revision of a deployment, oldest first."""
        ...

    def add_deployment_event(self, event: DeploymentEvent) -> DeploymentEvent:
        """Record an event (its time defaults to now); return it with its id and time."""
        ...

    def list_deployment_events(self, name: str, limit: int | None = None) -> list[DeploymentEvent]:
        """Return a deployment's events oldest first (only the last ``limit`` if given)."""
        ...


@dataclass(frozen=True)
class PredictionSegment:
    """One Parquet file of the prediction log and the slice of traffic it holds.

    ``path`` is the segment's logical name (``predictions/<model>/...``); the bytes live in
    the blob store under ``blob_sha256``. Times are epoch milliseconds (UTC).
    """

    model: str
    version: int
    path: str
    blob_sha256: str
    size_bytes: int
    min_time: int
    max_time: int
    rows: int
    id: int = 0
    created_time: int = 0


@dataclass(frozen=True)
class LabelRecord:
    """The ground truth of one predicted row; ``label_json`` is the JSON of the value."""

    request_id: str
    row: int
    label_json: str
    kind: str
    received_time: int = 0


@runtime_checkable
class PredictionLogStore(Protocol):
    """Indexes prediction log segments and the requests they hold, and keeps labels."""

    def add_prediction_segment(
        self, segment: PredictionSegment, requests: Sequence[tuple[str, int, int]]
    ) -> PredictionSegment:
        """Commit a segment with its ``(request_id, time_ms, rows)`` entries in one go."""
        ...

    def list_prediction_segments(
        self,
        model: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> list[PredictionSegment]:
        """Return the segments of a model overlapping ``[since_ms, until_ms)``, oldest first."""
        ...

    def request_models(self, request_ids: Sequence[str]) -> dict[str, list[str]]:
        """Map each logged request id to the models that answered it (unknown ids absent)."""
        ...

    def label_kinds(self, models: Sequence[str]) -> dict[str, str]:
        """Return the kind of the labels already stored for each model that has some."""
        ...

    def upsert_labels(self, labels: Sequence[LabelRecord]) -> None:
        """Store labels in one transaction; a label for the same row replaces the old one."""
        ...

    def list_labels(
        self,
        model: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> list[LabelRecord]:
        """Return the labels of a model's requests logged in ``[since_ms, until_ms)``."""
        ...

    def label_stats(self, model: str) -> dict[str, int]:
        """Count a model's logged requests and rows, labelled rows, and orphan labels."""
        ...


@dataclass(frozen=True)
class MonitorRecord:
    """A saved monitor: the model it watches and its spec (see ``loopml.monitoring``)."""

    name: str
    model: str
    spec: dict[str, Any]
    created_time: int
    last_update_time: int


@dataclass(frozen=True)
class MonitorRunRecord:
    """One stored monitor run: when, which model version, the verdict and the result."""

    id: int
    monitor: str
    model: str
    version: int | None
    time: int
    verdict: str
    result: dict[str, Any]


@dataclass(frozen=True)
class AlertRecord:
    """One incident of a monitor check; ``state`` is ``firing`` or ``resolved``."""

    id: int
    monitor: str
    model: str
    check: str
    state: str
    value: float | None
    message: str
    fired_time: int
    resolved_time: int | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "id": self.id,
            "monitor": self.monitor,
            "model": self.model,
            "check": self.check,
            "state": self.state,
            "value": self.value,
            "message": self.message,
            "fired_time": self.fired_time,
            "resolved_time": self.resolved_time,
        }


@runtime_checkable
class MonitorStore(Protocol):
    """Persists monitors, their runs, reference sketches and alert state."""

    def save_monitor(self, name: str, model: str, spec: dict[str, Any]) -> MonitorRecord:
        """Create or replace a monitor."""
        ...

    def get_monitor(self, name: str) -> MonitorRecord:
        """Return a monitor or raise ``NotFound``."""
        ...

    def list_monitors(self, model: str | None = None) -> list[MonitorRecord]:
        """Return every monitor (of one model), by name."""
        ...

    def delete_monitor(self, name: str) -> None:
        """Delete a monitor with its runs and alerts."""
        ...

    def add_monitor_run(
        self,
        monitor: str,
        model: str,
        version: int | None,
        time: int,
        verdict: str,
        result: dict[str, Any],
    ) -> int:
        """Store one run's result; return its id."""
        ...

    def list_monitor_runs(self, monitor: str, limit: int = 20) -> list[MonitorRunRecord]:
        """Return a monitor's latest runs, newest first."""
        ...

    def latest_monitor_runs(self) -> list[MonitorRunRecord]:
        """Return the latest run of every monitor that has run."""
        ...

    def get_reference_sketch(self, key: str) -> dict[str, Any] | None:
        """Return the stored reference sketch under ``key``, or None."""
        ...

    def put_reference_sketch(
        self, key: str, reference: str, features: list[str], sketch: dict[str, Any]
    ) -> None:
        """Store a reference sketch (the first writer of a key wins)."""
        ...

    def fire_alert(
        self, monitor: str, model: str, check: str, value: float | None, message: str, time: int
    ) -> tuple[AlertRecord, bool]:
        """Return the check's firing alert, opening one if none is; True when opened now."""
        ...

    def resolve_alert(self, alert_id: int, time: int) -> AlertRecord:
        """Mark a firing alert resolved."""
        ...

    def list_alerts(
        self, monitor: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[AlertRecord]:
        """Return alerts, newest first, optionally of one monitor and state."""
        ...
