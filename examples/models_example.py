"""The model registry, end to end: train -> register -> evaluate -> gate -> alias.

Registers a churn dataset and trains a first model on it, which becomes the ``champion``.
Trains a better candidate, registers it as the ``challenger``, evaluates both on held-out
rows (overall and on slices), lets a validation gate compare them, and promotes the
candidate with the gate's verdict as the reason. Then loads ``churn-model@champion``, prints
the audit trail and the model card. Run it on a fresh store:

    LOOPML_HOME=$(mktemp -d) .venv/bin/python examples/models_example.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import loopml as lm
from loopml.training import EvaluationResult

MODEL = "churn-model"
TARGET = "churned"
SLICES = ["plan", "tenure<12"]


def churn_data(rows: int = 4_000, seed: int = 7) -> pd.DataFrame:
    """Customers: churn grows with support calls and charges, falls with tenure and plan."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows),
            "charges": rng.normal(70, 20, rows).round(2),
            "support_calls": rng.poisson(1.5, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]),
        }
    )
    plan_effect = frame["plan"].map({"basic": 0.8, "plus": 0.0, "pro": -0.8})
    logit = (
        -0.5
        + 0.9 * (frame["support_calls"] - 1.5)
        + 0.03 * (frame["charges"] - 70)
        - 0.04 * (frame["tenure"] - 36)
        + plan_effect
    )
    frame[TARGET] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def split(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first three quarters train, the last quarter is held out."""
    cut = len(data) * 3 // 4
    return data.iloc[:cut], data.iloc[cut:]


def train(run_name: str, model: Any, features: list[str]) -> str:
    """Fit ``model`` on churn@v1 in a run and log it; return its ``runs:/`` URI."""
    with lm.start_run(run_name=run_name):
        rows, _ = split(lm.datasets.get("churn@v1"))  # read in the run: lineage
        model.fit(rows[features], rows[TARGET])
        lm.log_params({"model": type(model).__name__, "features": ",".join(features)})
        lm.log_metric("train_f1", f1_score(rows[TARGET], model.predict(rows[features])))
        info = lm.log_model(model, "model", input_example=rows[features].head(5))
    return info.uri


def main() -> None:
    dataset = lm.datasets.register("churn", churn_data(), description="one row per customer")
    print(f"dataset {dataset.uri}: {dataset.num_rows} rows")
    _, test = split(lm.datasets.get(dataset.uri))

    # 1. A first model: register it, evaluate it, make it the champion.
    first = train("baseline", LogisticRegression(), ["tenure", "charges"])
    v1 = lm.registry.register(first, MODEL, description="logistic regression on 2 columns")
    print(f"registered {v1.uri}: flavor {v1.flavor}, data {list(v1.datasets)}")
    # Evaluating a model loaded from the registry stores the result with its version.
    lm.evaluate(lm.models.load(f"{MODEL}/1"), test, TARGET, slices=SLICES)
    lm.registry.set_alias(MODEL, "champion", v1.version, reason="first model")

    # 2. A candidate on every column: registered as the challenger.
    numeric = ["tenure", "charges", "support_calls"]
    prepare = ColumnTransformer(
        [
            ("scale", StandardScaler(), numeric),
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    pipeline = Pipeline([("prepare", prepare), ("classify", LogisticRegression(max_iter=500))])
    second = train("all-columns", pipeline, [*numeric, "plan"])
    v2 = lm.registry.register(second, MODEL, description="scaled + one-hot, 4 columns")
    lm.registry.set_alias(MODEL, "challenger", v2.version)
    print(f"registered {v2.uri}; aliases {lm.registry.get_service().get_model(MODEL).aliases}")

    # 3. Evaluate the challenger on the same rows, overall and on slices.
    champion = lm.registry.resolve(f"{MODEL}@champion")
    candidate = lm.evaluate(lm.models.load(f"{MODEL}@challenger"), test, TARGET, slices=SLICES)
    before = EvaluationResult.from_dict(champion.evaluation or {})
    for label, result in (("champion", before), ("challenger", candidate)):
        scores = ", ".join(f"{k}={result.metric(k):.3f}" for k in ("f1", "roc_auc"))
        print(f"{label:>10}: {scores}, f1 on tenure<12={result.metric('f1', 'tenure<12'):.3f}")

    # 4. The gate compares the challenger with the champion's stored evaluation, loads the
    #    stored version in a fresh process (infra check), and stores its decision.
    gate = lm.Gate(
        thresholds={"f1": 0.6, "roc_auc": 0.75},
        min_improvement={"f1": 0.02},
        slice_tolerance={"f1": 0.05},
        latency_budget_ms=200,
    )
    decision = gate.check(lm.registry.get_model_version(MODEL, v2.version))
    print(decision.summary())

    # 5. Promote on a pass: moving `champion` needs a reason; the audit trail keeps it.
    if decision.passed:
        reason = f"gate passed: f1 {before.metric('f1'):.3f} -> {candidate.metric('f1'):.3f}"
        previous = lm.registry.set_alias(MODEL, "champion", v2.version, reason=reason)
        lm.registry.delete_alias(MODEL, "challenger", reason="promoted to champion")
        print(f"champion: v{previous} -> v{v2.version}")

    model = lm.models.load(f"{MODEL}@champion")
    print(f"{MODEL}@champion: {model.flavor} model from {model.source}")
    print("predictions:", model.predict(test.head(5)).tolist())

    print("audit trail:")
    for entry in lm.registry.audit(MODEL):
        version = f"v{entry.version}" if entry.version else "--"
        change = f"{entry.from_value or '-'} -> {entry.to_value or '-'}"
        if len(change) > 20:
            change = change[:19] + "…"
        line = f"  {entry.user:4} {entry.action:23} {version}  {change:20}  {entry.reason}"
        print(line.rstrip())

    print(lm.registry.card(MODEL, v2.version), end="")


if __name__ == "__main__":
    main()
