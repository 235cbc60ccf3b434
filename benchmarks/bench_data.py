#!/usr/bin/env python
"""Side-by-side data validation benchmark: loopml against Evidently's DataDriftPreset.

Run it with the project's interpreter, after ``bash benchmarks/setup_evidently.sh`` has put
Evidently into ``benchmarks/.venv-evidently``::

    .venv/bin/python benchmarks/bench_data.py                  # 1,000,000 rows, print the table
    .venv/bin/python benchmarks/bench_data.py --rows 100000    # a quick run
    .venv/bin/python benchmarks/bench_data.py --write          # and append it to RESULTS.md

One shared synthetic data set is generated with a fixed seed: a reference and a current
frame of ``--rows`` rows and 20 columns (12 numeric, 8 categorical strings), where 7 known
columns are shifted in the current frame and the other 13 are drawn again from the same
distribution. Both frames are saved as Parquet under ``benchmarks/.work`` (reused while the
row count, seed and generator are unchanged).

Each task then runs in a fresh subprocess (loopml's in the project venv, Evidently's in its
own venv) that reads both Parquet files into pandas DataFrames, outside the timer, and times
only the library call. The subprocess reports its peak memory (``ru_maxrss``) and, for the
drift tasks, every column's method, score and verdict; the parent compares loopml's verdicts
with Evidently's column by column.

This file is also the worker: the parent calls it again as ``bench_data.py --worker SPEC``
with the interpreter of the tool under test, so the module imports the standard library only;
numpy, pandas, pyarrow and the tools are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    clean_env,
    dist_version,
    emit_result,
    parse_result,
    run_code,
    watchdog,
)
from _report import (
    BENCH_DIR,
    Table,
    add_output_options,
    append_section,
    load_at_start,
    load_span,
    print_tables_plain,
    run_facts,
    say,
    write_raw_json,
)

DEFAULT_EVIDENTLY_PYTHON = BENCH_DIR / ".venv-evidently" / "bin" / "python"

SEED = 20_240_601
#: Bump when the generator changes, so cached Parquet files are rebuilt.
GENERATOR_VERSION = 1
WORKER_TIMEOUT_S = 1800.0

# --------------------------------------------------------------------------------------------
# The shared data set. Shifts are in standard deviations of the column's distribution; for
# categorical columns the current frame uses other category shares.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericColumn:
    """A numeric column: its distribution, parameters and the shift in the current frame."""

    name: str
    dist: str  # "normal", "lognormal", "uniform_int", "poisson", "choice_int"
    params: tuple[float, ...]
    shift_std: float = 0.0  # mean shift of the current frame, in standard deviations
    values: tuple[int, ...] = ()  # choice_int: the values ...
    probs: tuple[float, ...] = ()  # ... and their shares

    @property
    def std(self) -> float:
        """The standard deviation of the distribution (what ``shift_std`` is measured in)."""
        import math

        if self.dist == "normal":
            return self.params[1]
        if self.dist == "lognormal":
            mu, sigma = self.params
            return math.sqrt((math.exp(sigma**2) - 1) * math.exp(2 * mu + sigma**2))
        if self.dist == "uniform_int":
            width = self.params[1] - self.params[0] + 1
            return math.sqrt((width**2 - 1) / 12)
        if self.dist == "poisson":
            return math.sqrt(self.params[0])
        mean = sum(v * p for v, p in zip(self.values, self.probs, strict=True))
        return math.sqrt(
            sum(p * (v - mean) ** 2 for v, p in zip(self.values, self.probs, strict=True))
        )

    @property
    def is_int(self) -> bool:
        """Whether the column holds int64 values."""
        return self.dist in ("uniform_int", "poisson", "choice_int")

    def describe(self) -> str:
        """A short text, e.g. ``normal(0, 1), +0.3 std``."""
        if self.dist == "choice_int":
            base = f"int {min(self.values)}..{max(self.values)} ({len(self.values)} values)"
        elif self.dist == "uniform_int":
            base = f"uniform int {self.params[0]:g}..{self.params[1]:g}"
        else:
            base = f"{self.dist}({', '.join(f'{p:g}' for p in self.params)})"
        return base + (f", {self.shift_std:+g} std" if self.shift_std else "")


@dataclass(frozen=True)
class CategoricalColumn:
    """A string column with a few categories; ``current`` shares differ when shifted."""

    name: str
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...] | None = None

    @property
    def shifted(self) -> bool:
        """Whether the current frame draws from other shares."""
        return self.current is not None

    def describe(self) -> str:
        """A short text, e.g. ``3 categories, shares changed``."""
        return f"{len(self.labels)} categories" + (", shares changed" if self.shifted else "")


def _zipf(k: int, a: float = 1.1) -> tuple[float, ...]:
    weights = [1.0 / (i + 1) ** a for i in range(k)]
    total = sum(weights)
    return tuple(w / total for w in weights)


def _uniform(k: int) -> tuple[float, ...]:
    return tuple([1.0 / k] * k)


def _swap(shares: tuple[float, ...], i: int, j: int) -> tuple[float, ...]:
    out = list(shares)
    out[i], out[j] = out[j], out[i]
    return tuple(out)


def _labels(prefix: str, k: int) -> tuple[str, ...]:
    return tuple(f"{prefix}_{i:02d}" for i in range(k))


NUMERIC: tuple[NumericColumn, ...] = (
    NumericColumn("normal_1", "normal", (0.0, 1.0), shift_std=0.3),
    NumericColumn("normal_2", "normal", (50.0, 10.0)),
    NumericColumn("normal_3", "normal", (-3.0, 2.0), shift_std=-0.5),
    NumericColumn("normal_4", "normal", (1000.0, 250.0)),
    NumericColumn("normal_5", "normal", (5.0, 0.5), shift_std=1.0),
    NumericColumn("lognormal_1", "lognormal", (0.0, 0.5), shift_std=0.6),
    NumericColumn("lognormal_2", "lognormal", (3.0, 1.0)),
    NumericColumn("lognormal_3", "lognormal", (1.0, 0.25)),
    NumericColumn("int_age", "uniform_int", (18, 90), shift_std=0.4),
    NumericColumn("int_visits", "poisson", (4.0,)),
    NumericColumn(
        "int_weekday",
        "choice_int",
        (),
        values=(0, 1, 2, 3, 4, 5, 6),
        probs=(0.16, 0.15, 0.15, 0.15, 0.16, 0.12, 0.11),
    ),
    NumericColumn(
        "int_rating", "choice_int", (), values=(1, 2, 3, 4, 5), probs=(0.05, 0.10, 0.20, 0.35, 0.30)
    ),
)

CATEGORICAL: tuple[CategoricalColumn, ...] = (
    CategoricalColumn("cat_plan", _labels("plan", 3), (0.6, 0.3, 0.1), (0.4, 0.35, 0.25)),
    CategoricalColumn("cat_device", _labels("device", 4), (0.5, 0.3, 0.15, 0.05)),
    CategoricalColumn("cat_browser", _labels("browser", 5), _zipf(5)),
    CategoricalColumn("cat_channel", _labels("channel", 6), _uniform(6)),
    CategoricalColumn("cat_region", _labels("region", 8), _zipf(8, 0.7)),
    CategoricalColumn("cat_color", _labels("color", 10), _uniform(10)),
    CategoricalColumn("cat_country", _labels("country", 12), _zipf(12), _swap(_zipf(12), 0, 1)),
    CategoricalColumn("cat_segment", _labels("segment", 20), _zipf(20, 0.5)),
)


def column_order() -> list[str]:
    """Numeric and categorical columns interleaved, as in a typical feature table."""
    names: list[str] = []
    nums, cats = [c.name for c in NUMERIC], [c.name for c in CATEGORICAL]
    while nums or cats:
        names.extend(nums[:3])
        nums = nums[3:]
        names.extend(cats[:2])
        cats = cats[2:]
    return names


def described_columns() -> dict[str, str]:
    """Every column's name and how it is generated."""
    columns: list[NumericColumn | CategoricalColumn] = [*NUMERIC, *CATEGORICAL]
    return {c.name: c.describe() for c in columns}


