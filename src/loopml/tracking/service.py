"""The tracking use cases, shared by the SDK, the CLI and the server."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from loopml.entities.search import Clause, FieldKind
from loopml.entities.tracking import ArtifactEntry, Experiment, Metric, Run, RunStatus
from loopml.errors import InvalidInput, NotFound
from loopml.store.artifacts.paths import (
    confine,
    normalize_artifact_path,
    safe_extract_destination,
)
from loopml.store.base import ExperimentStore, RunArtifactStore, RunPage, RunStore
from loopml.tracking import validation
from loopml.tracking.search import parse_filter, parse_order_by
from loopml.tracking.system import current_user

DEFAULT_EXPERIMENT_NAME = "Default"
MAX_SEARCH_RESULTS = 50_000


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


class TrackingService:
    """Experiments, runs, metrics, params, tags and artifacts, validated at the boundary.

    Parameters
    ----------
    experiments, runs : ExperimentStore, RunStore
        The metadata backends (SQL locally, REST against a server).
    artifacts : RunArtifactStore
        Where run files go.
    heartbeat_timeout : float
        Seconds without a heartbeat after which :meth:`gc_runs` marks a RUNNING run KILLED.
    """

    def __init__(
        self,
        experiments: ExperimentStore,
        runs: RunStore,
        artifacts: RunArtifactStore,
        heartbeat_timeout: float = 300.0,
    ) -> None:
        self.experiments = experiments
        self.runs = runs
        self.artifacts = artifacts
        self.heartbeat_timeout = heartbeat_timeout

    # -- experiments --------------------------------------------------------------------
    def create_experiment(self, name: str, tags: dict[str, Any] | None = None) -> str:
        """Create an experiment and return its id."""
        return self.experiments.create_experiment(
            validation.check_name(name, "name"), validation.check_tags(tags or {})
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return an experiment by id."""
        return self.experiments.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment:
        """Return an experiment by name or raise :class:`NotFound`."""
        experiment = self.experiments.get_experiment_by_name(validation.check_name(name, "name"))
        if experiment is None:
            raise NotFound(f"experiment {name!r} does not exist", field="name")
        return experiment

    def get_or_create_experiment(self, name: str) -> Experiment:
        """Return the named experiment, creating it if needed; refuse a deleted one."""
        validation.check_name(name, "name")
        experiment = self.experiments.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.get_experiment(self.create_experiment(name))
            except Exception:
                # Another process may have created it in between.
                experiment = self.experiments.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage.value != "active":
            raise InvalidInput(
                f"experiment {name!r} is deleted; restore it or choose another name",
                field="name",
            )
        return experiment

    def resolve_experiment(self, name_or_id: str) -> Experiment:
        """Accept an experiment id or name (ids win)."""
        if name_or_id.isdigit():
            try:
                return self.get_experiment(name_or_id)
            except NotFound:
                pass
        return self.get_experiment_by_name(name_or_id)

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """Return experiments ordered by id."""
        return self.experiments.list_experiments(include_deleted=include_deleted)

    def delete_experiment(self, experiment_id: str) -> None:
        """Soft-delete an experiment."""
        self.experiments.delete_experiment(str(experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        """Restore a deleted experiment."""
        self.experiments.restore_experiment(str(experiment_id))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        """Set a tag on an experiment."""
        ((key, value),) = validation.check_tags({key: value}).items()
        self.experiments.set_experiment_tag(str(experiment_id), key, value)

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        user: str | None = None,
        start_time: int | None = None,
        host: str | None = None,
        pid: int | None = None,
    ) -> Run:
        """Start a RUNNING run in an active experiment."""
        name = validation.check_name(run_name, "run_name") if run_name else _generated_name()
        return self.runs.create_run(
            experiment_id=str(experiment_id),
            run_name=name,
            user=validation.check_name(user, "user") if user else current_user(),
            start_time=start_time if start_time is not None else now_ms(),
            tags=validation.check_tags(tags or {}),
            parent_run_id=parent_run_id,
            host=host if host is not None else socket.gethostname(),
            pid=pid,
        )

    def get_run(self, run_id: str) -> Run:
        """Return a run with its latest metrics, params and tags."""
        return self.runs.get_run(_check_run_id(run_id))

    def end_run(
        self, run_id: str, status: RunStatus | str = RunStatus.FINISHED, end_time: int | None = None
    ) -> Run:
        """End a run as FINISHED, FAILED or KILLED."""
        try:
            final = RunStatus(status)
        except ValueError:
            raise InvalidInput(
                f"status must be one of FINISHED, FAILED, KILLED, got {status!r}", field="status"
            ) from None
        if not final.is_terminal:
            raise InvalidInput(
                "a run can only be ended as FINISHED, FAILED or KILLED", field="status"
            )
        run_id = _check_run_id(run_id)
        self.runs.set_run_status(run_id, final, end_time if end_time is not None else now_ms())
        return self.runs.get_run(run_id)

    def rename_run(self, run_id: str, run_name: str) -> None:
        """Rename a run."""
        self.runs.set_run_name(_check_run_id(run_id), validation.check_name(run_name, "run_name"))

    def delete_run(self, run_id: str) -> None:
        """Soft-delete a run (restorable)."""
        self.runs.delete_run(_check_run_id(run_id))

    def restore_run(self, run_id: str) -> None:
        """Restore a deleted run."""
        self.runs.restore_run(_check_run_id(run_id))

    def heartbeat(self, run_id: str, time_ms: int | None = None) -> None:
        """Record that the process owning the run is still alive."""
        self.runs.heartbeat(_check_run_id(run_id), now_ms() if time_ms is None else time_ms)

    def set_run_status(
        self,
        run_id: str,
        status: RunStatus | str,
        end_time: int | None,
        only_if_running: bool = False,
    ) -> bool:
        """Set a run's status (any status, unlike :meth:`end_run`); return whether it changed.

        With ``only_if_running`` nothing changes unless the run is RUNNING, which lets
        concurrent garbage collectors agree on one outcome.
        """
        try:
            new_status = RunStatus(status)
        except ValueError:
            raise InvalidInput(f"unknown status {status!r}", field="status") from None
        return self.runs.set_run_status(
            _check_run_id(run_id), new_status, end_time, only_if_running=only_if_running
        )

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: Any,
        step: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Log one metric value."""
        metric = validation.make_metric(key, value, step, timestamp)
        self.runs.log_batch(_check_run_id(run_id), metrics=[metric])

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        """Log a write-once param."""
        self.runs.log_batch(_check_run_id(run_id), params=validation.check_params({key: value}))

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        """Set a tag (tags may change)."""
        self.runs.log_batch(_check_run_id(run_id), tags=validation.check_tags({key: value}))

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag."""
        self.runs.delete_tag(_check_run_id(run_id), validation.check_key(key, "key"))

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric | dict[str, Any]] = (),
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        """Log metrics, params and tags atomically: all or nothing."""
        checked_metrics = validation.check_metrics(metrics)
        checked_params = validation.check_params(params or {})
        checked_tags = validation.check_tags(tags or {})
        if checked_metrics or checked_params or checked_tags:
            self.runs.log_batch(
                _check_run_id(run_id), checked_metrics, checked_params, checked_tags
            )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every value of one metric, by step."""
        return self.runs.get_metric_history(_check_run_id(run_id), validation.check_key(key, "key"))

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> RunPage:
        """Search runs with MLflow's filter syntax; ``experiment_ids=None`` means all active."""
        if not isinstance(max_results, int) or not 1 <= max_results <= MAX_SEARCH_RESULTS:
            raise InvalidInput(
                f"max_results must be between 1 and {MAX_SEARCH_RESULTS}", field="max_results"
            )
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInput("offset must be a non-negative integer", field="offset")
        clauses = parse_filter(filter_string)
        orders = parse_order_by(list(order_by or []))
        if experiment_ids is None:
            ids = [e.experiment_id for e in self.list_experiments()]
        else:
            ids = [str(i) for i in experiment_ids]
        return self.runs.search_runs(ids, clauses, orders, max_results, offset, include_deleted)

    def experiment_keys(self, experiment_id: str) -> dict[str, list[str]]:
        """The distinct metric, param and tag keys of an experiment's active runs.

        Parameters
        ----------
        experiment_id : str
            The experiment.

        Returns
        -------
        dict
            ``{"metrics": [...], "params": [...], "tags": [...]}``, each list sorted.

        Raises
        ------
        NotFound
            When the experiment does not exist.
        """
        return self.runs.experiment_keys(str(experiment_id))

    def iter_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        include_deleted: bool = False,
    ) -> Iterator[Run]:
        """Yield every matching run, page by page."""
        offset: int | None = 0
        while offset is not None:
            page = self.search_runs(
                experiment_ids, filter_string, order_by, 1000, offset, include_deleted
            )
            yield from page.runs
            offset = page.next_offset

    def gc_runs(self, timeout: float | None = None) -> list[str]:
        """Mark RUNNING runs whose process is gone as KILLED; return their ids.

        A run counts as gone when its process ran on this host and no longer exists, or when
        it has sent no heartbeat for ``timeout`` seconds (default: the service's setting).
        """
        limit = self.heartbeat_timeout if timeout is None else timeout
        if limit < 0:
            raise InvalidInput("timeout must not be negative", field="timeout")
        ids = [e.experiment_id for e in self.list_experiments(include_deleted=True)]
        running = [Clause(FieldKind.ATTRIBUTE, "status", "=", RunStatus.RUNNING.value)]
        now = now_ms()
        host = socket.gethostname()
        killed = []
        offset: int | None = 0
        stale: list[Run] = []
        while offset is not None:
            page = self.runs.search_runs(ids, running, (), 1000, offset, True)
            offset = page.next_offset
            for run in page.runs:
                last_seen = run.heartbeat_time or run.start_time
                local_and_dead = (
                    run.host == host and run.pid is not None and not _pid_alive(run.pid)
                )
                if local_and_dead or now - last_seen > limit * 1000:
                    stale.append(run)
        for run in stale:
            end = run.heartbeat_time or run.start_time
            if self.runs.set_run_status(run.run_id, RunStatus.KILLED, end, only_if_running=True):
                killed.append(run.run_id)
        return killed

    # -- artifacts ----------------------------------------------------------------------
    def log_artifact_stream(self, run_id: str, path: str, stream: BinaryIO) -> ArtifactEntry:
        """Store a stream's bytes as ``path`` of the run."""
        return self.artifacts.log_artifact(
            _check_run_id(run_id), normalize_artifact_path(path), stream
        )

    def log_artifact_file(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> ArtifactEntry:
        """Upload a local file to ``artifact_path/<file name>`` of the run."""
        source = Path(local_path)
        if not source.is_file():
            raise InvalidInput(f"{source} is not a file", field="local_path")
        target = source.name if not artifact_path else f"{artifact_path.rstrip('/')}/{source.name}"
        with source.open("rb") as stream:
            return self.log_artifact_stream(run_id, target, stream)

    def log_artifact_dir(
        self, run_id: str, local_dir: str | Path, artifact_path: str | None = None
    ) -> list[ArtifactEntry]:
        """Upload every file under a local folder, keeping relative paths.

        Symlinks that point outside the folder are refused rather than followed.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise InvalidInput(f"{root} is not a folder", field="local_dir")
        files = sorted(p for p in root.rglob("*") if p.is_file())
        prefix = normalize_artifact_path(artifact_path, allow_empty=True) if artifact_path else ""
        for file in files:
            confine(root, file.relative_to(root).as_posix())
        entries = []
        for file in files:
            relative = file.relative_to(root).as_posix()
            with file.open("rb") as stream:
                entries.append(
                    self.log_artifact_stream(
                        run_id, f"{prefix}/{relative}" if prefix else relative, stream
                    )
                )
        return entries

    def get_artifact_entry(self, run_id: str, path: str) -> ArtifactEntry:
        """The index entry (path, sha256, size) of one file of the run."""
        return self.runs.get_artifact(_check_run_id(run_id), normalize_artifact_path(path))

    def link_artifact(self, run_id: str, entry: ArtifactEntry) -> None:
        """Point a path of the run at a blob that is already stored (no bytes are copied).

        Raises
        ------
        InvalidInput
            When the blob is not in this store's blob store, or has another size.
        """
        clean = ArtifactEntry(normalize_artifact_path(entry.path), entry.sha256, entry.size)
        blobs = getattr(self.artifacts, "blobs", None)
        if blobs is None or not blobs.exists(clean.sha256):
            raise InvalidInput(f"blob {clean.sha256} is not stored here", field="sha256")
        self.runs.add_artifact(_check_run_id(run_id), clean)

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactEntry]:
        """List a run's files under ``path``."""
        return self.artifacts.list_artifacts(
            _check_run_id(run_id), normalize_artifact_path(path, allow_empty=True)
        )

    def read_artifact(self, run_id: str, path: str) -> Iterator[bytes]:
        """Stream one artifact's bytes."""
        return self.artifacts.open_artifact(_check_run_id(run_id), normalize_artifact_path(path))

    def download_artifacts(self, run_id: str, path: str, destination: str | Path) -> Path:
        """Copy a file or folder of the run into ``destination``, keeping artifact paths.

        Returns ``destination / path``. Every file is written under a temporary name and
        renamed, so an interrupted download leaves no half-written file under its final name.
        """
        clean = normalize_artifact_path(path, allow_empty=True)
        entries = self.list_artifacts(run_id, clean)
        if not entries:
            raise NotFound(f"run {run_id} has no artifact {path!r}", field="path")
        dest_root = Path(destination)
        dest_root.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            target = safe_extract_destination(dest_root, entry.path)
            partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
            try:
                with partial.open("wb") as out:
                    for chunk in self.read_artifact(run_id, entry.path):
                        out.write(chunk)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        return confine(dest_root, clean) if clean else dest_root


def _check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not run_id or len(run_id) > 64 or not run_id.isalnum():
        raise NotFound(f"run {run_id!r} does not exist", field="run_id")
    return run_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_ADJECTIVES = (
    "brisk",
    "calm",
    "bold",
    "keen",
    "quiet",
    "swift",
    "bright",
    "steady",
    "lucid",
    "merry",
    "noble",
    "sunny",
    "vivid",
    "wise",
    "gentle",
    "clever",
)
_NOUNS = (
    "otter",
    "falcon",
    "maple",
    "comet",
    "harbor",
    "lynx",
    "cedar",
    "river",
    "quartz",
    "heron",
    "ember",
    "willow",
    "orca",
    "summit",
    "fern",
    "atlas",
)


def _generated_name() -> str:
    """A readable run name such as ``swift-otter-042``."""
    entropy = int.from_bytes(os.urandom(3), "big")
    return f"{_ADJECTIVES[entropy % 16]}-{_NOUNS[(entropy >> 4) % 16]}-{(entropy >> 8) % 1000:03d}"
