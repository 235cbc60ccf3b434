"""Versioned datasets and data validation, end to end.

Registers a reference month of churn data, a clean new month and a skewed one; validates
each new month against the reference; queries them with SQL; writes a profile report.
Run it with ``.venv/bin/python examples/data_quality.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import loopml as lm


def month(seed: int, rows: int, shift: float = 0.0, new_plan: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows),
            "charges": rng.normal(70 + shift, 20, rows).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]),
            "churned": rng.random(rows) < 0.2,
        }
    )
    if new_plan:
        frame.loc[: rows // 10, "plan"] = "enterprise"
    return frame


def main() -> None:
    reference = lm.datasets.register("churn", month(1, 5_000), description="monthly churn")
    print(f"registered {reference.uri} digest={reference.digest[:12]} rows={reference.num_rows}")
    again = lm.datasets.register("churn", month(1, 5_000))
    print(f"same content again -> {again.uri}")

    schema = lm.data.infer_schema(lm.datasets.get("churn@v1"))
    schema.column("tenure").max = 120  # widen a range by hand
    lm.datasets.set_schema("churn", schema)

    clean = lm.datasets.register("churn", month(2, 2_000))
    result = lm.datasets.validate(clean.uri, reference="churn@v1")
    print(f"{clean.uri}: {result.summary()}")

    skewed = lm.datasets.register("churn", month(3, 2_000, shift=25, new_plan=True))
    result = lm.datasets.validate(skewed.uri, reference="churn@v1")
    print(f"{skewed.uri}: {result.summary()}")
    for anomaly in result.anomalies:
        print(f"  {anomaly.severity:7} {anomaly.kind.value:16} {anomaly.column}: {anomaly.message}")

    print(
        lm.datasets.sql(
            'select plan, round(avg(charges), 1) as avg_charges from "churn@v3" '
            "group by plan order by plan"
        )
    )


if __name__ == "__main__":
    main()
