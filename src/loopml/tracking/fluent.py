"""The MLflow-style fluent API: a process-wide active run and ``lm.log_*`` functions.

The active-run stack is per thread (so threads can run their own runs), while the service and
the current experiment are per process. Runs started with ``with lm.start_run():`` end
FINISHED, FAILED on an exception, and KILLED on Ctrl-C or SIGTERM; a run still active at
interpreter exit ends FINISHED. A heartbeat thread keeps RUNNING runs visibly alive, so that
``loopml runs gc`` can tell a run whose process was SIGKILLed.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from loopml.config import Settings, load_settings
from loopml.entities.tracking import ArtifactEntry, Metric, Run, RunStatus
from loopml.errors import InvalidInput
from loopml.tracking import validation
from loopml.tracking.service import DEFAULT_EXPERIMENT_NAME, TrackingService
from loopml.tracking.system import system_tags

if TYPE_CHECKING:
    import pandas as pd

_lock = threading.RLock()
_service: TrackingService | None = None
_service_key: tuple[str, str, str | None] | None = None
_experiment_id: str | None = None
_local = threading.local()
_all_active: list[ActiveRun] = []
_gc_done = False
_handlers_installed = False


def _settings_key(settings: Settings) -> tuple[str, str, str | None]:
    return (settings.resolved_store_uri, settings.resolved_artifact_uri, settings.tracking_uri)


def get_service() -> TrackingService:
    """Return the tracking service for the current settings (re-read when they change)."""
    global _service, _service_key, _experiment_id
    settings = load_settings()
    key = _settings_key(settings)
    if _service is not None and key == _service_key:
        return _service
    with _lock:
        if _service is None or key != _service_key:
            from loopml.store.registry import open_tracking_stores

            stores = open_tracking_stores(settings)
            _service = TrackingService(
                stores.experiments,
                stores.runs,
                stores.artifacts,
                heartbeat_timeout=settings.run_heartbeat_timeout,
            )
            _service_key = key
            _experiment_id = None
        return _service


def _stack() -> list[ActiveRun]:
    stack: list[ActiveRun] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = []
        _local.stack = stack
    return stack


class ActiveRun:
    """The run a ``with lm.start_run()`` block logs into; also usable without ``with``."""

    def __init__(self, run: Run, service: TrackingService, *, heartbeat: bool = True) -> None:
        self._run = run
        self._service = service
        self._heartbeat_stop = threading.Event()
        if heartbeat:
            threading.Thread(
                target=self._beat, name=f"loopml-heartbeat-{run.run_id}", daemon=True
            ).start()

    @property
    def info(self) -> Run:
        """The run as it was when it started (use :func:`get_run` for fresh data)."""
        return self._run

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run.run_id

    def _beat(self) -> None:
        interval = max(1.0, min(30.0, self._service.heartbeat_timeout / 3))
        while not self._heartbeat_stop.wait(interval):
            try:
                self._service.heartbeat(self.run_id)
            except Exception:  # noqa: BLE001 - a missed heartbeat must never kill training
                continue

    def end(self, status: RunStatus = RunStatus.FINISHED) -> None:
        """End the run with ``status`` (idempotent)."""
        self._heartbeat_stop.set()
        with _lock:
            if self in _all_active:
                _all_active.remove(self)
            else:
                return
        stack = _stack()
        if self in stack:
            stack.remove(self)
        self._service.end_run(self.run_id, status)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt | _Terminated):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        self.end(status)


class _Terminated(SystemExit):
    """Raised in the main thread on SIGTERM so ``with`` blocks end their runs as KILLED."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(128 + signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_end_all_at_exit)
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)


def _end_all_at_exit() -> None:
    for run in list(reversed(_all_active)):
        try:
            run.end(RunStatus.FINISHED)
        except Exception:  # noqa: BLE001 - nothing can be reported at interpreter exit
            continue


def set_experiment(name: str | None = None, experiment_id: str | None = None) -> str:
    """Make an experiment current (creating it by name if needed); return its id."""
    global _experiment_id
    service = get_service()
    if experiment_id is not None:
        experiment = service.get_experiment(str(experiment_id))
        if experiment.lifecycle_stage.value != "active":
            raise InvalidInput(f"experiment {experiment_id!r} is deleted", field="experiment_id")
    elif name is not None:
        experiment = service.get_or_create_experiment(name)
    else:
        raise InvalidInput("set_experiment needs a name or an experiment_id", field="name")
    with _lock:
        _experiment_id = experiment.experiment_id
    return experiment.experiment_id


def _current_experiment_id(service: TrackingService) -> str:
    with _lock:
        if _experiment_id is not None:
            return _experiment_id
    env_name = os.environ.get("LOOPML_EXPERIMENT_NAME")
    return set_experiment(name=env_name or DEFAULT_EXPERIMENT_NAME)


