"""A training pipeline with loopml: load -> split -> two preprocessing branches -> train -> eval.

Runs the pipeline three times to show caching: a first run executes every step, an identical
re-run takes every step from the cache, and a run with a new ``C`` re-trains and re-evaluates
only. Run it with ``.venv/bin/python examples/pipeline_example.py``, then look at the runs
with ``loopml pipeline runs`` and ``loopml pipeline show RUN_ID``.
"""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import loopml as lm
from loopml.pipelines import PipelineResult, StepOutput

TARGET = "target"


def _source_is_up() -> bool:
    """A stand-in for a remote source that is down on the first request ever made to it."""
    marker = lm.load_settings().home / "pipeline-example-source-called"
    if marker.exists():
        return True
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return False


@lm.step(retries=2, retry_backoff=0.5)
def load_data() -> pd.DataFrame:
    """Read the raw table. The source fails once (simulated): the retry recovers."""
    if not _source_is_up():
        raise ConnectionError("data source unavailable (simulated)")
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    print(f"loaded {len(frame)} rows, {frame.shape[1] - 1} features")
    return frame


@lm.step(outputs=("train", "test"))
def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split."""
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame[TARGET]
    )
    return train, test


@lm.step
def select_features(train: pd.DataFrame, k: int) -> list[str]:
    """Branch 1: the k features with the highest ANOVA F-score."""
    selector = SelectKBest(f_classif, k=k).fit(train.drop(columns=TARGET), train[TARGET])
    return [str(c) for c in selector.get_feature_names_out()]


@lm.step
def fit_scaler(train: pd.DataFrame) -> StandardScaler:
    """Branch 2: standardisation statistics of the training features."""
    return StandardScaler().fit(train.drop(columns=TARGET))


def _features(frame: pd.DataFrame, scaler: StandardScaler, columns: list[str]) -> pd.DataFrame:
    scaled = pd.DataFrame(
        scaler.transform(frame.drop(columns=TARGET)),
        columns=scaler.feature_names_in_,
        index=frame.index,
    )
    return scaled[columns]


@lm.step(timeout=600)
def train_model(
    train: pd.DataFrame, columns: list[str], scaler: StandardScaler, C: float, seed: int
) -> LogisticRegression:
    """Fit a logistic regression on the selected, scaled features."""
    model = LogisticRegression(C=C, max_iter=1_000, random_state=seed)
    return model.fit(_features(train, scaler, columns), train[TARGET])


@lm.step
def evaluate(
    model: LogisticRegression, scaler: StandardScaler, columns: list[str], test: pd.DataFrame
) -> dict[str, float]:
    """Score the test set; the metrics land in this step's tracked run."""
    features = _features(test, scaler, columns)
    scores = {
        "accuracy": float(accuracy_score(test[TARGET], model.predict(features))),
        "roc_auc": float(roc_auc_score(test[TARGET], model.predict_proba(features)[:, 1])),
    }
    lm.log_metrics(scores)
    return {k: round(v, 4) for k, v in scores.items()}


@lm.pipeline
def breast_cancer(
    test_size: float = 0.25, k_features: int = 10, C: float = 1.0, seed: int = 0
) -> StepOutput:
    """Train and evaluate a classifier on the breast cancer data set."""
    train, test = split(load_data(), test_size=test_size, seed=seed)
    columns = select_features(train, k=k_features)
    scaler = fit_scaler(train)
    model = train_model(train, columns, scaler, C=C, seed=seed)
    metrics: StepOutput = evaluate(model, scaler, columns, test)
    return metrics


def report(result: PipelineResult) -> None:
    """Print one line per step: status, attempts, and why it was not taken from the cache."""
    run = result.run
    print(f"run {run.id[:8]} {run.status.value} params={run.params}")
    for name, step in result.steps.items():
        notes = [f"{step.attempts} attempts"] if step.attempts > 1 else []
        if step.status.value != "CACHED":
            notes.append(step.cache_reason)
        print(f"  {name:<16} {step.status.value:<10} {', '.join(notes)}".rstrip())
    print(f"  -> {result.output()}")


def main() -> None:
    report(breast_cancer())  # every step runs (load_data needs its retry)
    report(breast_cancer())  # same code, data and parameters: all cached
    report(breast_cancer(C=0.1))  # a new C: only train_model and evaluate run


if __name__ == "__main__":
    main()