def shifted_columns() -> list[str]:
    """The columns whose distribution differs in the current frame (the ground truth)."""
    return [c.name for c in NUMERIC if c.shift_std] + [c.name for c in CATEGORICAL if c.shifted]


def dataset_key(rows: int, seed: int) -> str:
    """A digest of everything that decides the generated data."""
    spec = json.dumps(
        {
            "rows": rows,
            "seed": seed,
            "version": GENERATOR_VERSION,
            "numeric": [repr(c) for c in NUMERIC],
            "categorical": [repr(c) for c in CATEGORICAL],
        },
        sort_keys=True,
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def generate(rows: int, seed: int, folder: Path) -> tuple[Path, Path, float]:
    """Write ``reference.parquet`` and ``current.parquet`` into ``folder`` (reused if current).

    Returns the two paths and the seconds spent generating (0 when reused).
    """
    ref_path, cur_path = folder / "reference.parquet", folder / "current.parquet"
    stamp = folder / "dataset.json"
    key = dataset_key(rows, seed)
    if ref_path.is_file() and cur_path.is_file() and stamp.is_file():
        try:
            if json.loads(stamp.read_text(encoding="utf-8")).get("key") == key:
                return ref_path, cur_path, 0.0
        except (OSError, ValueError):
            pass
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    streams = np.random.SeedSequence(seed).spawn(2)
    for side, path, stream in (
        ("reference", ref_path, streams[0]),
        ("current", cur_path, streams[1]),
    ):
        rngs = dict(
            zip(
                [c.name for c in NUMERIC] + [c.name for c in CATEGORICAL],
                [np.random.default_rng(s) for s in stream.spawn(20)],
                strict=True,
            )
        )
        arrays: dict[str, Any] = {}
        for num in NUMERIC:
            rng = rngs[num.name]
            shift = num.shift_std * num.std if side == "current" else 0.0
            values: Any
            if num.dist == "normal":
                values = rng.normal(num.params[0], num.params[1], rows) + shift
            elif num.dist == "lognormal":
                values = rng.lognormal(num.params[0], num.params[1], rows) + shift
            elif num.dist == "uniform_int":
                low, high = int(num.params[0]), int(num.params[1])
                values = rng.integers(low, high + 1, rows, dtype=np.int64) + round(shift)
            elif num.dist == "poisson":
                values = rng.poisson(num.params[0], rows).astype(np.int64) + round(shift)
            else:
                values = rng.choice(
                    np.asarray(num.values, dtype=np.int64), rows, p=np.asarray(num.probs)
                ) + round(shift)
            arrays[num.name] = pa.array(values, type=pa.int64() if num.is_int else pa.float64())
        for cat in CATEGORICAL:
            shares = cat.current if side == "current" and cat.current else cat.reference
            codes = rngs[cat.name].choice(len(cat.labels), rows, p=np.asarray(shares))
            dictionary = pa.DictionaryArray.from_arrays(
                pa.array(codes, type=pa.int32()), pa.array(list(cat.labels))
            )
            arrays[cat.name] = dictionary.cast(pa.string())
        table = pa.table({name: arrays[name] for name in column_order()})
        pq.write_table(table, path, compression="snappy")
    stamp.write_text(
        json.dumps(
            {
                "key": key,
                "rows": rows,
                "seed": seed,
                "generator_version": GENERATOR_VERSION,
                "shifted": shifted_columns(),
                "columns": described_columns(),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return ref_path, cur_path, time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# Worker half: runs inside the interpreter of the tool under test.
# --------------------------------------------------------------------------------------------


def _rss_kib(field_name: str) -> int | None:
    """Return ``VmRSS`` or ``VmHWM`` of this process in KiB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) so it measures the timed call only."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
    except OSError:
        return False
    return True


def _loopml_drift_verdicts(drift: Any) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "method": r.method,
            "kind": r.kind,
            "score": float(r.score),
            "threshold": float(r.threshold),
            "drifted": bool(r.drifted),
        }
        for name, r in drift.columns.items()
    }


def _task_loopml(task: str, ref: Any, cur: Any) -> tuple[float, dict[str, Any]]:
    """Run one loopml task on the loaded frames; return the seconds and what it found."""
    import loopml
    from loopml.data import profile_table, validate
    from loopml.stats import dataset_drift

    out: dict[str, Any] = {"version": dist_version("loopml", loopml.__version__)}
    start = time.perf_counter()
    if task == "drift":
        drift = dataset_drift(ref, cur)
        seconds = time.perf_counter() - start
        out["verdicts"] = _loopml_drift_verdicts(drift)
        out["skipped"] = dict(drift.skipped)
    elif task == "validate":
        result = validate(cur, reference=ref)
        seconds = time.perf_counter() - start
        out["verdicts"] = _loopml_drift_verdicts(result.drift)
        out["skipped"] = dict(result.drift.skipped) if result.drift else {}
        out["summary"] = result.summary()
        out["anomalies"] = _anomaly_counts(result)
    elif task == "profile":
        profile = profile_table(cur)
        seconds = time.perf_counter() - start
        out["profiled_columns"] = profile.num_columns
        out["profiled_rows"] = profile.num_rows
        out["approximate"] = profile.approximate
    elif task == "profile+validate":
        profile = profile_table(cur)
        result = validate(cur, reference=ref)
        seconds = time.perf_counter() - start
        out["profiled_columns"] = profile.num_columns
        out["verdicts"] = _loopml_drift_verdicts(result.drift)
        out["summary"] = result.summary()
        out["anomalies"] = _anomaly_counts(result)
    else:
        raise ValueError(f"unknown loopml task {task!r}")
    return seconds, out


def _anomaly_counts(result: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for anomaly in result.anomalies:
        key = f"{anomaly.kind.value}/{anomaly.severity}"
        counts[key] = counts.get(key, 0) + 1
    return counts


#: Evidently's display names of its drift methods: (loopml key, True when a p-value).
EVIDENTLY_METHODS: dict[str, tuple[str, bool]] = {
    "Wasserstein distance (normed)": ("wasserstein", False),
    "Jensen-Shannon distance": ("jensenshannon", False),
    "K-S p_value": ("ks", True),
    "chi-square p_value": ("chisquare", True),
    "Z-test p_value": ("z", True),
    "PSI": ("psi", False),
}


def _evidently_verdicts(snapshot_dict: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    """Per-column verdicts and the drifted-column count from ``snapshot.dict()``.

    Each ``ValueDrift`` metric carries its column, method display name, threshold and score
    (``value``); the verdict follows Evidently's own rule: a p-value below the threshold, or
    a distance at or above it, is drift.
    """
    verdicts: dict[str, Any] = {}
    drifted_count = None
    for metric in snapshot_dict.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith(":DriftedColumnsCount"):
            drifted_count = float(metric["value"]["count"])
        if not kind.endswith(":ValueDrift"):
            continue
        display = str(config.get("method"))
        method, is_p_value = EVIDENTLY_METHODS.get(display, (display, "p_value" in display))
        score, threshold = float(metric["value"]), float(config["threshold"])
        drifted = score < threshold if is_p_value else score >= threshold
        verdicts[str(config["column"])] = {
            "method": method,
            "display": display,
            "score": score,
            "threshold": threshold,
            "drifted": bool(drifted),
        }
    return verdicts, drifted_count


def _task_evidently(task: str, ref: Any, cur: Any) -> tuple[float, dict[str, Any]]:
    """Run Evidently's DataDriftPreset on the loaded frames."""
    if task != "drift-preset":
        raise ValueError(f"unknown evidently task {task!r}")
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    report = Report([DataDriftPreset()])
    snapshot = report.run(current_data=cur, reference_data=ref)
    seconds = time.perf_counter() - start
    t0 = time.perf_counter()
    verdicts, drifted_count = _evidently_verdicts(snapshot.dict())
    out: dict[str, Any] = {
        "version": evidently.__version__,
        "verdicts": verdicts,
        "drifted_count": drifted_count,
        "dict_s": time.perf_counter() - t0,
    }
    try:  # diagnostics only: how Evidently typed each column (numerical, categorical...)
        from evidently.core.datasets import infer_column_type

        out["column_types"] = {
            str(name): str(infer_column_type(ref[name]).value) for name in ref.columns
        }
    except Exception as exc:  # an internal helper: never fail the run on it
        out["column_types_error"] = repr(exc)
    out["distinct_values"] = {
        str(name): int(pd.concat([ref[name], cur[name]]).nunique())
        for name in ref.columns
        if str(ref[name].dtype).startswith("int")
    }
    return seconds, out


#: What each worker imports before loading the data.
TOOL_MODULES = {
    "loopml": ("loopml", "loopml.data", "loopml.stats"),
    "evidently": ("evidently", "evidently.presets", "evidently.core.datasets"),
}


def worker_main(spec_json: str) -> int:
    """Entry point of the worker subprocess: load the frames, time one task, print JSON."""
    spec = json.loads(spec_json)
    import importlib

    import pandas as pd
    import pyarrow

    # Import the tool first, so its import time and memory stay out of the measurement.
    t0 = time.perf_counter()
    for module in TOOL_MODULES[spec["tool"]]:
        importlib.import_module(module)
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = pd.read_parquet(spec["reference"])
    cur = pd.read_parquet(spec["current"])
    load_s = time.perf_counter() - t0
    gc.collect()
    # Hand the Arrow pool's free pages from reading back to the system, so that what the
    # call allocates is not served from leftovers of the read (the same for both tools).
    pyarrow.default_memory_pool().release_unused()
    rss_loaded = _rss_kib("VmRSS")
    # Resetting the peak (VmHWM) lowers ru_maxrss too, so keep the loading peak first.
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset = _reset_peak_rss()
    run = _task_loopml if spec["tool"] == "loopml" else _task_evidently
    seconds, out = run(spec["task"], ref, cur)
    call_peak = _rss_kib("VmHWM") if reset else None
    rusage_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.update(
        {
            "seconds": seconds,
            "load_s": load_s,
            "import_s": import_s,
            "rows": len(cur),
            "columns": len(cur.columns),
            # The whole process (loading and the timed call), as ru_maxrss would report
            # it without the reset.
            "peak_rss_kib": max(load_peak, rusage_peak, call_peak or 0),
            "load_peak_rss_kib": load_peak,
            "rss_loaded_kib": rss_loaded,
            "call_peak_rss_kib": call_peak if reset else rusage_peak,
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "pyarrow": pyarrow.__version__,
        }
    )
    return emit_result(out)


# --------------------------------------------------------------------------------------------
# Parent half: runs in the project's interpreter and orchestrates everything.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One measured call: which tool and what it runs."""

    key: str
    tool: str  # "loopml" or "evidently"
    title: str
    drift: bool  # whether the task reports per-column drift verdicts


TASKS: tuple[Task, ...] = (
    Task("drift", "loopml", "Drift only: stats.dataset_drift(reference, current)", True),
    Task("validate", "loopml", "Validate: data.validate(current, reference=reference)", True),
    Task("profile", "loopml", "Profile: data.profile_table(current)", False),
    Task("profile+validate", "loopml", "Profile + validate", True),
    Task("drift-preset", "evidently", "Report([DataDriftPreset()]).run(current, reference)", True),
)
LOOPML_TASKS = [t for t in TASKS if t.tool == "loopml"]
EVIDENTLY_TASK = next(t for t in TASKS if t.tool == "evidently")


@dataclass
class Measurement:
    """All repeats (fresh processes) of one task."""

    task: Task
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every repeat succeeded."""
        return self.error is None and bool(self.results)

    @property
    def median(self) -> float:
        """Median seconds over the repeats."""
        return float(statistics.median(float(r["seconds"]) for r in self.results))

    @property
    def peak_rss_kib(self) -> int:
        """Largest ``ru_maxrss`` over the repeats."""
        return max(int(r["peak_rss_kib"]) for r in self.results)

    @property
    def last(self) -> dict[str, Any]:
        """The last repeat's full result (verdicts, versions...)."""
        return self.results[-1]


def run_worker(python: Path, spec: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """Run one task in a fresh subprocess and return its parsed result."""
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as out,
        tempfile.TemporaryFile("w+", encoding="utf-8") as err,
    ):
        proc = subprocess.Popen(cmd, env=clean_env(), cwd=cwd, stdout=out, stderr=err, text=True)
        with watchdog(proc, WORKER_TIMEOUT_S):
            proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result: dict[str, Any] = parse_result(stdout, stderr, proc.returncode)
    return result


def measure(task: Task, python: Path, ref: Path, cur: Path, repeat: int, cwd: Path) -> Measurement:
    """Run ``task`` ``repeat`` times, each in a fresh process."""
    m = Measurement(task)
    spec = {"tool": task.tool, "task": task.key, "reference": str(ref), "current": str(cur)}
    for rep in range(repeat):
        try:
            res = run_worker(python, spec, cwd)
        except BenchError as exc:
            m.error = str(exc)
            say(f"  {task.key} FAILED: {exc}")
            return m
        m.results.append(res)
        say(
            f"  {task.tool:<9} {task.key:<17} repeat {rep + 1}/{repeat}: "
            f"{fmt_s(res['seconds'])}, peak RSS {fmt_mib(res['peak_rss_kib'])} "
            f"(data loaded in {res['load_s']:.1f} s)"
        )
    return m


def probe(python: Path, code: str) -> str:
    """Run ``code`` with ``python`` and return its stripped stdout."""
    return run_code(python, code, env=clean_env(), timeout=300, failure=f"{python} failed")


# --------------------------------------------------------------------------------------------
# Comparison and formatting
# --------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """loopml's per-column verdicts against Evidently's."""

    columns: list[str]
    same_verdict: list[str]
    verdict_diff: list[str]
    method_diff: list[str]
    only_one_side: list[str]
    max_score_diff: float | None  # over columns where both used the same method


def compare(loopml: dict[str, Any], evidently: dict[str, Any]) -> Comparison:
    """Compare two ``{column: {method, score, drifted}}`` maps."""
    names = list(dict.fromkeys([*loopml, *evidently]))
    both = [n for n in names if n in loopml and n in evidently]
    same = [n for n in both if loopml[n]["drifted"] == evidently[n]["drifted"]]
    diffs = [
        abs(loopml[n]["score"] - evidently[n]["score"])
        for n in both
        if loopml[n]["method"] == evidently[n]["method"]
    ]
    return Comparison(
        columns=names,
        same_verdict=same,
        verdict_diff=[n for n in both if n not in same],
        method_diff=[n for n in both if loopml[n]["method"] != evidently[n]["method"]],
        only_one_side=[n for n in names if n not in both],
        max_score_diff=max(diffs) if diffs else None,
    )


def fmt_s(seconds: float) -> str:
    """Format a duration: ``850 ms``, ``1.23 s``, ``61.2 s``."""
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.0995 else f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def fmt_mib(kib: int | None) -> str:
    """Format KiB as MiB or GiB."""
    if kib is None:
        return "—"
    mib = kib / 1024
    return f"{mib:,.0f} MiB" if mib < 1024 else f"{mib / 1024:.2f} GiB"


def fmt_score(value: float) -> str:
    """Format a drift score."""
    return f"{value:.4f}" if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"


def main_table(
    loopml: dict[str, Measurement], evidently: Measurement | None, repeat: int, ev_repeat: int
) -> Table:
    """The headline table: one row per loopml task, Evidently's preset beside it."""
    head = [
        "Task",
        f"loopml {'median ' if repeat > 1 else ''}s",
        f"Evidently {'median ' if ev_repeat > 1 else ''}s",
        "Evidently / loopml",
        "loopml peak RSS",
        "Evidently peak RSS",
        "Same verdicts",
        "Same method",
    ]
    ev_ok = evidently is not None and evidently.ok
    ev_verdicts = evidently.last.get("verdicts", {}) if ev_ok and evidently else {}
    rows: list[list[str]] = []
    for m in loopml.values():
        task = m.task
        if not m.ok:
            rows.append([task.title, "failed", *["—"] * 6])
            continue
        comparable = task.drift and ev_ok and evidently is not None
        if comparable and evidently is not None:
            ratio = evidently.median / m.median
            ratio_s = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            cmp = compare(m.last["verdicts"], ev_verdicts)
            total = len(cmp.columns)
            verdicts = f"{len(cmp.same_verdict)}/{total}"
            methods = f"{total - len(cmp.method_diff) - len(cmp.only_one_side)}/{total}"
            ev_time, ev_rss = fmt_s(evidently.median), fmt_mib(evidently.peak_rss_kib)
        else:
            ratio_s, verdicts, methods = "—", "—", "—"
            ev_time = ev_rss = "—"
        rows.append(
            [
                task.title,
                fmt_s(m.median),
                ev_time,
                ratio_s,
                fmt_mib(m.peak_rss_kib),
                ev_rss,
                verdicts,
                methods,
            ]
        )
    return head, rows


def memory_table(measurements: list[Measurement]) -> Table:
    """Where the memory goes: tool imported and frames loaded, then during the timed call."""
    head = [
        "Process",
        "import time",
        "load time",
        "peak RSS while loading",
        "RSS before the call",
        "peak RSS during the call",
        "peak RSS of the process",
    ]
    rows = []
    for m in measurements:
        if not m.ok:
            continue
        last = m.last
        label = f"{'loopml' if m.task.tool == 'loopml' else 'Evidently'}: {m.task.key}"
        rows.append(
            [
                label,
                fmt_s(float(last["import_s"])),
                fmt_s(float(last["load_s"])),
                fmt_mib(last.get("load_peak_rss_kib")),
                fmt_mib(last.get("rss_loaded_kib")),
                fmt_mib(last.get("call_peak_rss_kib")),
                fmt_mib(m.peak_rss_kib),
            ]
        )
    return head, rows


def column_table(
    loopml: dict[str, Any], evidently: dict[str, Any], ev_types: dict[str, str]
) -> Table:
    """Per-column verdicts side by side, with the generated ground truth."""
    shifted = set(shifted_columns())
    described = described_columns()
    head = [
        "Column",
        "Generated as",
        "Shifted",
        "loopml method",
        "loopml score",
        "loopml drift",
        "Evidently type",
        "Evidently method",
        "Evidently score",
        "Evidently drift",
        "Agree",
    ]
    if not ev_types:
        head.remove("Evidently type")
    rows = []
    for name in column_order():
        lm, ev = loopml.get(name), evidently.get(name)
        row = [name, described.get(name, ""), "yes" if name in shifted else "no"]
        row += _verdict_cells(lm)
        if ev_types:
            row.append(ev_types.get(name, "?"))
        row += _verdict_cells(ev)
        agree = lm is not None and ev is not None and lm["drifted"] == ev["drifted"]
        row.append("yes" if agree else "NO")
        rows.append(row)
    return head, rows


def _verdict_cells(verdict: dict[str, Any] | None) -> list[str]:
    if verdict is None:
        return ["—", "—", "—"]
    return [verdict["method"], fmt_score(verdict["score"]), "DRIFT" if verdict["drifted"] else "no"]


def build_notes(
    args: argparse.Namespace, loopml: dict[str, Measurement], evidently: Measurement | None
) -> list[str]:
    """Explain the numbers and list every disagreement with its cause."""
    n_num, n_cat = len(NUMERIC), len(CATEGORICAL)
    kinds = {"normal": 0, "lognormal": 0, "int": 0}
    for col in NUMERIC:
        kinds["int" if col.is_int else col.dist] += 1
    mix = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    shifted = shifted_columns()
    out = [
        f"Data: one synthetic set (seed {args.seed}), reference and current frames of "
        f"{args.rows:,} rows x {n_num + n_cat} columns ({n_num} numeric: {mix}; "
        f"{n_cat} categorical strings with 3-20 categories), read from "
        f"Parquet into pandas DataFrames before the timer. Shifted in the current frame: "
        f"{', '.join(shifted)} ({len(shifted)} columns); the rest are drawn again from the "
        "same distribution.",
        f"Each loopml task ran {args.repeat} time(s) and Evidently's preset "
        f"{args.evidently_repeat} time(s), each time in a fresh process"
        + (
            " (the timing table shows the median)"
            if max(args.repeat, args.evidently_repeat) > 1
            else ""
        )
        + "; times are wall-clock seconds of the library call only (the tool is imported "
        "and both Parquet files are read before the timer starts); "
        "ratio = Evidently / loopml. Peak RSS is the process's high-water mark (ru_maxrss): "
        "the imported tool, both frames and the timed call (the largest over the repeats). "
        "The memory table splits it: the counter is reset after loading "
        "(/proc/self/clear_refs), so 'during the call' is the call's own peak, the loaded "
        "frames included.",
        "Every run: "
        + "; ".join(
            f"{'Evidently' if m.task.tool == 'evidently' else 'loopml'} {m.task.key} "
            + " / ".join(fmt_s(float(r["seconds"])) for r in m.results)
            for m in [*loopml.values(), *([evidently] if evidently else [])]
            if m.ok
        )
        + ".",
        "Evidently's time is `Report([DataDriftPreset()]).run(current_data=..., "
        "reference_data=...)`: its column typing, one drift test per column, the drifted-"
        "column count and the report widgets it builds on the way; reading the verdicts "
        "from `snapshot.dict()` afterwards is not timed"
        + (f" ({fmt_s(float(evidently.last['dict_s']))})." if evidently and evidently.ok else "."),
    ]
    if not (evidently and evidently.ok):
        return out
    ev = evidently.last
    ev_verdicts = ev["verdicts"]
    derived = sum(1 for v in ev_verdicts.values() if v["drifted"])
    if ev.get("drifted_count") is not None and int(ev["drifted_count"]) != derived:
        out.append(
            f"Warning: Evidently's DriftedColumnsCount says {ev['drifted_count']:g} "
            f"drifted columns but its per-column scores give {derived}."
        )
    else:
        out.append(
            f"Evidently verdict per column: score vs threshold with its own rule "
            f"(distance >= threshold, p-value < threshold); the {derived} drifted "
            f"columns match its DriftedColumnsCount."
        )
    drift_task = loopml.get("drift")
    if drift_task and drift_task.ok:
        lm_verdicts = drift_task.last["verdicts"]
        for key in ("validate", "profile+validate"):
            other = loopml.get(key)
            if other and other.ok and other.last["verdicts"] != lm_verdicts:
                out.append(f"Warning: loopml's '{key}' verdicts differ from dataset_drift's.")
        cmp = compare(lm_verdicts, ev_verdicts)
        truth = set(shifted)
        for label, verdicts in (("loopml", lm_verdicts), ("Evidently", ev_verdicts)):
            flagged = {n for n, v in verdicts.items() if v["drifted"]}
            out.append(
                f"{label} flags {len(flagged)} column(s): {len(flagged & truth)} of the "
                f"{len(truth)} shifted ones, {len(flagged - truth)} false alarm(s)"
                + (f" ({', '.join(sorted(flagged - truth))})" if flagged - truth else "")
                + (f", missed: {', '.join(sorted(truth - flagged))}" if truth - flagged else "")
                + "."
            )
        out.append(
            f"Verdicts: {len(cmp.same_verdict)}/{len(cmp.columns)} columns agree"
            + (f"; disagree: {', '.join(cmp.verdict_diff)}" if cmp.verdict_diff else "")
            + (
                f"; tested by one tool only: {', '.join(cmp.only_one_side)}"
                if cmp.only_one_side
                else ""
            )
            + "."
        )
        if cmp.max_score_diff is not None:
            out.append(
                f"Where both used the same method the scores differ by at most "
                f"{cmp.max_score_diff:.2e}."
            )
        types = ev.get("column_types", {})
        distinct = ev.get("distinct_values", {})
        for name in cmp.method_diff:
            lm, evv = lm_verdicts[name], ev_verdicts[name]
            spec = next((c for c in NUMERIC if c.name == name), None)
            cause = ""
            if spec is not None and spec.is_int and types.get(name) == "cat":
                cause = (
                    f" Cause: `{name}` is an int64 column with {distinct.get(name, '?')} "
                    "distinct values. Evidently 0.7 types int columns with at most 10 "
                    "distinct values as categorical (`INTEGER_CARDINALITY_LIMIT = 10` in "
                    "`evidently.core.datasets.infer_column_type`) and so tests it with "
                    "Jensen-Shannon; loopml keeps int columns numeric and only tests "
                    "those with at most 5 distinct values as categorical (Evidently's own "
                    "`n_values <= 5` rule for numeric columns), so it uses Wasserstein."
                )
            out.append(
                f"Method differs for `{name}`: loopml {lm['method']} "
                f"({fmt_score(lm['score'])}, {'drift' if lm['drifted'] else 'no drift'}), "
                f"Evidently {evv['method']} ({fmt_score(evv['score'])}, "
                f"{'drift' if evv['drifted'] else 'no drift'}).{cause}"
            )
    for key in ("validate", "profile+validate"):
        m = loopml.get(key)
        if m and m.ok and m.last.get("summary"):
            anomalies = ", ".join(f"{k} x{v}" for k, v in sorted(m.last["anomalies"].items()))
            out.append(
                f"loopml `validate` result: {m.last['summary']} ({anomalies}); besides "
                "drift it checks schema, types, null rates, ranges and unseen "
                "categories, which DataDriftPreset does not."
            )
            break
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    d = " (default: %(default)s)"
    p = argparse.ArgumentParser(
        description="Time loopml's data profiling and validation against Evidently's "
        "DataDriftPreset on one shared synthetic data set."
    )
    p.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="rows in each of the reference and current frames" + d,
    )
    p.add_argument("--seed", type=int, default=SEED, help="seed of the data generator" + d)
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="fresh processes per loopml task; the table shows the median" + d,
    )
    p.add_argument(
        "--evidently-repeat",
        type=int,
        default=1,
        help="fresh processes for Evidently's preset (about 2-3 minutes each on 1,000,000 "
        "rows); the table shows the median" + d,
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        choices=[t.key for t in LOOPML_TASKS],
        default=[t.key for t in LOOPML_TASKS],
        metavar="TASK",
        help="loopml tasks to run, any of: "
        f"{', '.join(t.key for t in LOOPML_TASKS)} (default: all)",
    )
    p.add_argument("--skip-evidently", action="store_true", help="time loopml only (no comparison)")
    p.add_argument(
        "--loopml-python",
        type=Path,
        default=Path(sys.executable),
        help="interpreter with loopml installed (default: this one)",
    )
    p.add_argument(
        "--evidently-python",
        type=Path,
        default=DEFAULT_EVIDENTLY_PYTHON,
        help="interpreter with Evidently installed (default: "
        "benchmarks/.venv-evidently/bin/python, see setup_evidently.sh)",
    )
    add_output_options(p, keep=False, raw_json="every raw result")
    args = p.parse_args(argv)
    if args.rows < 2 or min(args.repeat, args.evidently_repeat) < 1:
        p.error("--rows must be at least 2, --repeat and --evidently-repeat at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the data, run every task and print (and optionally write) the results."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if len(raw) == 2 and raw[0] == "--worker":
        return worker_main(raw[1])
    args = parse_args(raw)
    started = time.perf_counter()
    loopml_py = Path(os.path.abspath(args.loopml_python))
    evidently_py = Path(os.path.abspath(args.evidently_python))
    if not args.skip_evidently and not evidently_py.exists():
        say(f"error: {evidently_py} does not exist (run: bash benchmarks/setup_evidently.sh)")
        return 2
    try:
        versions = {
            "loopml": probe(
                loopml_py, "from importlib import metadata; print(metadata.version('loopml'))"
            )
        }
        if not args.skip_evidently:
            versions["evidently"] = probe(
                evidently_py, "import evidently; print(evidently.__version__)"
            )
    except BenchError as exc:
        say(f"error: {exc}")
        return 2
    say("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    load_start = load_at_start()

    folder = args.work_dir.resolve() / f"data-{args.rows}-seed{args.seed}"
    say(f"data: {args.rows:,} rows x 20 columns per frame in {folder}")
    ref_path, cur_path, gen_s = generate(args.rows, args.seed, folder)
    say(f"  generated in {gen_s:.1f} s" if gen_s else "  reusing the Parquet files")

    loopml: dict[str, Measurement] = {}
    for task in LOOPML_TASKS:
        if task.key in args.tasks:
            loopml[task.key] = measure(task, loopml_py, ref_path, cur_path, args.repeat, folder)
    evidently = None
    if not args.skip_evidently:
        say("  evidently runs next; on 1,000,000 rows this takes a few minutes")
        evidently = measure(
            EVIDENTLY_TASK, evidently_py, ref_path, cur_path, args.evidently_repeat, folder
        )

    ev_ok = evidently is not None and evidently.ok
    tables: list[tuple[str, Table]] = [
        ("", main_table(loopml, evidently, args.repeat, args.evidently_repeat))
    ]
    measured = [*loopml.values(), *([evidently] if evidently else [])]
    tables.append(("Memory per process (last run of each task):", memory_table(measured)))
    reference_task = next((m for m in loopml.values() if m.ok and m.task.drift), None)
    if reference_task is not None:
        ev_last = evidently.last if ev_ok and evidently else {}
        tables.append(
            (
                f"Per-column verdicts (loopml: {reference_task.task.key}; "
                "Evidently: DataDriftPreset):",
                column_table(
                    reference_task.last["verdicts"],
                    ev_last.get("verdicts", {}),
                    ev_last.get("column_types", {}),
                ),
            )
        )
    note_lines = build_notes(args, loopml, evidently)
    print()
    print_tables_plain(tables)
    for line in note_lines:
        print(f"* {line}")
    failed = [m for m in measured if not m.ok]
    for m in failed:
        print(f"\n{m.task.tool} failed in '{m.task.key}':\n{m.error}")
    total = time.perf_counter() - started
    print(f"\nTotal benchmark time: {total:.0f} s")

    first = next((m.last for m in measured if m.ok), {})
    libs = {
        "pandas": first.get("pandas", "?"),
        "pyarrow": first.get("pyarrow", "?"),
        "Python": first.get("python", platform.python_version()),
    }
    if ev_ok and evidently is not None:
        ev_libs = (evidently.last.get("pandas"), evidently.last.get("pyarrow"))
        if ev_libs != (libs["pandas"], libs["pyarrow"]):
            libs["pandas"] += f" (Evidently's venv: {ev_libs[0]})"
            libs["pyarrow"] += f" (Evidently's venv: {ev_libs[1]})"
    info = {
        "versions": ", ".join(f"{k} {v}" for k, v in {**versions, **libs}.items()),
        "rows": f"{args.rows:,}",
        "load": load_span(load_start),
        "total": f"{total:.0f} s",
    }
    if args.json:
        write_raw_json(
            args.json,
            args,
            {
                "info": info,
                "results": [
                    {
                        "tool": m.task.tool,
                        "task": m.task.key,
                        "error": m.error,
                        "results": m.results,
                    }
                    for m in measured
                ],
            },
        )
    if args.write:
        if failed:
            say("not writing RESULTS.md: some measurements failed")
            return 1
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        facts = run_facts(
            info["versions"],
            info["load"],
            info["total"],
            ["python", "benchmarks/bench_data.py", *raw],
            extra=[f"- Rows: {info['rows']} per frame (reference and current), 20 columns"],
        )
        append_section(
            args.results, f"Data validation: loopml vs Evidently — {now}", facts, tables, note_lines
        )
        say(f"appended results to {args.results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
