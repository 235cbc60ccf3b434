"""Registering a file streams it: Arrow memory stays far below the size of the data."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

BATCHES = 48
ROWS = 65_536


@pytest.mark.slow
def test_register_streams_large_files(tmp_path: Path, isolated_home: Path) -> None:
    # Hashing and writing hold one batch at a time. (Profiling also keeps each column's
    # distinct values, capped per column, for exact distinct counts and top values.)
    profile = False
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(0)
    schema = pa.schema([("a", pa.float64()), ("b", pa.float64()), ("s", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for _ in range(BATCHES):
            writer.write_table(
                pa.table(
                    {
                        "a": rng.random(ROWS),
                        "b": rng.random(ROWS),
                        "s": pa.array(rng.integers(0, 500, ROWS).astype(str)),
                    },
                    schema=schema,
                )
            )
    in_memory = pq.read_table(path).nbytes
    script = textwrap.dedent(f"""
        import pyarrow as pa
        import loopml.datasets as ds
        version = ds.register("big", {str(path)!r}, profile={profile})
        print(version.num_rows, pa.default_memory_pool().max_memory())
    """)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "LOOPML_HOME": str(isolated_home)},
        check=True,
        timeout=300,
    )
    rows, peak = (int(x) for x in completed.stdout.split())
    assert rows == BATCHES * ROWS
    assert peak < in_memory / 4, f"peak Arrow memory {peak} for {in_memory} bytes of data"
