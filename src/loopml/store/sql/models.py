"""Table definitions of the metadata store (SQLAlchemy 2 declarative models).

Times are epoch milliseconds in BIGINT columns so that SQLite and PostgreSQL agree exactly.
The Alembic migrations under ``migrations/versions`` create these tables; a test checks that
the two never drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAME_LENGTH = 250


class Base(DeclarativeBase):
    """Declarative base of every loopml table."""


class ExperimentRow(Base):
    """An experiment."""

    __tablename__ = "experiments"

    experiment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True, nullable=False)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    creation_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_update_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ExperimentTagRow(Base):
    """A tag on an experiment."""

    __tablename__ = "experiment_tags"

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class RunRow(Base):
    """A run's attributes."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id"), nullable=False, index=True
    )
    run_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    start_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    user: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    parent_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ParamRow(Base):
    """A write-once run parameter."""

    __tablename__ = "params"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class TagRow(Base):
    """A run tag."""

    __tablename__ = "tags"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class MetricRow(Base):
    """One logged metric value; the full history is kept."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    # NULL stands for NaN: SQLite cannot store NaN, so both backends use NULL alike.
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    step: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class LatestMetricRow(Base):
    """The latest value (highest step, then timestamp) of each metric, for search."""

    __tablename__ = "latest_metrics"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    step: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ArtifactRow(Base):
    """One entry of a run's artifact index: a path pointing at a content-addressed blob."""

    __tablename__ = "artifacts"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)


