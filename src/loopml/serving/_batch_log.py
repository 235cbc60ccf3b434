"""The prediction log of a batch job: which scored rows are logged, and how they are queued.

The rows of a chunk are logged as requests of :data:`LOG_REQUEST_ROWS` rows named
``batch:<job id>:<chunk>:<row offset>``; sampling keeps or drops each request whole, by a
hash of its name. Picking the sampled rows happens where the chunk was scored (a dask worker
too, so only those rows travel back); queuing them for the writer happens only in the process
that runs the job, through :class:`ChunkLog`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.monitoring.predictions import PredictionLogger

logger = logging.getLogger("loopml.serving")

#: Rows per logged request; sampling keeps or drops each such run of rows whole.
LOG_REQUEST_ROWS = 100
#: Logged requests waiting for the writer before the job waits for it (none are dropped).
LOG_QUEUE = 10_000
#: The variant logged batch predictions carry.
VARIANT = "batch"


@dataclass(frozen=True)
class LogSpec:
    """What a job logs under: its id (in request ids), model, version and sample rate."""

    job_id: str
    model: str
    version: int | None
    sample_rate: float


@dataclass(frozen=True)
class Sample:
    """Rows of a scored chunk picked for the prediction log: one logged request."""

    request_id: str
    inputs: list[dict[str, Any]]
    predictions: list[Any]
    probabilities: list[list[float]] | None
    latency_ms: float


#: What scoring a chunk on a dask worker returns: its index, rows and requests to log.
Scored = tuple[int, int, list[Sample]]


def samples(
    chunk: pa.Table,
    scored: pa.Table,
    spec: LogSpec | None,
    with_proba: bool,
    index: int,
    started: float,
) -> list[Sample]:
    """The sampled requests of chunk ``index``, scored into ``scored`` since ``started``.

    Parameters
    ----------
    chunk : pyarrow.Table
        The chunk as the model got it.
    scored : pyarrow.Table
        Its output table, row for row.
    spec : LogSpec or None
        The job's logging; None returns no samples.
    with_proba : bool
        Whether ``scored`` has ``proba_<class>`` columns.
    index : int
        The chunk index.
    started : float
        ``time.perf_counter()`` when scoring began: the requests' latency.

    Returns
    -------
    list of Sample
        One per sampled request, in row order.
    """
    if spec is None:
        return []
    from loopml.monitoring.predictions import is_sampled

    latency_ms = (time.perf_counter() - started) * 1000
    names = scored.column_names
    # The probability columns sit between the prediction and the model name; an input
    # column may be called proba_<x> as well, so they are found by position, not by name.
    proba = names[names.index("prediction") + 1 : names.index("model_name")] if with_proba else []
    found = []
    for offset in range(0, chunk.num_rows, LOG_REQUEST_ROWS):
        request_id = f"batch:{spec.job_id}:{index}:{offset}"
        # The logger samples by the same hash; deciding here keeps the others off the wire.
        if not is_sampled(request_id, spec.sample_rate):
            continue
        part = scored.slice(offset, LOG_REQUEST_ROWS)
        probabilities = None
        if proba:
            columns = [part.column(c).to_pylist() for c in proba]
            probabilities = [list(row) for row in zip(*columns, strict=True)]
        found.append(
            Sample(
                request_id,
                chunk.slice(offset, LOG_REQUEST_ROWS).to_pylist(),
                part.column("prediction").to_pylist(),
                probabilities,
                latency_ms,
            )
        )
    return found


class ChunkLog:
    """The prediction log of one job, fed with the sampled requests of each scored chunk.

    Parameters
    ----------
    spec : LogSpec
        The job's id, model, version and sample rate.
    """

    def __init__(self, spec: LogSpec) -> None:
        from loopml.monitoring.predictions import PredictionLogger

        self.spec = spec
        self.logger: PredictionLogger = PredictionLogger(
            sample_rate=spec.sample_rate, max_queue=LOG_QUEUE
        )

    def add(self, found: list[Sample]) -> None:
        """Queue the requests; wait for the writer rather than drop any."""
        from loopml.monitoring.predictions import PredictionRecord

        now = datetime.now(UTC)
        for sample in found:
            if self.logger.queued >= LOG_QUEUE:
                self.logger.flush()  # only this thread queues, so the flush makes room
            self.logger.log(
                PredictionRecord(
                    request_id=sample.request_id,
                    model=self.spec.model,
                    version=self.spec.version,
                    inputs=sample.inputs,
                    predictions=sample.predictions,
                    probabilities=sample.probabilities,
                    latency_ms=sample.latency_ms,
                    variant=VARIANT,
                    timestamp=now,
                )
            )

    def close(self) -> int:
        """Write what is queued and stop the writer; return the rows it wrote."""
        if not self.logger.close(timeout=300.0):
            logger.warning("the prediction log was not fully written within 300 s")
        return self.logger.written
