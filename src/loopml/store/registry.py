"""From settings to backends: the URI scheme picks the store implementation."""

from __future__ import annotations

from dataclasses import dataclass

from loopml.config import Settings
from loopml.errors import InvalidInput
from loopml.store.base import (
    AuthStore,
    BlobStore,
    DatasetStore,
    DeploymentStore,
    ExperimentStore,
    MonitorStore,
    PipelineStore,
    PredictionLogStore,
    RegistryStore,
    RunArtifactStore,
    RunStore,
)
from loopml.store.features_base import FeatureStore
from loopml.store.loop_base import LoopStore


@dataclass(frozen=True)
class TrackingStores:
    """The backends one tracking service needs."""

    experiments: ExperimentStore
    runs: RunStore
    artifacts: RunArtifactStore
    auth: AuthStore | None


def open_tracking_stores(settings: Settings) -> TrackingStores:
    """Open the stores the settings name.

    An ``http(s)://`` tracking URI selects the REST client for everything; otherwise the SQL
    store (SQLite or PostgreSQL) holds metadata and the artifact URI picks the blob store.
    """
    if settings.tracking_uri:
        from loopml.store.rest import RestTrackingStore

        rest = RestTrackingStore(settings.tracking_uri, token=settings.tracking_token)
        return TrackingStores(experiments=rest, runs=rest, artifacts=rest, auth=None)
    from loopml.store.artifacts_index import IndexedArtifactStore
    from loopml.store.sql import SqlTrackingStore

    sql = SqlTrackingStore(settings.resolved_store_uri)
    artifacts = IndexedArtifactStore(_blob_store(settings), sql)
    return TrackingStores(experiments=sql, runs=sql, artifacts=artifacts, auth=sql)


def _direct_store_uri(settings: Settings, what: str) -> str:
    """The metadata store URI, refusing a tracking-server-only configuration.

    Tracking goes through the server's REST API; datasets, pipelines and the registry read
    and write the metadata and artifact stores directly (the server exposes read routes and
    the registry's routes to remote clients).
    """
    if settings.tracking_uri:
        raise InvalidInput(
            f"{what} need direct access to the metadata and artifact stores: set "
            "LOOPML_STORE_URI and LOOPML_ARTIFACT_URI to the server's stores instead of "
            "LOOPML_TRACKING_URI",
            field="tracking_uri",
        )
    return settings.resolved_store_uri


def _blob_store(settings: Settings) -> BlobStore:
    """The blob store of the settings' artifact URI."""
    from loopml.store.artifacts import open_blob_store

    return open_blob_store(settings.resolved_artifact_uri)


@dataclass(frozen=True)
class DataStores:
    """The backends the dataset service needs."""

    datasets: DatasetStore
    blobs: BlobStore


def open_data_stores(settings: Settings) -> DataStores:
    """Open the dataset metadata store and the blob store the settings name.

    Raises
    ------
    InvalidInput
        With a tracking server configured: datasets are read and written directly against
        the metadata and artifact stores, so the client needs ``LOOPML_STORE_URI`` and
        ``LOOPML_ARTIFACT_URI`` rather than ``LOOPML_TRACKING_URI``.
    """
    uri = _direct_store_uri(settings, "dataset calls")
    from loopml.store.sql.datasets import SqlDatasetStore

    return DataStores(datasets=SqlDatasetStore(uri), blobs=_blob_store(settings))


@dataclass(frozen=True)
class PipelineStores:
    """The backends the pipeline runner needs."""

    pipelines: PipelineStore
    blobs: BlobStore


def open_pipeline_stores(settings: Settings) -> PipelineStores:
    """Open the pipeline metadata store and the blob store the settings name."""
    uri = _direct_store_uri(settings, "pipeline runs")
    from loopml.store.sql.pipelines import SqlPipelineStore

    return PipelineStores(pipelines=SqlPipelineStore(uri), blobs=_blob_store(settings))


@dataclass(frozen=True)
class RegistryStores:
    """The backends the registry service needs."""

    registry: RegistryStore
    lineage: DatasetStore | None


def open_registry_stores(settings: Settings) -> RegistryStores:
    """Open the registry store the settings name."""
    uri = _direct_store_uri(settings, "model registry calls")
    from loopml.store.sql.datasets import SqlDatasetStore
    from loopml.store.sql.registry import SqlRegistryStore

    return RegistryStores(registry=SqlRegistryStore(uri), lineage=SqlDatasetStore(uri))


def open_deployment_store(settings: Settings) -> DeploymentStore:
    """Open the store of deployment configurations and their events."""
    uri = _direct_store_uri(settings, "deployments")
    from loopml.store.sql.deployments import SqlDeploymentStore

    return SqlDeploymentStore(uri)


@dataclass(frozen=True)
class PredictionLogStores:
    """The backends the prediction log and its labels need."""

    log: PredictionLogStore
    blobs: BlobStore


def open_prediction_log_stores(settings: Settings) -> PredictionLogStores:
    """Open the prediction log index and the blob store holding its Parquet segments."""
    uri = _direct_store_uri(settings, "the prediction log")
    from loopml.store.sql.monitoring_log import SqlPredictionLogStore

    return PredictionLogStores(log=SqlPredictionLogStore(uri), blobs=_blob_store(settings))


def open_monitor_store(settings: Settings) -> MonitorStore:
    """Open the store of monitors, their runs, reference sketches and alerts."""
    uri = _direct_store_uri(settings, "monitors")
    from loopml.store.sql.monitors import SqlMonitorStore

    return SqlMonitorStore(uri)


def open_loop_store(settings: Settings) -> LoopStore:
    """Open the store of continuous-training policies, their events and state."""
    uri = _direct_store_uri(settings, "continuous-training policies")
    from loopml.store.sql.loop import SqlLoopStore

    return SqlLoopStore(uri)


def open_feature_store(settings: Settings) -> FeatureStore:
    """Open the store of feature-store definitions (entities, feature views, services)."""
    uri = _direct_store_uri(settings, "feature store calls")
    from loopml.store.sql.features import SqlFeatureStore

    return SqlFeatureStore(uri)