def start_run(
    run_name: str | None = None,
    nested: bool = False,
    tags: dict[str, Any] | None = None,
    experiment_id: str | None = None,
    run_id: str | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it active.

    Parameters
    ----------
    run_name : str, optional
        A readable name; generated when omitted.
    nested : bool, default False
        Start a child of the active run; without it, starting a run while another is active
        is an error (as in MLflow).
    tags : dict, optional
        Tags to set at start, next to the system tags (git, python, host, ...).
    experiment_id : str, optional
        The experiment; defaults to the one :func:`set_experiment` chose, else ``Default``.
    run_id : str, optional
        Resume an existing run instead of starting a new one.

    Examples
    --------
    >>> import loopml as lm
    >>> with lm.start_run(run_name="baseline") as run:  # doctest: +SKIP
    ...     lm.log_param("C", 1.0)
    ...     lm.log_metric("accuracy", 0.93)
    """
    global _gc_done
    service = get_service()
    stack = _stack()
    if stack and not nested and run_id is None:
        raise InvalidInput(
            f"run {stack[-1].run_id} is already active; end it or pass nested=True",
            field="nested",
        )
    if not _gc_done:
        _gc_done = True
        service.gc_runs()
    if run_id is not None:
        run = service.get_run(run_id)
        if run.status is not RunStatus.RUNNING:
            service.runs.set_run_status(run.run_id, RunStatus.RUNNING, None)
            run = service.get_run(run_id)
    else:
        all_tags = {**system_tags(), **(tags or {})}
        run = service.create_run(
            experiment_id=experiment_id or _current_experiment_id(service),
            run_name=run_name,
            tags=all_tags,
            parent_run_id=stack[-1].run_id if stack else None,
            pid=os.getpid(),
        )
    active = ActiveRun(run, service)
    _install_handlers()
    with _lock:
        _all_active.append(active)
    stack.append(active)
    return active


@contextmanager
def use_run(run_id: str | None) -> Iterator[ActiveRun | None]:
    """Make an existing run the active run of this thread for a block, without ending it.

    Pipeline steps use it so that ``lm.log_metric`` inside a step lands in the step's run;
    the run's owner (the pipeline runner) starts and ends it.
    """
    if run_id is None:
        yield None
        return
    service = get_service()
    attached = ActiveRun(service.get_run(run_id), service, heartbeat=False)
    stack = _stack()
    stack.append(attached)
    try:
        yield attached
    finally:
        stack.remove(attached)


def active_run() -> ActiveRun | None:
    """The innermost active run of this thread, or None."""
    stack = _stack()
    return stack[-1] if stack else None


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the innermost active run."""
    run = active_run()
    if run is not None:
        run.end(RunStatus(status))


def _run_id() -> str:
    run = active_run()
    if run is None:
        run = start_run()
    return run.run_id


def log_param(key: str, value: Any) -> Any:
    """Log a param of the active run (write-once); return the value."""
    get_service().log_param(_run_id(), key, value)
    return value


def log_params(params: dict[str, Any]) -> None:
    """Log several params at once."""
    get_service().log_batch(_run_id(), params=params)


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Log one metric value of the active run."""
    get_service().log_metric(_run_id(), key, value, step, timestamp)


def log_metrics(
    metrics: dict[str, float], step: int | None = None, timestamp: int | None = None
) -> None:
    """Log several metrics at the same step in one call."""
    if not isinstance(metrics, dict):
        raise InvalidInput("metrics must be a mapping of key to number", field="metrics")
    batch = [validation.make_metric(k, v, step, timestamp) for k, v in metrics.items()]
    get_service().log_batch(_run_id(), metrics=batch)


def log_batch(
    metrics: Iterable[Metric] = (),
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
) -> None:
    """Log metrics, params and tags atomically (all or none)."""
    get_service().log_batch(_run_id(), metrics=metrics, params=params, tags=tags)


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the active run."""
    get_service().set_tag(_run_id(), key, value)


def set_tags(tags: dict[str, Any]) -> None:
    """Set several tags at once."""
    get_service().log_batch(_run_id(), tags=tags)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> ArtifactEntry:
    """Upload a local file into the active run's artifacts."""
    return get_service().log_artifact_file(_run_id(), local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> list[ArtifactEntry]:
    """Upload a local folder into the active run's artifacts."""
    return get_service().log_artifact_dir(_run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> ArtifactEntry:
    """Store a string as a UTF-8 file."""
    return get_service().log_artifact_stream(
        _run_id(), artifact_file, io.BytesIO(text.encode("utf-8"))
    )


def log_dict(dictionary: Any, artifact_file: str) -> ArtifactEntry:
    """Store a JSON-able object as JSON (or YAML for ``.yaml``/``.yml`` file names)."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(dictionary, sort_keys=False)
    else:
        try:
            text = json.dumps(dictionary, indent=2, default=str)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"dictionary is not JSON-able: {exc}", field="dictionary") from exc
    return log_text(text, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> ArtifactEntry:
    """Store a matplotlib figure (PNG, SVG, PDF) or a plotly figure (HTML, or image formats).

    Parameters
    ----------
    figure : matplotlib.figure.Figure or plotly.graph_objects.Figure
        The figure to save.
    artifact_file : str
        Artifact path; its suffix picks the format (``.png``, ``.svg``, ``.html``...).
    """
    suffix = Path(artifact_file).suffix.lower()
    buffer = io.BytesIO()
    module = type(figure).__module__
    if module.startswith("plotly"):
        if suffix in (".html", ".htm"):
            buffer.write(figure.to_html(include_plotlyjs="cdn", full_html=True).encode("utf-8"))
        elif suffix == ".json":
            buffer.write(figure.to_json().encode("utf-8"))
        else:
            raise InvalidInput(
                "plotly figures are stored as .html or .json (static images need kaleido)",
                field="artifact_file",
            )
    elif module.startswith("matplotlib"):
        if suffix not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
            raise InvalidInput(
                "matplotlib figures are stored as .png, .svg, .pdf or .jpg", field="artifact_file"
            )
        figure.savefig(buffer, format=suffix.lstrip("."), bbox_inches="tight")
    else:
        raise InvalidInput(
            f"log_figure takes a matplotlib or plotly figure, got {type(figure).__name__}",
            field="figure",
        )
    buffer.seek(0)
    return get_service().log_artifact_stream(_run_id(), artifact_file, buffer)


def log_table(data: pd.DataFrame, artifact_file: str) -> ArtifactEntry:
    """Store a pandas DataFrame as Parquet (the file name should end in ``.parquet``)."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InvalidInput(
            f"log_table takes a pandas DataFrame, got {type(data).__name__}", field="data"
        )
    if not artifact_file.endswith(".parquet"):
        raise InvalidInput(
            "log_table writes Parquet: name the file *.parquet", field="artifact_file"
        )
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as buffer:
        data.to_parquet(buffer, index=False)
        buffer.seek(0)
        return get_service().log_artifact_stream(_run_id(), artifact_file, buffer)  # type: ignore[arg-type]


def get_run(run_id: str) -> Run:
    """Return a run with its latest metrics, params and tags."""
    return get_service().get_run(run_id)


def delete_run(run_id: str) -> None:
    """Soft-delete a run."""
    get_service().delete_run(run_id)


def restore_run(run_id: str) -> None:
    """Restore a soft-deleted run."""
    get_service().restore_run(run_id)


def search_runs(
    experiment_names: list[str] | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
    max_results: int = 1000,
    experiment_ids: list[str] | None = None,
    include_deleted: bool = False,
) -> pd.DataFrame:
    """Search runs and return a DataFrame, one row per run (MLflow's column names).

    Columns: ``run_id``, ``experiment_id``, ``run_name``, ``status``, ``start_time``,
    ``end_time`` (pandas timestamps, UTC), ``user``, ``parent_run_id``, then
    ``metrics.<key>``, ``params.<key>`` and ``tags.<key>``.

    Examples
    --------
    >>> lm.search_runs(filter_string="metrics.accuracy > 0.9",  # doctest: +SKIP
    ...                order_by=["metrics.accuracy DESC"])
    """
    service = get_service()
    if experiment_ids is None and experiment_names is None:
        ids = [_current_experiment_id(service)]
    else:
        ids = [str(i) for i in experiment_ids or []]
        ids += [service.get_experiment_by_name(n).experiment_id for n in experiment_names or []]
    runs: list[Run] = []
    offset: int | None = 0
    while offset is not None and len(runs) < max_results:
        page = service.search_runs(
            ids,
            filter_string,
            order_by,
            min(1000, max_results - len(runs)),
            offset,
            include_deleted,
        )
        runs.extend(page.runs)
        offset = page.next_offset
    return runs_to_frame(runs)


def runs_to_frame(runs: list[Run]) -> pd.DataFrame:
    """Lay runs out as a DataFrame with ``metrics.*``, ``params.*`` and ``tags.*`` columns."""
    import pandas as pd

    records = []
    for run in runs:
        record: dict[str, Any] = {
            "run_id": run.run_id,
            "experiment_id": run.experiment_id,
            "run_name": run.run_name,
            "status": run.status.value,
            "start_time": pd.to_datetime(run.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(run.end_time, unit="ms", utc=True)
            if run.end_time is not None
            else pd.NaT,
            "user": run.user,
            "parent_run_id": run.parent_run_id,
        }
        record.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        record.update({f"params.{k}": v for k, v in run.params.items()})
        record.update({f"tags.{k}": v for k, v in run.tags.items()})
        records.append(record)
    columns = [
        "run_id",
        "experiment_id",
        "run_name",
        "status",
        "start_time",
        "end_time",
        "user",
        "parent_run_id",
    ]
    frame = pd.DataFrame.from_records(records, columns=None if records else columns)
    extra = sorted(c for c in frame.columns if c not in columns)
    ordered = columns + [
        c for p in ("metrics.", "params.", "tags.") for c in extra if c.startswith(p)
    ]
    return frame[ordered]


def _reset_for_tests() -> None:
    """Forget the cached service, experiment and active runs (tests only)."""
    global _service, _service_key, _experiment_id, _gc_done
    with _lock:
        for run in list(_all_active):
            run._heartbeat_stop.set()
        _all_active.clear()
        _local.stack = []
        _service = None
        _service_key = None
        _experiment_id = None
        _gc_done = False
