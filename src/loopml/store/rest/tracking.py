"""The experiment, run and run-artifact stores over the tracking server's REST API.

:class:`RestTrackingStore` is what the SDK uses when ``LOOPML_TRACKING_URI`` is an
``http(s)://`` URL. It behaves like :class:`~loopml.store.sql.SqlTrackingStore`: same
signatures, same return values, and the same error classes, rebuilt from the server's JSON
error bodies. Artifacts are streamed both ways, never held whole in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from loopml.entities.search import Clause, OrderBy, format_filter, format_order_by
from loopml.entities.tracking import ArtifactEntry, Experiment, Metric, Run, RunStatus
from loopml.errors import InvalidInput, NotFound
from loopml.store.artifacts.paths import normalize_artifact_path
from loopml.store.base import RunPage
from loopml.store.rest._http import CHUNK_SIZE, HttpClient, path_segments, segment

_API = "/api/v1"


def _file_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInput("the stream must be opened in binary mode", field="stream")
        yield bytes(chunk)


def _entry(data: dict[str, Any]) -> ArtifactEntry:
    return ArtifactEntry(path=data["path"], sha256=data["sha256"], size=int(data["size"]))


class RestTrackingStore:
    """Experiments, runs and run artifacts kept by a loopml tracking server.

    Parameters
    ----------
    base_url : str
        The server, e.g. ``http://127.0.0.1:5000``.
    token : str, optional
        Bearer token for a server started with auth.
    timeout : float, default 30.0
        Seconds to wait for connecting and for each read or write.

    Raises
    ------
    InvalidInput
        When ``base_url`` is not an ``http(s)://`` URL.

    Notes
    -----
    One keep-alive connection pool per store; the store is safe to share between threads.
    Every method raises :class:`~loopml.errors.StoreUnavailable` naming the URL when the
    server cannot be reached.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self._http = HttpClient(base_url, token, timeout)
        self.uri = self._http.base_url

    def __repr__(self) -> str:
        return f"RestTrackingStore({self.uri!r})"

    def close(self) -> None:
        """Close the connection pool (also done when the store is garbage collected)."""
        self._http.close()

    def __enter__(self) -> RestTrackingStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run_url(self, run_id: str, suffix: str = "") -> str:
        return f"{_API}/runs/{segment(run_id)}{suffix}"

    # -- experiments ------------------------------------------------------------------
    def create_experiment(self, name: str, tags: dict[str, str] | None = None) -> str:
        """Create an experiment and return its id; :class:`Conflict` if the name is taken."""
        body = self._http.json("POST", f"{_API}/experiments", json={"name": name, "tags": tags})
        return str(body["experiment_id"])

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return the experiment or raise :class:`NotFound`."""
        data = self._http.json("GET", f"{_API}/experiments/{segment(experiment_id)}")
        return Experiment.from_dict(data)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return the experiment with this name, or None."""
        try:
            data = self._http.json("GET", f"{_API}/experiments/by-name", params={"name": name})
        except NotFound:
            return None
        except InvalidInput as exc:
            # A name the server refuses to look up can never have been created.
            if exc.field == "name":
                return None
            raise
        return Experiment.from_dict(data)

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """Return experiments ordered by id."""
        params = {"include_deleted": "true" if include_deleted else "false"}
        body = self._http.json("GET", f"{_API}/experiments", params=params)
        return [Experiment.from_dict(e) for e in body["experiments"]]

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark the experiment deleted."""
        self._http.send("DELETE", f"{_API}/experiments/{segment(experiment_id)}")

    def restore_experiment(self, experiment_id: str) -> None:
        """Undo :meth:`delete_experiment`."""
        self._http.send("POST", f"{_API}/experiments/{segment(experiment_id)}/restore")

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set a tag on an active experiment."""
        self._http.send(
            "POST",
            f"{_API}/experiments/{segment(experiment_id)}/tags",
            json={"key": key, "value": value},
        )

    # -- runs -------------------------------------------------------------------------
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
        body = {
            "experiment_id": str(experiment_id),
            "run_name": run_name,
            "user": user,
            "start_time": start_time,
            "tags": tags,
            "parent_run_id": parent_run_id,
            "host": host,
            "pid": pid,
        }
        return Run.from_dict(self._http.json("POST", f"{_API}/runs", json=body))

    def get_run(self, run_id: str) -> Run:
        """Return the run (deleted ones too) or raise :class:`NotFound`."""
        return Run.from_dict(self._http.json("GET", self._run_url(run_id)))

    def set_run_status(
        self, run_id: str, status: RunStatus, end_time: int | None, only_if_running: bool = False
    ) -> bool:
        """Set the status; return whether the run changed."""
        body = {
            "status": RunStatus(status).value,
            "end_time": end_time,
            "only_if_running": only_if_running,
        }
        return bool(self._http.json("POST", self._run_url(run_id, "/status"), json=body)["changed"])

    def set_run_name(self, run_id: str, run_name: str) -> None:
        """Rename a run."""
        self._http.send("PATCH", self._run_url(run_id), json={"run_name": run_name})

    def heartbeat(self, run_id: str, time_ms: int) -> None:
        """Record that the process owning the run is alive."""
        self._http.send("POST", self._run_url(run_id, "/heartbeat"), json={"time_ms": time_ms})

    def delete_run(self, run_id: str) -> None:
        """Soft-delete a run."""
        self._http.send("DELETE", self._run_url(run_id))

    def restore_run(self, run_id: str) -> None:
        """Undo :meth:`delete_run`."""
        self._http.send("POST", self._run_url(run_id, "/restore"))

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Write metrics, params and tags in one transaction: all of them or none."""
        body = {
            "metrics": [m.to_dict() for m in metrics],
            "params": params or {},
            "tags": tags or {},
        }
        self._http.send("POST", self._run_url(run_id, "/log-batch"), json=body)

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag from a run."""
        self._http.send("DELETE", self._run_url(run_id, f"/tags/{path_segments(key)}"))

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Return every value of one metric, ordered by step then timestamp."""
        body = self._http.json("GET", self._run_url(run_id, f"/metrics/{path_segments(key)}"))
        return [Metric.from_dict(m) for m in body["metrics"]]

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
        if not experiment_ids:
            # The API reads "no experiment_ids" as "every experiment"; the store contract
            # says an empty list matches nothing.
            return RunPage(runs=[], next_offset=None)
        params: dict[str, Any] = {
            "experiment_ids": [str(i) for i in experiment_ids],
            "max_results": max_results,
            "offset": offset,
            "include_deleted": "true" if include_deleted else "false",
        }
        if clauses:
            params["filter_string"] = format_filter(tuple(clauses))
        if order_by:
            params["order_by"] = [format_order_by(o) for o in order_by]
        body = self._http.json("GET", f"{_API}/runs/search", params=params)
        return RunPage(
            runs=[Run.from_dict(r) for r in body["runs"]], next_offset=body.get("next_offset")
        )

    def experiment_keys(self, experiment_id: str) -> dict[str, list[str]]:
        """Distinct metric, param and tag keys of the experiment's active runs, sorted."""
        body = self._http.json("GET", f"{_API}/experiments/{segment(experiment_id)}/keys")
        return {
            kind: [str(k) for k in body.get(kind, [])] for kind in ("metrics", "params", "tags")
        }

    # -- artifact index ---------------------------------------------------------------
    def add_artifact(self, run_id: str, entry: ArtifactEntry) -> None:
        """Point ``entry.path`` of the run at a blob already stored on the server."""
        path = normalize_artifact_path(entry.path)
        self._http.send(
            "PUT",
            self._run_url(run_id, f"/artifact-index/{path_segments(path)}"),
            json={"sha256": entry.sha256, "size": entry.size},
        )

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        """Return the run's artifact entries under a path prefix, sorted by path."""
        clean = normalize_artifact_path(prefix, allow_empty=True)
        body = self._http.json(
            "GET", self._run_url(run_id, "/artifacts"), params={"path": clean} if clean else None
        )
        return [_entry(e) for e in body["artifacts"]]

    def get_artifact(self, run_id: str, path: str) -> ArtifactEntry:
        """Return one artifact entry or raise :class:`NotFound`."""
        clean = normalize_artifact_path(path)
        url = self._run_url(run_id, f"/artifact-index/{path_segments(clean)}")
        return _entry(self._http.json("GET", url))

    # -- artifact files ---------------------------------------------------------------
    def log_artifact(self, run_id: str, path: str, stream: BinaryIO) -> ArtifactEntry:
        """Upload the stream's bytes as ``path`` of the run, 1 MiB at a time."""
        clean = normalize_artifact_path(path)
        url = self._run_url(run_id, f"/artifacts/{path_segments(clean)}")
        body = self._http.json(
            "PUT",
            url,
            content=_file_chunks(stream),
            headers={"Content-Type": "application/octet-stream"},
        )
        return _entry(body)

    def open_artifact(self, run_id: str, path: str) -> Iterator[bytes]:
        """Yield the bytes of one file in chunks, or raise :class:`NotFound` at once."""
        clean = normalize_artifact_path(path)
        return self._http.stream(self._run_url(run_id, f"/artifacts/{path_segments(clean)}"))
