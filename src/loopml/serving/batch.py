"""Batch scoring: stream a Parquet/CSV source through a model into Parquet part files.

The input is read as a stream and cut into chunks of exactly ``chunk_rows`` rows, so chunk
``i`` always holds the same rows of the same input. Each scored chunk is written atomically
(a temporary name, then a rename) as ``part-<i>.parquet`` in the output folder, and its index
is recorded in ``_manifest.json``. Running the same job again after a crash skips every chunk
already written, so each row is scored into the output exactly once.

On the dask executor a CSV file is cut instead into byte blocks (``dask.dataframe.read_csv``
partitions, each split at a line end): partition ``i`` is always the same lines of the same
file and becomes ``part-<i>.parquet``. The manifest records that layout, so such a job is
resumed on dask with the same block size, and never mixed with a job cut into rows.

With ``log_predictions`` a sample of the scored rows also goes to the prediction log, as
requests of 100 rows named ``batch:<job id>:<chunk>:<row offset>`` (see ``_batch_log``). The
job id is kept in the manifest and only chunks scored by this call are logged, after their
part file is recorded, so a resumed job logs no row twice. Dask workers only pick the sampled
rows; this process logs them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopml.errors import InvalidInput, LoopmlError
from loopml.serving._batch_log import ChunkLog, LogSpec, Scored, samples

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from loopml.data._canonical import SourceReader
    from loopml.models.storage import LoadedModel

MANIFEST = "_manifest.json"
MANIFEST_FORMAT = 1
EXECUTORS = ("local", "dask")
#: The ``layout`` of a job cut into chunks of ``chunk_rows`` rows (every job but CSV on dask).
ROWS_LAYOUT = "rows"
#: The smallest CSV block the dask executor cuts when it sizes blocks from ``chunk_rows``.
MIN_BLOCKSIZE = 4096
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
_PART = "part-{:05d}.parquet"
_RESERVED = ("prediction", "model_name", "model_version")


@dataclass(frozen=True)
class BatchScoreResult:
    """What a batch scoring job did.

    Attributes
    ----------
    rows : int
        Rows scored by this call (chunks skipped on resume are not counted).
    chunks_written : int
        Part files written by this call.
    chunks_skipped : int
        Chunks found complete in the output and not scored again.
    output : str
        The output folder.
    model : str
        The registered model name, or the model URI when it is not registered.
    version : int or None
        The registered version scored with, ``None`` for a ``runs:/`` model.
    rows_logged : int
        Rows this call wrote to the prediction log (0 unless ``log_predictions``).
    """

    rows: int
    chunks_written: int
    chunks_skipped: int
    output: str
    model: str
    version: int | None
    rows_logged: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        return {
            "rows": self.rows,
            "chunks_written": self.chunks_written,
            "chunks_skipped": self.chunks_skipped,
            "output": self.output,
            "model": self.model,
            "version": self.version,
            "rows_logged": self.rows_logged,
        }


def batch_score(
    spec: str,
    source: str,
    output: str,
    *,
    chunk_rows: int = 65_536,
    executor: str = "local",
    id_column: str | None = None,
    proba: bool = False,
    progress: bool = True,
    blocksize: int | None = None,
    log_predictions: bool = False,
    log_sample_rate: float = 0.05,
) -> BatchScoreResult:
    """Score a Parquet or CSV file with a model into a folder of Parquet part files.

    Parameters
    ----------
    spec : str
        The model: ``name@alias``, ``name/3``, ``models:/...`` or ``runs:/<id>/<path>``.
    source : str
        A local path or fsspec URL (``s3://...``) of a ``.parquet`` or ``.csv`` file.
    output : str
        A local folder or fsspec URL; created when missing. It receives ``part-00000.parquet``
        and so on, plus ``_manifest.json``.
    chunk_rows : int, default 65536
        Rows per chunk (and per part file).
    executor : {"local", "dask"}, default "local"
        ``"local"`` scores chunks in this process. ``"dask"`` scores them on a
        ``dask.distributed`` LocalCluster of two workers, each task writing its own part file.
        For Parquet each task reads only the row groups of its chunk, and both executors cut
        the same chunks, so a job may be resumed with either. For CSV each task parses one
        ``dask.dataframe.read_csv`` partition of ``blocksize`` bytes (the model's columns
        typed by its signature, the others as the local executor reads them) and the output
        rows and columns equal the local executor's; such a job resumes on dask only.
    id_column : str, optional
        Copy only this input column to the output, instead of every input column.
    proba : bool, default False
        Add ``proba_<class>`` columns when the model has ``predict_proba``.
    progress : bool, default True
        Show a progress bar over the chunks (on stderr).
    blocksize : int, optional
        Bytes per partition of a CSV file on the dask executor; by default about
        ``chunk_rows`` lines (measured on the file's first MiB), at least 4 KiB. A gzipped
        CSV file is one partition.
    log_predictions : bool, default False
        Also log the scored rows to the prediction log (variant ``"batch"``), for monitoring
        as :func:`loopml.monitoring.predictions` reads it. Rows of chunks skipped on resume
        are not logged again.
    log_sample_rate : float, default 0.05
        Fraction of the rows logged, in requests of 100 rows chosen by a hash of their
        request id (the output file already holds every row).

    Returns
    -------
    BatchScoreResult
        Counts of rows and chunks, and the model version used.

    Raises
    ------
    InvalidInput
        For a bad chunk size, block size, sample rate or executor, an unreadable input (or,
        on dask, a CSV value that does not parse as its column's type), an input lacking a
        column the model's signature or ``id_column`` needs, or an output folder holding a
        job of another model version, input, chunk size or layout.
    NotFound
        When the model does not exist.
    """
    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be at least 1, got {chunk_rows}", field="chunk_rows")
    if executor not in EXECUTORS:
        raise InvalidInput(
            f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}", field="executor"
        )
    csv_on_dask = executor == "dask" and source.lower().endswith(_CSV_SUFFIXES)
    if executor == "dask" and not csv_on_dask and not source.lower().endswith((".parquet", ".pq")):
        raise InvalidInput(
            "the dask executor reads Parquet and CSV (.csv, .csv.gz, .tsv) inputs",
            field="executor",
        )
    if blocksize is not None and (not csv_on_dask or blocksize < 1):
        raise InvalidInput(
            "blocksize is a positive number of bytes, for CSV inputs on the dask executor",
            field="blocksize",
        )
    if not 0.0 <= log_sample_rate <= 1.0:
        raise InvalidInput(
            f"log_sample_rate must be between 0 and 1, got {log_sample_rate}",
            field="log_sample_rate",
        )
    import fsspec.core

    from loopml import models
    from loopml.data._canonical import open_source

    model = models.load(spec)
    name, version = model.registered if model.registered else (model.source, None)
    reader = open_source(source)
    _check_columns(model, reader.schema, id_column)
    if csv_on_dask:
        blocksize = blocksize or _csv_blocksize(source, chunk_rows)
    fs, root = fsspec.core.url_to_fs(output)
    root = root.rstrip("/")
    identity = {
        "format": MANIFEST_FORMAT,
        "model": name,
        "version": version,
        "input": source,
        "input_size": _input_size(source),
        "chunk_rows": chunk_rows,
        "id_column": id_column,
        "proba": proba,
        "layout": _csv_layout(blocksize) if csv_on_dask else ROWS_LAYOUT,
    }
    manifest = _open_manifest(fs, root, identity, spec)
    # Manifests written before jobs had ids get one now; it is stored with the next chunk.
    manifest.setdefault("job_id", uuid.uuid4().hex[:12])
    done = set(manifest["completed_chunks"]) | _existing_parts(fs, root)
    with_proba = proba and hasattr(model.model, "predict_proba")
    log_spec = LogSpec(str(manifest["job_id"]), name, version, float(log_sample_rate))
    job = _Job(name, version, id_column, with_proba, log_spec if log_predictions else None)
    log = ChunkLog(log_spec) if log_predictions else None
    try:
        if executor == "dask":
            getattr(reader.batches, "close", lambda: None)()  # the workers read the file
            plan = _DaskPlan(source, reader.schema, blocksize if csv_on_dask else None)
            counts = _run_dask(model, plan, fs, root, manifest, done, job, progress, log)
        else:
            counts = _run_local(model, reader, fs, root, manifest, done, job, progress, log)
    finally:
        logged = log.close() if log is not None else 0
    rows, written, skipped = counts
    manifest["finished"] = True
    manifest["chunks"] = written + skipped
    _write_json(fs, f"{root}/{MANIFEST}", manifest)
    return BatchScoreResult(rows, written, skipped, output, name, version, logged)


@dataclass(frozen=True)
class _Job:
    """What every chunk of a job is scored with."""

    name: str
    version: int | None
    id_column: str | None
    with_proba: bool
    log: LogSpec | None = None  # None: nothing is logged


def _record(fs: AbstractFileSystem, root: str, manifest: dict[str, Any], index: int) -> None:
    """Add a written chunk to the manifest and store it."""
    manifest["completed_chunks"] = sorted({*manifest["completed_chunks"], index})
    manifest["updated_time"] = int(time.time() * 1000)
    _write_json(fs, f"{root}/{MANIFEST}", manifest)


def _run_local(
    model: LoadedModel,
    reader: SourceReader,
    fs: AbstractFileSystem,
    root: str,
    manifest: dict[str, Any],
    done: set[int],
    job: _Job,
    progress: bool,
    log: ChunkLog | None,
) -> tuple[int, int, int]:
    """Stream the chunks through the model in this process."""
    rows = written = skipped = 0
    with _progress(progress, reader.description, None) as advance:
        for index, chunk in enumerate(_chunks(reader.batches, manifest["chunk_rows"])):
            if index in done:
                skipped += 1
            else:
                found = _score_and_write(model, chunk, fs, root, index, job)[2]
                # Logged only once recorded: a chunk scored again after a crash is one that
                # was never logged.
                _record(fs, root, manifest, index)
                if log is not None:
                    log.add(found)
                rows += chunk.num_rows
                written += 1
            advance()
    return rows, written, skipped


#: Options of the LocalCluster the dask executor starts.
DASK_CLUSTER_OPTIONS: dict[str, Any] = {"n_workers": 2, "threads_per_worker": 1}


@dataclass(frozen=True)
class _DaskPlan:
    """What the dask executor reads: a Parquet file, or a CSV file in byte blocks."""

    source: str
    schema: pa.Schema
    blocksize: int | None  # None: Parquet, cut into row chunks; 0: a CSV file in one block

    @property
    def csv(self) -> bool:
        return self.blocksize is not None


def _run_dask(
    model: LoadedModel,
    plan: _DaskPlan,
    fs: AbstractFileSystem,
    root: str,
    manifest: dict[str, Any],
    done: set[int],
    job: _Job,
    progress: bool,
    log: ChunkLog | None,
) -> tuple[int, int, int]:
    """Score the chunks of a Parquet file, or the partitions of a CSV file, on local dask."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - dask is an optional dependency
        raise InvalidInput(
            "the dask executor needs dask[distributed] installed", field="executor"
        ) from exc
    if plan.csv:
        partitions, schema = _csv_partitions(plan, model, job)
        total = len(partitions)
    else:
        bounds = _parquet_ranges(plan.source, int(manifest["chunk_rows"]))
        total = len(bounds)
    todo = [index for index in range(total) if index not in done]
    rows = written = 0
    skipped = total - len(todo)
    with _progress(progress, plan.source, total) as advance:
        for _ in range(skipped):
            advance()
        if not todo:
            return 0, 0, skipped
        cluster = LocalCluster(**DASK_CLUSTER_OPTIONS)  # type: ignore[no-untyped-call]
        client = Client(cluster)  # type: ignore[no-untyped-call]
        with cluster, client:
            shared = client.scatter(model, broadcast=True)  # type: ignore[no-untyped-call]
            if plan.csv:
                from dask.delayed import delayed

                score = delayed(_score_partition, pure=False)
                tasks = [
                    score(shared, partitions[i], schema, fs, root, i, job, plan.source)
                    for i in todo
                ]
                futures = client.compute(tasks)  # type: ignore[no-untyped-call]
            else:
                futures = [
                    client.submit(
                        _score_range, shared, plan.source, fs, root, i, *bounds[i], job, pure=False
                    )
                    for i in todo
                ]
            indices = dict(zip(futures, todo, strict=True))
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                index, count, found = _result(future, indices[future], plan)
                _record(fs, root, manifest, index)
                if log is not None:
                    log.add(found)
                rows += count
                written += 1
                advance()
    return rows, written, skipped


def _result(future: Any, index: int, plan: _DaskPlan) -> Scored:
    """A task's ``(index, rows, samples)``; a CSV block pandas cannot parse is an InvalidInput."""
    try:
        result: Scored = future.result()
    except LoopmlError:
        raise
    except (ValueError, TypeError) as exc:
        if not plan.csv:
            raise
        # Raised by read_csv in the partition's own task, before _score_partition runs.
        raise InvalidInput(
            f"{plan.source}: partition {index} could not be read with its columns' types: {exc}",
            field="data",
        ) from exc
    return result


def _parquet_ranges(source: str, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` rows of each chunk of a Parquet file."""
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(source, "rb") as handle:
        total = pq.ParquetFile(handle).metadata.num_rows
    return [(i * size, min(total, (i + 1) * size)) for i in range(-(-total // size))]


def _score_range(
    model: LoadedModel,
    source: str,
    fs: AbstractFileSystem,
    root: str,
    index: int,
    start: int,
    stop: int,
    job: _Job,
) -> Scored:
    """Read rows ``start:stop`` of a Parquet file (only their row groups), score, write."""
    import fsspec
    import pyarrow.parquet as pq

    from loopml.data._canonical import canonical_schema, conform

    with fsspec.open(source, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        schema = canonical_schema(parquet.schema_arrow, source)
        groups: list[int] = []
        offset = 0
        first = 0
        for group in range(parquet.metadata.num_row_groups):
            count = parquet.metadata.row_group(group).num_rows
            if offset + count > start and offset < stop:
                first = offset if not groups else first
                groups.append(group)
            offset += count
        table = parquet.read_row_groups(groups).slice(start - first, stop - start)
    chunk = pa.Table.from_batches([conform(b, schema) for b in table.to_batches()], schema=schema)
    return _score_and_write(model, chunk, fs, root, index, job)


def _score_and_write(
    model: LoadedModel, chunk: pa.Table, fs: AbstractFileSystem, root: str, index: int, job: _Job
) -> Scored:
    started = time.perf_counter()
    scored = _score(model, chunk, job)
    _write_part(fs, root, index, scored)
    return index, chunk.num_rows, samples(chunk, scored, job.log, job.with_proba, index, started)


# -- CSV on dask ----------------------------------------------------------------------------

#: pandas dtypes of the model's columns, by signature type. Datetimes are read as text and
#: cast by Arrow, like every column Arrow reads as a date or time.
_SIGNATURE_DTYPES = {
    "integer": "Int64",
    "double": "float64",
    "boolean": "boolean",
    "string": "string",
    "datetime": "string",
}


def _csv_layout(blocksize: int | None) -> str:
    return f"csv-blocks:{blocksize or 0}"


def _csv_blocksize(source: str, chunk_rows: int) -> int:
    """Bytes holding about ``chunk_rows`` lines, measured on the first MiB (0 for gzip)."""
    import fsspec

    if source.lower().endswith(".gz"):
        return 0  # a gzip stream cannot be entered in the middle
    with fsspec.open(source, "rb") as handle:
        head: bytes = handle.read(1 << 20)
    per_line = len(head) / max(head.count(b"\n"), 1)
    return max(MIN_BLOCKSIZE, int(per_line * chunk_rows))


def _csv_dtype(kind: pa.DataType, signature_type: str | None) -> str:
    """How pandas parses a column: by the model's signature, else as Arrow typed it."""
    if signature_type in _SIGNATURE_DTYPES:
        return _SIGNATURE_DTYPES[str(signature_type)]
    if pa.types.is_integer(kind):
        return "Int64"  # nullable: a gap in a later block must not fail the parse
    if pa.types.is_floating(kind):
        return "float64"
    if pa.types.is_boolean(kind):
        return "boolean"
    return "string"


def _from_text(kind: pa.DataType) -> bool:
    """Whether Arrow casts text to ``kind`` (dates and timestamps yes, times not)."""
    try:
        pa.array([], pa.string()).cast(kind)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return False
    return True


def _csv_partitions(plan: _DaskPlan, model: LoadedModel, job: _Job) -> tuple[list[Any], pa.Schema]:
    """The delayed ``read_csv`` partitions of a CSV file and the schema each is cast to.

    The schema is the one the local executor reads (Arrow's types from the file's first
    block), so both write the same columns with the same types; text is parsed as Arrow's CSV
    reader does (its null markers, except in text columns, where an empty field is ``""``).
    """
    import dask.dataframe as dd
    import pyarrow.csv as pacsv

    typed = {c["name"]: c["type"] for c in (model.signature or {}).get("inputs") or []}
    # With an id column and a signature the output needs only those columns: parse no other.
    needed = {*typed, job.id_column} if job.id_column is not None and typed else None
    nulls = list(pacsv.ConvertOptions().null_values)
    dtypes: dict[str, str] = {}
    na_values: dict[str, list[str]] = {}
    fields = []
    for field in plan.schema:
        if needed is not None and field.name not in needed:
            continue
        dtypes[field.name] = _csv_dtype(field.type, typed.get(field.name))
        if not pa.types.is_string(field.type):
            na_values[field.name] = nulls
        text = dtypes[field.name] == "string"
        fields.append(
            field if not text or _from_text(field.type) else pa.field(field.name, "string")
        )
    lowered = plan.source.lower()
    try:
        frame = dd.read_csv(
            plan.source,
            blocksize=plan.blocksize or None,
            sep="\t" if lowered.endswith(".tsv") else ",",
            compression="gzip" if lowered.endswith(".gz") else None,
            usecols=list(dtypes) if needed is not None else None,
            dtype=dtypes,
            keep_default_na=False,
            na_values=na_values,
        )
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInput(
            f"{plan.source} is not a readable CSV file: {exc}", field="data"
        ) from exc
    return list(frame.to_delayed()), pa.schema(fields)


def _score_partition(
    model: LoadedModel,
    frame: Any,
    schema: pa.Schema,
    fs: AbstractFileSystem,
    root: str,
    index: int,
    job: _Job,
    source: str,
) -> Scored:
    """Cast one parsed CSV partition to the job's schema, score it and write its part."""
    from loopml.data._canonical import conform

    if not len(frame):
        return index, 0, []  # a block smaller than a line; nothing to write
    table = pa.Table.from_pandas(frame, preserve_index=False).select(schema.names)
    try:
        batches = [conform(batch, schema) for batch in table.to_batches()]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(
            f"{source}: partition {index} has a value its column's type cannot hold ({exc})",
            field="data",
        ) from exc
    chunk = pa.Table.from_batches(batches, schema=schema)
    return _score_and_write(model, chunk, fs, root, index, job)


def _check_columns(model: LoadedModel, schema: pa.Schema, id_column: str | None) -> None:
    names = set(schema.names)
    signature = model.signature or {}
    missing = [c["name"] for c in signature.get("inputs") or [] if c["name"] not in names]
    if missing:
        raise InvalidInput(
            f"the input is missing column(s) the model needs: {', '.join(missing)}",
            field=missing[0],
        )
    if id_column is not None and id_column not in names:
        raise InvalidInput(
            f"id_column {id_column!r} is not a column of the input", field="id_column"
        )


def _input_size(source: str) -> int | None:
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(source)
        size = fs.size(path)
    except (OSError, ValueError):
        return None
    return int(size) if size is not None else None


def _open_manifest(
    fs: AbstractFileSystem, root: str, identity: dict[str, Any], spec: str
) -> dict[str, Any]:
    """Read the manifest of an earlier run of this job, or start a new one."""
    path = f"{root}/{MANIFEST}"
    if fs.exists(path):
        try:
            with fs.open(path, "rb") as handle:
                manifest: dict[str, Any] = json.load(handle)
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{path} is unreadable: {exc}", field="output") from exc
        for key, expected in identity.items():
            found = manifest.get(key, _IDENTITY_DEFAULTS.get(key))
            if key == "layout" and found != expected:
                raise InvalidInput(
                    f"the output {root} holds a batch job cut into {_describe_layout(found)}, "
                    f"not {_describe_layout(expected)} (CSV inputs on the dask executor are cut "
                    "into byte blocks); resume it as it was started, or use another folder",
                    field="output",
                )
            if found != expected:
                raise InvalidInput(
                    f"the output {root} holds a batch job with {key} {found!r}, "
                    f"not {expected!r}; use another output folder or delete it",
                    field="output",
                )
        return manifest
    fs.makedirs(root, exist_ok=True)
    if _existing_parts(fs, root):
        raise InvalidInput(
            f"the output {root} holds part files but no {MANIFEST}; use an empty folder",
            field="output",
        )
    manifest = {
        **identity,
        "spec": spec,
        "completed_chunks": [],
        "created_time": int(time.time() * 1000),
    }
    _write_json(fs, path, manifest)
    return manifest


#: Identity values of manifests written before the key existed.
_IDENTITY_DEFAULTS: dict[str, Any] = {"layout": ROWS_LAYOUT}


def _describe_layout(layout: Any) -> str:
    if layout == ROWS_LAYOUT:
        return "chunks of rows"
    size = str(layout).rpartition(":")[2]
    return "one CSV block" if size == "0" else f"CSV blocks of {size} bytes"


def _existing_parts(fs: AbstractFileSystem, root: str) -> set[int]:
    """Chunk indices whose part file exists (part files only appear complete)."""
    found: set[int] = set()
    for path in fs.glob(f"{root}/part-*.parquet"):
        stem = str(path).rsplit("/", 1)[-1][len("part-") : -len(".parquet")]
        if stem.isdigit():
            found.add(int(stem))
    return found


def _chunks(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Regroup a stream of record batches into tables of exactly ``size`` rows (bar the last)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == size:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


def _score(model: LoadedModel, chunk: pa.Table, job: _Job) -> pa.Table:
    """Predict one chunk and build its output table."""
    import numpy as np

    frame = chunk.to_pandas()
    predictions = np.asarray(model.predict(frame))
    base = chunk.select([job.id_column]) if job.id_column is not None else chunk
    base = base.drop_columns([c for c in base.column_names if c in _RESERVED])
    columns: dict[str, Any] = {c: base.column(c) for c in base.column_names}
    columns["prediction"] = pa.array(predictions.reshape(len(frame), -1)[:, 0])
    if job.with_proba:
        probabilities = np.asarray(model.predict_proba(frame))
        try:
            classes = [str(c) for c in model.classes_]
        except AttributeError:
            classes = [str(i) for i in range(probabilities.shape[1])]
        for position, label in enumerate(classes):
            columns[f"proba_{label}"] = pa.array(probabilities[:, position])
    columns["model_name"] = pa.array([job.name] * chunk.num_rows, pa.string())
    columns["model_version"] = pa.array([job.version] * chunk.num_rows, pa.int64())
    return pa.table(columns)


def _write_part(fs: AbstractFileSystem, root: str, index: int, table: pa.Table) -> None:
    """Write a part file under a temporary name, then rename it into place."""
    import pyarrow.parquet as pq

    final = f"{root}/{_PART.format(index)}"
    temporary = f"{root}/.{_PART.format(index)}.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open(temporary, "wb") as handle:
            pq.write_table(table, handle)
        fs.mv(temporary, final)
    finally:
        if fs.exists(temporary):
            fs.rm(temporary)


def _write_json(fs: AbstractFileSystem, path: str, data: dict[str, Any]) -> None:
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    with fs.open(temporary, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    fs.mv(temporary, path)


class _progress:  # noqa: N801 - used like a function
    """A context manager yielding a callable that advances a progress bar by one chunk."""

    def __init__(self, enabled: bool, label: str, total: int | None) -> None:
        self.enabled = enabled
        self.label = label
        self.total = total
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(f"scoring {self.label}", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
