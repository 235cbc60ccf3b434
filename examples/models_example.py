"""The model registry, end to end: train -> evaluate -> gate -> register -> alias.

Registers a churn dataset, trains a first model on it and makes it the ``champion``; trains
a better candidate, registers it as ``challenger``, evaluates both (overall and on slices),
lets a validation gate decide, and promotes the candidate to ``champion`` with the gate's
verdict as the reason. Then loads ``churn-model@champion``, prints the audit trail and the
model card. Run it on a fresh store:

    LOOPML_HOME=$(mktemp -d) .venv/bin/python examples/models_example.py
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import loopml as lm
from loopml.training import EvaluationResult, Gate, evaluate, infra_check_in_subprocess

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


def train(name: str, model: object, features: list[str], data: pd.DataFrame) -> str:
    """Fit ``model`` in a run named ``name``, log it with an input example; return its URI."""
    train_rows = data.iloc[: len(data) * 3 // 4]
    with lm.start_run(run_name=name):
        lm.log_params({"model": type(model).__name__, "features": ",".join(features)})
        model.fit(train_rows[features], train_rows[TARGET])  # type: ignore[attr-defined]
        info = lm.log_model(model, "model", input_example=train_rows[features].head(5))
    return info.uri


def infra_check(spec: str) -> object:
    """Load the stored version in a fresh interpreter and predict on its input example."""
    code = "\n".join(
        [
            "import json, time",
            "import loopml as lm",
            f"model = lm.models.load({spec!r})",
            "start = time.perf_counter()",
            "predicted = model.predict(model.input_example)",
            "latency = (time.perf_counter() - start) * 1000",
            "ok = len(predicted) == len(model.input_example)",
            "print(json.dumps({'loaded': True, 'predict_ok': ok, 'latency_ms': latency}))",
        ]
    )
    return infra_check_in_subprocess(code, timeout_s=120)


def evaluate_version(spec: str, test: pd.DataFrame) -> EvaluationResult:
    """Evaluate a registered version on the test rows and store the result with it."""
    version = lm.registry.resolve(spec)
    result = evaluate(lm.models.load(spec), test, TARGET, slices=SLICES, log=False)
    lm.registry.get_service().record(MODEL, version.version, "evaluation", result.to_dict())
    return result


def main() -> None:
    dataset = lm.datasets.register("churn", churn_data(), description="customers, one row each")
    print(f"dataset {dataset.uri}: {dataset.num_rows} rows")
    data = lm.datasets.get(dataset.uri)  # read through loopml: lineage to the model
    test = data.iloc[len(data) * 3 // 4 :]

    # 1. A first model becomes the champion.
    first = train("baseline", LogisticRegression(), ["tenure", "charges"], data)
    v1 = lm.registry.register(first, MODEL, description="logistic regression, 2 features")
    print(f"registered {v1.uri} (flavor {v1.flavor}, trained on {', '.join(v1.datasets)})")
    lm.registry.set_alias(MODEL, "champion", v1.version, reason="first model")

    # 2. A candidate with every feature is registered as the challenger.
    numeric = ["tenure", "charges", "support_calls"]
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), numeric),
                        ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=500)),
        ]
    )
    second = train("all-features", pipeline, [*numeric, "plan"], data)
    v2 = lm.registry.register(second, MODEL, description="scaled + one-hot, 4 features")
    lm.registry.set_alias(MODEL, "challenger", v2.version)
    print(f"registered {v2.uri}; aliases: {lm.registry.get_service().get_model(MODEL).aliases}")

    # 3. Evaluate both on the held-out rows, overall and on slices.
    champion = evaluate_version(f"{MODEL}@champion", test)
    candidate = evaluate_version(f"{MODEL}@challenger", test)
    for label, result in (("champion", champion), ("challenger", candidate)):
        metrics = {k: round(result.metric(k), 3) for k in ("f1", "roc_auc")}
        print(f"{label:10} {metrics}  f1 on tenure<12: {result.metric('f1', 'tenure<12'):.3f}")

    # 4. The gate decides, and its verdict is stored with the candidate.
    gate = Gate(
        thresholds={"f1": 0.6, "roc_auc": 0.75},
        min_improvement={"f1": 0.02},
        slice_tolerance={"f1": 0.05},
    )
    decision = gate.check(candidate, champion, infra=infra_check(f"{MODEL}/{v2.version}"))
    lm.registry.get_service().record(MODEL, v2.version, "gate", decision.to_dict())
    print(decision.summary().replace(f"{decision.reasons[-1].message}", "infra check passed"))

    # 5. Promote on a pass: moving `champion` needs a reason, recorded in the audit trail.
    if decision.passed:
        reason = f"gate passed: f1 {champion.metric('f1'):.3f} -> {candidate.metric('f1'):.3f}"
        before = lm.registry.set_alias(MODEL, "champion", v2.version, reason=reason)
        lm.registry.delete_alias(MODEL, "challenger", reason="promoted")
        print(f"champion: v{before} -> v{v2.version}")

    model = lm.models.load(f"{MODEL}@champion")
    print(f"{MODEL}@champion = {model!r}")
    print("predictions:", model.predict(test.head(5)).tolist())

    print("audit trail:")
    for entry in lm.registry.audit(MODEL):
        change = f"{entry.from_value or '-'} -> {entry.to_value or '-'}"
        version = f"v{entry.version}" if entry.version else "  "
        print(f"  {entry.action:22} {version}  {change:14.14} {entry.reason}")

    card = lm.registry.card(MODEL, v2.version)
    print(card)
    overall = json.dumps({k: round(v, 3) for k, v in sorted(candidate.metrics.items())})
    print(f"stored evaluation of v{v2.version}: {overall}")


if __name__ == "__main__":
    main()
