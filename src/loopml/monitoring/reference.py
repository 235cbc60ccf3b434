"""Reference statistics of a monitor: per-column sketches computed once, then stored.

A monitor compares every window of logged predictions with a reference, usually the
dataset version the served model was trained on. Reading and summarising that dataset on
every run would dominate the cost of monitoring, so the reference is reduced once to a
:class:`ReferenceSketch` and stored under a key derived from the dataset version's digest
and the column set (see :func:`sketch_key`); later runs load it and never touch the data.

Each column keeps what the drift tests of :mod:`loopml.stats` need:

- numeric columns: histogram edges and counts (for reports), the value counts when the
  column has at most 20 distinct values (the count-based tests), and a bounded sample
  drawn with a fixed seed (the tests on raw values, KS and Wasserstein). A reference of at
  most :data:`SAMPLE_SIZE` values is kept whole, so the KS test, which
  :func:`loopml.stats.choose_method` only picks for references of at most 1,000 values,
  sees exactly the data it would see without a sketch;
- categorical columns: the count of each category (the most frequent
  :data:`MAX_CATEGORIES`, the rest summed under ``other``).

Examples
--------
>>> import numpy as np
>>> import pandas as pd
>>> from loopml.monitoring.reference import build_sketch
>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"x": rng.normal(size=500), "plan": rng.choice(["a", "b"], 500)})
>>> sketch = build_sketch(frame, ["x", "plan"], reference="churn@v1")
>>> sketch.columns["x"].kind, sketch.columns["x"].count, sketch.columns["plan"].kind
('numeric', 500, 'categorical')
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput
from loopml.stats._arrays import LOW_CARDINALITY, infer_kind, numeric_values

__all__ = [
    "HISTOGRAM_BINS",
    "MAX_CATEGORIES",
    "SAMPLE_SEED",
    "SAMPLE_SIZE",
    "ColumnSketch",
    "ReferenceSketch",
    "build_sketch",
    "sketch_column",
    "sketch_key",
]

#: Raw values kept per numeric column for the tests that need them (KS, Wasserstein).
SAMPLE_SIZE = 5000
#: The sample is drawn with this seed, so the same reference always gives the same sketch.
SAMPLE_SEED = 20_240_517
#: Equal-width bins of the numeric histograms shown in reports.
HISTOGRAM_BINS = 20
#: Categories kept by name; rarer ones are summed under ``other``.
MAX_CATEGORIES = 1000
#: Bumped when the sketch layout changes, so old stored sketches are not reused.
SKETCH_FORMAT = 1


def _plain(value: Any) -> Any:
    """A JSON-able Python scalar (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class ColumnSketch:
    """What the drift tests need to know about one reference column.

    Attributes
    ----------
    name : str
        The column.
    kind : {"numeric", "categorical"}
        How the column is tested (see :func:`loopml.stats.choose_method`).
    count, missing : int
        Non-null and null values in the reference.
    edges, counts : list
        Numeric: the histogram's bin edges and counts.
    values : list of [value, count], optional
        Numeric columns with at most 20 distinct values: the count of each value.
    sample : list of float
        Numeric: a fixed-seed sample of at most :data:`SAMPLE_SIZE` non-null values.
    categories : list of [value, count]
        Categorical: the count of each category, most frequent first.
    other : int
        Categorical: values of the categories beyond :data:`MAX_CATEGORIES`.
    """

    name: str
    kind: str
    count: int
    missing: int = 0
    edges: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    values: list[list[Any]] | None = None
    sample: list[float] = field(default_factory=list)
    categories: list[list[Any]] = field(default_factory=list)
    other: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "edges": self.edges,
            "counts": self.counts,
            "values": self.values,
            "sample": self.sample,
            "categories": self.categories,
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSketch:
        """Build from :meth:`to_dict` output."""
        try:
            return cls(
                name=str(data["name"]),
                kind=str(data["kind"]),
                count=int(data["count"]),
                missing=int(data.get("missing", 0)),
                edges=[float(e) for e in data.get("edges") or []],
                counts=[int(c) for c in data.get("counts") or []],
                values=None if data.get("values") is None else [list(p) for p in data["values"]],
                sample=[float(v) for v in data.get("sample") or []],
                categories=[list(p) for p in data.get("categories") or []],
                other=int(data.get("other", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a column sketch: {exc!r}", field="reference") from exc

    def value_counts(self) -> dict[Any, int]:
        """The count of each distinct value (categories, or values of a numeric column).

        Raises
        ------
        InvalidInput
            For a numeric column with more than 20 distinct values, which keeps no counts.
        """
        pairs = self.categories if self.kind == "categorical" else self.values
        if pairs is None:
            raise InvalidInput(f"column {self.name!r} keeps no value counts", field=self.name)
        return {_plain(key): int(count) for key, count in pairs}

    def histogram_of(self, values: np.ndarray[Any, Any]) -> list[int]:
        """Count numeric ``values`` on this column's bins; values outside go to the end bins."""
        if not self.edges or values.size == 0:
            return [0] * len(self.counts)
        clipped = np.clip(values, self.edges[0], self.edges[-1])
        counts, _ = np.histogram(clipped, bins=np.asarray(self.edges))
        return [int(c) for c in counts]


@dataclass(frozen=True)
class ReferenceSketch:
    """The sketches of a reference's columns and where they came from.

    Attributes
    ----------
    reference : str
        The reference, as ``name@vN`` for a dataset version.
    rows : int
        Rows the reference had.
    columns : dict[str, ColumnSketch]
        One sketch per column, in column order.
    skipped : dict[str, str]
        Columns that could not be sketched, and why.
    """

    reference: str
    rows: int
    columns: dict[str, ColumnSketch]
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (what the store keeps)."""
        return {
            "format": SKETCH_FORMAT,
            "reference": self.reference,
            "rows": self.rows,
            "columns": [c.to_dict() for c in self.columns.values()],
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceSketch:
        """Build from :meth:`to_dict` output."""
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise InvalidInput("not a reference sketch: 'columns' missing", field="reference")
        columns = [ColumnSketch.from_dict(item) for item in data["columns"]]
        return cls(
            reference=str(data.get("reference", "")),
            rows=int(data.get("rows", 0)),
            columns={c.name: c for c in columns},
            skipped={str(k): str(v) for k, v in dict(data.get("skipped") or {}).items()},
        )


def sketch_key(reference: str, digest: str, columns: Sequence[str], purpose: str = "") -> str:
    """The storage key of a reference sketch.

    Parameters
    ----------
    reference : str
        The reference (``name@vN``).
    digest : str
        The dataset version's content digest: a re-registered dataset with other content
        never reuses a stale sketch.
    columns : sequence of str
        The sketched columns; their order does not matter.
    purpose : str
        Distinguishes sketches of the same data for different uses (reference predictions
        of one model version, say).
    """
    payload = json.dumps(
        [SKETCH_FORMAT, reference, digest, sorted(columns), purpose], separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def sketch_column(values: pd.Series[Any], name: str, kind: str | None = None) -> ColumnSketch:
    """Summarise one reference column.

    Parameters
    ----------
    values : pandas.Series
        The column; nulls are counted, then dropped.
    name : str
        The column name.
    kind : {"numeric", "categorical"}, optional
        Inferred from the dtype as :mod:`loopml.stats` does when omitted.

    Raises
    ------
    InvalidInput
        When the dtype is neither numeric nor categorical, or no value is non-null.
    """
    resolved = infer_kind(values, column=name) if kind is None else kind
    missing = int(values.isna().sum())
    if resolved == "categorical":
        counts = values.dropna().value_counts(sort=True)
        if counts.empty:
            raise InvalidInput(f"column {name!r} has no non-null reference values", field=name)
        kept = counts.iloc[:MAX_CATEGORIES]
        return ColumnSketch(
            name=name,
            kind="categorical",
            count=int(counts.sum()),
            missing=missing,
            categories=[[_plain(k), int(c)] for k, c in kept.items()],
            other=int(counts.iloc[MAX_CATEGORIES:].sum()),
        )
    array = numeric_values(values, column=name, side="reference")
    if array.size == 0:
        raise InvalidInput(f"column {name!r} has no finite reference values", field=name)
    low, high = float(array.min()), float(array.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    hist, edges = np.histogram(array, bins=HISTOGRAM_BINS, range=(low, high))
    distinct = pd.Series(array).value_counts(sort=False)
    value_pairs = (
        [
            [float(k), int(c)]
            for k, c in sorted(
                zip(distinct.index.to_numpy(dtype=np.float64), distinct.to_numpy(), strict=True)
            )
        ]
        if len(distinct) <= LOW_CARDINALITY
        else None
    )
    if array.size > SAMPLE_SIZE:
        rng = np.random.default_rng(SAMPLE_SEED)
        sample = array[np.sort(rng.choice(array.size, SAMPLE_SIZE, replace=False))]
    else:
        sample = array
    return ColumnSketch(
        name=name,
        kind="numeric",
        count=int(array.size),
        missing=missing + int(len(values) - missing - array.size),
        edges=[float(e) for e in edges],
        counts=[int(c) for c in hist],
        values=value_pairs,
        sample=[float(v) for v in sample if math.isfinite(v)],
    )


def build_sketch(frame: pd.DataFrame, columns: Sequence[str], *, reference: str) -> ReferenceSketch:
    """Sketch ``columns`` of a reference frame.

    Columns that cannot be sketched (absent, an unsupported dtype, all null) are listed in
    ``skipped`` rather than failing the whole reference.

    Parameters
    ----------
    frame : pandas.DataFrame
        The reference data.
    columns : sequence of str
        The columns to sketch.
    reference : str
        What the data is (``name@vN``), recorded in the sketch.
    """
    sketches: dict[str, ColumnSketch] = {}
    skipped: dict[str, str] = {}
    for name in columns:
        if name not in frame.columns:
            skipped[name] = "not in the reference"
            continue
        try:
            sketches[name] = sketch_column(frame[name], name)
        except InvalidInput as exc:
            skipped[name] = exc.message
    return ReferenceSketch(reference=reference, rows=len(frame), columns=sketches, skipped=skipped)
