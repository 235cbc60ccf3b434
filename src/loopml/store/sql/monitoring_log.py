"""SQL index of the prediction log (segments and requests) and the ground-truth labels.

The predicted rows themselves live in Parquet segments in the blob store; this store only
records which segment covers which model and time range, which requests each segment holds
(one row per request, so labels can find their model without reading Parquet), and the
labels. A segment and its requests commit in one transaction, after the segment's bytes are
stored, so a reader never finds an index row pointing at missing data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Select, and_, exists, func, insert, select

from loopml.store.base import LabelRecord, PredictionSegment
from loopml.store.sql._base import SqlStoreBase, from_row, now_ms
from loopml.store.sql._upsert import upsert
from loopml.store.sql.models import PredictionLabelRow, PredictionRequestRow, PredictionSegmentRow

#: Ids per ``IN (...)`` list; well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _matching_request() -> Any:
    """The join condition of a label and the logged request (and row) it labels."""
    return and_(
        PredictionRequestRow.request_id == PredictionLabelRow.request_id,
        PredictionLabelRow.row < PredictionRequestRow.rows,
    )


class SqlPredictionLogStore(SqlStoreBase):
    """Prediction log segments, logged requests and labels in SQL."""

    # -- segments -----------------------------------------------------------------------
    def add_prediction_segment(
        self, segment: PredictionSegment, requests: Sequence[tuple[str, int, int]]
    ) -> PredictionSegment:
        """Commit a segment with its ``(request_id, time_ms, rows)`` entries in one go.

        A request id logged again for the same model version (a client reusing
        ``X-Request-ID``) points at the newer segment.
        """
        created = now_ms()
        latest: dict[str, tuple[int, int]] = {}
        for request_id, time_ms, rows in requests:
            latest[request_id] = (time_ms, rows)
        with self._write() as conn:
            result = conn.execute(
                insert(PredictionSegmentRow)
                .values(
                    model=segment.model,
                    version=segment.version,
                    path=segment.path,
                    blob_sha256=segment.blob_sha256,
                    size_bytes=segment.size_bytes,
                    min_time=segment.min_time,
                    max_time=segment.max_time,
                    rows=segment.rows,
                    created_time=created,
                )
                .returning(PredictionSegmentRow.id)
            )
            segment_id = int(result.scalar_one())
            upsert(
                conn,
                PredictionRequestRow,
                [
                    {
                        "request_id": request_id,
                        "model": segment.model,
                        "version": segment.version,
                        "time": time_ms,
                        "rows": rows,
                        "segment_id": segment_id,
                    }
                    for request_id, (time_ms, rows) in latest.items()
                ],
                keys=("request_id", "model", "version"),
                update=("time", "rows", "segment_id"),
            )
        return replace(segment, id=segment_id, created_time=created)

    def list_prediction_segments(
        self,
        model: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> list[PredictionSegment]:
        """Return the segments of a model overlapping ``[since_ms, until_ms)``, oldest first."""
        query = select(PredictionSegmentRow).where(PredictionSegmentRow.model == model)
        if since_ms is not None:
            query = query.where(PredictionSegmentRow.max_time >= since_ms)
        if until_ms is not None:
            query = query.where(PredictionSegmentRow.min_time < until_ms)
        if version is not None:
            query = query.where(PredictionSegmentRow.version == version)
        query = query.order_by(PredictionSegmentRow.min_time, PredictionSegmentRow.id)
        with self._read() as conn:
            return [from_row(PredictionSegment, row) for row in conn.execute(query)]

    def request_models(self, request_ids: Sequence[str]) -> dict[str, list[str]]:
        """Map each logged request id to the models that answered it (unknown ids absent)."""
        found: dict[str, list[str]] = {}
        unique = sorted(set(request_ids))
        with self._read() as conn:
            for chunk in _chunks(unique):
                rows = conn.execute(
                    select(PredictionRequestRow.request_id, PredictionRequestRow.model).where(
                        PredictionRequestRow.request_id.in_(chunk)
                    )
                )
                for request_id, model in rows:
                    models = found.setdefault(request_id, [])
                    if model not in models:
                        models.append(model)
        return found

    # -- labels -------------------------------------------------------------------------
    def label_kinds(self, models: Sequence[str]) -> dict[str, str]:
        """Return the kind of the labels already stored for each model that has some."""
        kinds: dict[str, str] = {}
        with self._read() as conn:
            for model in sorted(set(models)):
                kind = conn.execute(
                    select(PredictionLabelRow.kind)
                    .join(PredictionRequestRow, _matching_request())
                    .where(PredictionRequestRow.model == model)
                    .limit(1)
                ).scalar()
                if kind is not None:
                    kinds[model] = str(kind)
        return kinds

    def upsert_labels(self, labels: Sequence[LabelRecord]) -> None:
        """Store labels in one transaction; a label for the same row replaces the old one."""
        received = now_ms()
        latest = {(label.request_id, label.row): label for label in labels}
        rows = [
            {
                "request_id": label.request_id,
                "row": label.row,
                "label_json": label.label_json,
                "kind": label.kind,
                "received_time": label.received_time or received,
            }
            for label in latest.values()
        ]
        with self._write() as conn:
            upsert(
                conn,
                PredictionLabelRow,
                rows,
                keys=("request_id", "row"),
                update=("label_json", "kind", "received_time"),
            )

    def list_labels(
        self,
        model: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        version: int | None = None,
    ) -> list[LabelRecord]:
        """Return the labels of a model's requests logged in ``[since_ms, until_ms)``."""
        query: Select[Any] = (
            select(
                PredictionLabelRow.request_id,
                PredictionLabelRow.row,
                PredictionLabelRow.label_json,
                PredictionLabelRow.kind,
                PredictionLabelRow.received_time,
            )
            .join(PredictionRequestRow, _matching_request())
            .where(PredictionRequestRow.model == model)
            # A request answered by several versions of the model has its labels once.
            .distinct()
        )
        if since_ms is not None:
            query = query.where(PredictionRequestRow.time >= since_ms)
        if until_ms is not None:
            query = query.where(PredictionRequestRow.time < until_ms)
        if version is not None:
            query = query.where(PredictionRequestRow.version == version)
        with self._read() as conn:
            return [
                LabelRecord(
                    request_id=row.request_id,
                    row=row.row,
                    label_json=row.label_json,
                    kind=row.kind,
                    received_time=row.received_time,
                )
                for row in conn.execute(query)
            ]

    def label_stats(self, model: str) -> dict[str, int]:
        """Count a model's logged requests and rows, labelled rows, and orphan labels.

        Orphans are labels (of any model) whose request and row are not in the log: they
        arrived for an unknown request, or before the request's segment was written.
        """
        with self._read() as conn:
            requests, rows = conn.execute(
                select(func.count(), func.coalesce(func.sum(PredictionRequestRow.rows), 0)).where(
                    PredictionRequestRow.model == model
                )
            ).one()
            labelled = conn.execute(
                select(func.count())
                .select_from(PredictionLabelRow)
                .join(PredictionRequestRow, _matching_request())
                .where(PredictionRequestRow.model == model)
            ).scalar_one()
            orphans = conn.execute(
                select(func.count())
                .select_from(PredictionLabelRow)
                .where(~exists().where(_matching_request()))
            ).scalar_one()
        return {
            "requests": int(requests),
            "rows": int(rows),
            "labelled": int(labelled),
            "orphans": int(orphans),
        }