class TokenRow(Base):
    """A server API token; only the sha256 of the secret is stored."""

    __tablename__ = "auth_tokens"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class DatasetRow(Base):
    """A named dataset."""

    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    schema_yaml: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_update_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class DatasetVersionRow(Base):
    """An immutable dataset version."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_dataset_versions_name_version"),
        UniqueConstraint("name", "digest", name="uq_dataset_versions_name_digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(
        ForeignKey("datasets.name", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    digest: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    blob_sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    num_rows: Mapped[int] = mapped_column(BigInteger, nullable=False)
    num_columns: Mapped[int] = mapped_column(Integer, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    columns_json: Mapped[str] = mapped_column(Text, nullable=False)
    profile_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(Text, nullable=False, default="")
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class DatasetVersionTagRow(Base):
    """A tag on a dataset version."""

    __tablename__ = "dataset_version_tags"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class LineageRow(Base):
    """A lineage edge between two objects (dataset version, run, model version...)."""

    __tablename__ = "lineage"
    __table_args__ = (
        UniqueConstraint(
            "source_kind",
            "source_id",
            "target_kind",
            "target_id",
            "role",
            name="uq_lineage_edge",
        ),
        Index("ix_lineage_target", "target_kind", "target_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    source_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    target_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ValidationResultRow(Base):
    """A stored validation result of a dataset version."""

    __tablename__ = "validation_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reference: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    result_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PipelineRunRow(Base):
    """A pipeline run."""

    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, index=True)
    pipeline_version: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    start_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    executor: Mapped[str] = mapped_column(String(64), nullable=False)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    trigger: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class StepExecutionRow(Base):
    """One step execution of a pipeline run."""

    __tablename__ = "step_executions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline_run_id: Mapped[str] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    step_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    step_version: Mapped[str] = mapped_column(String(64), nullable=False)
    cache_key: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    start_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    executor: Mapped[str] = mapped_column(String(64), nullable=False)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    inputs_json: Mapped[str] = mapped_column(Text, nullable=False)
    outputs_json: Mapped[str] = mapped_column(Text, nullable=False)
    upstream_json: Mapped[str] = mapped_column(Text, nullable=False)
    logs_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    cache_reason: Mapped[str] = mapped_column(Text, nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ScheduleRow(Base):
    """A cron schedule of a pipeline."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True, nullable=False)
    pipeline_ref: Mapped[str] = mapped_column(String(512), nullable=False)
    cron: Mapped[str] = mapped_column(String(128), nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    catchup: Mapped[bool] = mapped_column(Boolean, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_fire_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ScheduleFireRow(Base):
    """One firing of a schedule; the unique key makes every firing happen once."""

    __tablename__ = "schedule_fires"

    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("schedules.id", ondelete="CASCADE"), primary_key=True
    )
    fire_time: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fired_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class TriggerRow(Base):
    """A pipeline run on events of a kind."""

    __tablename__ = "triggers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True, nullable=False)
    pipeline_ref: Mapped[str] = mapped_column(String(512), nullable=False)
    event_kind: Mapped[str] = mapped_column(String(64), nullable=False)
    match_json: Mapped[str] = mapped_column(Text, nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class EventRow(Base):
    """An event that triggers may react to."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    payload_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class TriggerFireRow(Base):
    """A trigger's reaction to one event; the unique key makes it happen once."""

    __tablename__ = "trigger_fires"

    trigger_id: Mapped[int] = mapped_column(
        ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    fired_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class LockRow(Base):
    """A named lease: one process at a time holds it until it expires."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    expires_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class RegisteredModelRow(Base):
    """A registered model."""

    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_update_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ModelVersionRow(Base):
    """A registered model version."""

    __tablename__ = "model_versions"

    name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    artifact_path: Mapped[str] = mapped_column(String(1024), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    flavor: Mapped[str] = mapped_column(String(64), nullable=False)
    signature_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics_json: Mapped[str] = mapped_column(Text, nullable=False)
    datasets_json: Mapped[str] = mapped_column(Text, nullable=False)
    code_version: Mapped[str] = mapped_column(String(64), nullable=False)
    user: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    evaluation_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    gate_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_update_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ModelTagRow(Base):
    """A tag on a registered model (version 0) or on one version."""

    __tablename__ = "model_tags"

    name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class ModelAliasRow(Base):
    """An alias (``champion``, ``challenger``...) pointing at one version."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)


class AuditRow(Base):
    """An entry of the registry's audit trail."""

    __tablename__ = "model_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    from_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    to_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    user: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class DeploymentRow(Base):
    """One applied revision of a deployment's configuration."""

    __tablename__ = "deployments"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_json: Mapped[str] = mapped_column(Text, nullable=False)
    user: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    applied_at: Mapped[int] = mapped_column(BigInteger, nullable=False)


class DeploymentEventRow(Base):
    """A decision taken for a deployment (applied, canary started, promoted, rolled back...)."""

    __tablename__ = "deployment_events"
    __table_args__ = (Index("ix_deployment_events_deployment_time", "deployment", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    variant: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    evidence_json: Mapped[str] = mapped_column(Text, nullable=False)


class PredictionSegmentRow(Base):
    """One Parquet segment of the prediction log: where it is and the time range it covers."""

    __tablename__ = "prediction_segments"
    __table_args__ = (Index("ix_prediction_segments_model_time", "model", "min_time", "max_time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    blob_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    min_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    max_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PredictionRequestRow(Base):
    """A logged request: which model version answered it, when, and the segment with its rows.

    The same request id may be answered by several models or versions (shadow traffic); a
    label of the request then applies to each of those answers.
    """

    __tablename__ = "prediction_requests"
    __table_args__ = (Index("ix_prediction_requests_model_time", "model", "time"),)

    request_id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("prediction_segments.id", ondelete="CASCADE"), nullable=False
    )


class PredictionLabelRow(Base):
    """The ground truth of one predicted row; the latest label received wins."""

    __tablename__ = "prediction_labels"

    request_id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_json: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    received_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class MonitorRow(Base):
    """A saved monitor: which model it watches and its JSON spec (window, rules, ...)."""

    __tablename__ = "monitors"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, index=True)
    spec_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_update_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class MonitorRunRow(Base):
    """One run of a monitor: its verdict and the whole result as JSON."""

    __tablename__ = "monitor_runs"
    __table_args__ = (
        Index("ix_monitor_runs_monitor_time", "monitor", "time"),
        Index("ix_monitor_runs_model_time", "model", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    monitor: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    result_json: Mapped[str] = mapped_column(Text, nullable=False)


class MonitorReferenceRow(Base):
    """Reference statistics (binned sketches and a bounded sample), computed once per key."""

    __tablename__ = "monitor_references"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    reference: Mapped[str] = mapped_column(String(1024), nullable=False)
    features_json: Mapped[str] = mapped_column(Text, nullable=False)
    sketch_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class MonitorAlertRow(Base):
    """One incident of a monitor check: firing until a run sees the check recover."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (Index("ix_monitor_alerts_monitor_state", "monitor", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    monitor: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    check_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    fired_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    resolved_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LoopPolicyRow(Base):
    """One version of a continuous-training policy: its validated definition as JSON."""

    __tablename__ = "loop_policies"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class LoopEventRow(Base):
    """A decision of the continuous-training loop with its evidence as JSON."""

    __tablename__ = "loop_events"
    __table_args__ = (
        Index("ix_loop_events_policy_id", "policy", "id"),
        Index("ix_loop_events_retrain", "retrain"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    policy: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    policy_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    retrain: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence_json: Mapped[str] = mapped_column(Text, nullable=False)


class LoopClaimRow(Base):
    """A claimed trigger occurrence: the key makes the loop react to it exactly once."""

    __tablename__ = "loop_claims"

    policy: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class LoopStateRow(Base):
    """The controller's state of a policy (cursors, retrain times, the rollout in flight)."""

    __tablename__ = "loop_state"

    policy: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    state_json: Mapped[str] = mapped_column(Text, nullable=False)
    updated_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class FeatureDefinitionRow(Base):
    """One version of a feature-store definition (entity, feature view, service) as JSON."""

    __tablename__ = "feature_definitions"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class FeatureWatermarkRow(Base):
    """How far a feature view is materialized into one online store (epoch microseconds)."""

    __tablename__ = "feature_watermarks"

    view: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    target: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    view_version: Mapped[int] = mapped_column(Integer, nullable=False)
    watermark: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
