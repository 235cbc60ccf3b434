"""A store with something on every page of the web UI, written through the public SDK only.

``seed()`` fills the current ``LOOPML_HOME``: an experiment of tracked runs (one of them named,
tagged and described with script-injection payloads, one with image, JSON, CSV and text
artifacts), a dataset with two versions and a stored validation, a pipeline run twice (the
second run takes its first steps from the cache), a registered model with two versions, its
aliases, an evaluation and a gate decision, a deployment, a prediction log with labels and
three monitor runs, and a continuous-training policy with a retrain and a skipped trigger.

The policy's pipeline is :func:`train_rides` here, so the module must be importable as
``ui_seed`` (it is, from the tests in this folder).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

import loopml as lm
from loopml.pipelines import StepOutput

#: Run names, tags and descriptions the UI must show as text, never run.
XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=1</script>"

EXPERIMENT = "ui-experiments"
OTHER_EXPERIMENT = "ui-models"
RUN_COUNT = 30
STEPS = 5
DATASET = "churn-train"
MODEL = "churn"
DEPLOYMENT = "churn-api"
LOOP_POLICY = "rides"
LOOP_DATASET = "rides"
PIPELINE = "ui_totals"
FEATURES = ["tenure", "charges"]
#: The artifact run's files, by the kind of preview each should get.
ARTIFACTS = {
    "image": "curve.png",
    "json": "config.json",
    "csv": "history.csv",
    "text": "notes.txt",
}

DEPLOYMENT_YAML = f"""\
name: {DEPLOYMENT}
model: {MODEL}
variants:
  - {{name: blue, model: champion, weight: 90}}
  - {{name: green, model: 2, weight: 10}}
"""


@dataclass(frozen=True)
class SeededStore:
    """What :func:`seed` wrote, for the tests to look up."""

    experiment_id: str
    #: Every run of the experiment, the payload run and the artifact run included.
    run_ids: tuple[str, ...]
    xss_run_id: str
    artifact_run_id: str
    model_run_id: str
    pipeline_run_ids: tuple[str, ...]
    seconds: float

    experiment: str = EXPERIMENT
    dataset: str = DATASET
    model: str = MODEL
    deployment: str = DEPLOYMENT
    loop_policy: str = LOOP_POLICY
    pipeline: str = PIPELINE
    #: The pipeline step the second run took from the cache.
    cached_step: str = "load_values"
    #: The step the second run executed again (its parameter changed).
    rerun_step: str = "total"


# -- the pipeline (steps must live at module level: their code is part of the cache key) ----
@lm.step
def load_values(rows: int) -> list[int]:
    """The raw values."""
    return list(range(rows))


@lm.step
def square_values(values: list[int]) -> list[int]:
    """Square each value."""
    return [v * v for v in values]


@lm.step
def total(values: list[int], scale: float) -> float:
    """The scaled sum."""
    return float(sum(values)) * scale


@lm.pipeline
def ui_totals(rows: int = 20, scale: float = 1.0) -> StepOutput:
    """load → square → total: a second run with a new ``scale`` reuses the first two steps."""
    result: StepOutput = total(square_values(load_values(rows)), scale=scale)
    return result


# -- the continuous-training policy's pipeline ------------------------------------------------
def rides_frame(rows: int, *, start: str, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Hourly rows whose label depends on two features; ``shift`` moves the boundary."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=rows, freq="h", tz="UTC"),
            "x1": x1,
            "x2": x2,
            "label": ((x1 + x2) > shift).astype(int),
        }
    )


def train_rides(dataset: str) -> str:
    """Fit a logistic regression on the window the loop hands over; return the model URI."""
    from sklearn.linear_model import LogisticRegression

    frame = lm.datasets.get(dataset)
    features = frame[["x1", "x2"]]
    with lm.start_run(run_name="rides-retrain"):
        model = LogisticRegression().fit(features, frame["label"])
        uri: str = lm.log_model(model, "model", input_example=features.head()).uri
    return uri


# -- the parts of the store ------------------------------------------------------------------
def _tracked_runs() -> tuple[str, list[str], str]:
    experiment_id = lm.set_experiment(EXPERIMENT)
    run_ids = []
    optimizers = ("sgd", "adam", "rmsprop")
    for i in range(RUN_COUNT):
        lr = round(0.001 * (i + 1), 4)
        with lm.start_run(
            run_name=f"trial-{i:02d}",
            tags={"team": "growth" if i % 2 else "core", "stage": "sweep"},
        ) as run:
            now = int(time.time() * 1000)
            metrics = []
            for step in range(STEPS):
                # acc grows with the trial and the step; loss falls with both.
                acc = 0.5 + 0.012 * i + 0.02 * step
                loss = 1.0 / (1 + i) + 0.1 * (STEPS - step)
                metrics.append(lm.Metric("acc", round(acc, 4), now + step, step))
                metrics.append(lm.Metric("loss", round(loss, 4), now + step, step))
            lm.log_batch(
                metrics=metrics,
                params={"lr": lr, "depth": 2 + i % 5, "optimizer": optimizers[i % 3]},
                tags={"description": f"trial {i} of the learning-rate sweep"},
            )
        run_ids.append(run.run_id)
    with lm.start_run(run_name=XSS_IMG, tags={"note": XSS_SCRIPT}) as run:
        lm.log_batch(
            metrics=[lm.Metric("acc", 0.42, int(time.time() * 1000), 0)],
            params={"lr": XSS_SCRIPT, "optimizer": XSS_IMG},
            tags={"description": XSS_SCRIPT},
        )
    run_ids.append(run.run_id)
    return experiment_id, run_ids, run.run_id


def _artifact_run() -> str:
    from matplotlib.figure import Figure

    with lm.start_run(run_name="artifacts") as run:
        lm.log_metric("acc", 0.9, step=0)
        figure = Figure(figsize=(3, 2))
        figure.subplots().plot([0, 1, 2, 3], [0.5, 0.7, 0.8, 0.85])
        lm.log_figure(figure, ARTIFACTS["image"])
        lm.log_dict({"lr": 0.01, "layers": [16, 8], "note": XSS_SCRIPT}, ARTIFACTS["json"])
        lm.log_text("epoch,acc\n1,0.5\n2,0.7\n3,0.8\n", ARTIFACTS["csv"])
        lm.log_text(f"training finished\n{XSS_IMG}\n", ARTIFACTS["text"])
    return run.run_id


def _churn(rows: int, *, seed: int, charges_mean: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows).astype(float),
            "charges": rng.normal(charges_mean, 20, rows),
        }
    )
    frame["churned"] = (frame["charges"] > 75).astype(int)
    return frame


def _datasets_and_model() -> str:
    from sklearn.linear_model import LogisticRegression

    lm.datasets.register(DATASET, _churn(600, seed=0, charges_mean=70))
    lm.datasets.register(DATASET, _churn(400, seed=1, charges_mean=90))
    lm.datasets.validate(f"{DATASET}@v2", reference=f"{DATASET}@v1")

    uris = []
    for c in (1.0, 0.1):
        with lm.start_run(run_name=f"churn-model-C{c}") as run:
            data = lm.datasets.get(DATASET, 1)
            features = data[FEATURES]
            lm.log_param("C", c)
            for step, loss in enumerate((0.9, 0.6, 0.45)):
                lm.log_metric("train_loss", loss * c, step=step)
            model = LogisticRegression(C=c).fit(features, data["churned"])
            uris.append(lm.log_model(model, "model", input_example=features.head()).uri)
            if c == 1.0:
                model_run_id = run.run_id
    lm.registry.register(uris[0], MODEL, description="the first churn model")
    lm.registry.register(uris[1], MODEL, description=XSS_IMG)
    lm.registry.set_alias(MODEL, "champion", 1, reason="first model")
    lm.registry.set_alias(MODEL, "challenger", 2, reason=XSS_SCRIPT)
    registry = lm.registry.get_service()
    for version, f1 in ((1, 0.91), (2, 0.93)):
        registry.record(
            MODEL,
            version,
            "evaluation",
            {
                "task": "classification",
                "target": "churned",
                "metrics": {"f1": f1, "accuracy": f1 + 0.02},
            },
        )
    gate = lm.Gate(thresholds={"f1": 0.8}, beat_baseline=False, require_infra_check=False)
    gate.check(lm.registry.get_model_version(MODEL, 2))
    return model_run_id


def _deployment(folder: Path) -> None:
    from typer.testing import CliRunner

    from loopml.cli.main import app

    path = folder / "deployment.yaml"
    path.write_text(DEPLOYMENT_YAML, encoding="utf-8")
    result = CliRunner().invoke(app, ["deploy", "apply", str(path)])
    assert result.exit_code == 0, result.output


def _monitoring() -> None:
    from loopml.monitoring import LastN, Monitor, PredictionLogger, PredictionRecord, Rule

    rng = np.random.default_rng(7)
    start = datetime.now(UTC) - timedelta(hours=3)
    lm.monitoring.save(
        Monitor(MODEL, window=LastN(400), rules=[Rule("drift_share", ">", 0.3)], target="churned")
    )
    # Three batches of traffic, each followed by a monitor run: the charges drift upwards,
    # so the history shows the drift score rising.
    for batch, charges_mean in enumerate((70.0, 80.0, 95.0)):
        traffic = _churn(200, seed=10 + batch, charges_mean=charges_mean)[FEATURES]
        with PredictionLogger() as log:
            for i in range(0, len(traffic), 10):
                rows = traffic.iloc[i : i + 10].reset_index(drop=True)
                variant = "green" if i % 50 == 0 else "blue"
                log.log(
                    PredictionRecord(
                        request_id=f"req-{batch}-{i}",
                        model=MODEL,
                        version=2 if variant == "green" else 1,
                        inputs=rows,
                        predictions=[int(v > 75) for v in rows["charges"]],
                        probabilities=[[0.3, 0.7]] * len(rows),
                        latency_ms=3.0 + float(rng.gamma(2.0, 2.0)),
                        variant=variant,
                        timestamp=start + timedelta(minutes=batch * 60 + i // 10),
                    )
                )
        lm.monitoring.log_labels(
            [
                {"request_id": f"req-{batch}-{i}", "row": 0, "label": int(i % 20 == 0)}
                for i in range(0, len(traffic), 10)
            ]
        )
        lm.monitoring.run(MODEL)


def _loop() -> None:
    lm.datasets.register(LOOP_DATASET, rides_frame(120, start="2011-01-01", seed=0))
    lm.registry.register(train_rides(LOOP_DATASET), LOOP_POLICY)
    lm.registry.set_alias(LOOP_POLICY, "champion", 1, reason="first model")
    lm.loop.apply(
        lm.loop.Policy(
            name=LOOP_POLICY,
            model=LOOP_POLICY,
            pipeline=train_rides,
            data=LOOP_DATASET,
            timestamp="ts",
            label="label",
            triggers=[lm.loop.Manual()],
            window=lm.loop.GrowingWindow(),
            gate=lm.Gate(min_improvement={"accuracy": -1.0}, require_infra_check=False),
            rollout=lm.loop.Direct(),
            cooldown="6h",
        )
    )
    lm.loop.trigger(LOOP_POLICY, reason="seeded retrain")
    lm.loop.Controller().run_once()


def seed() -> SeededStore:
    """Fill the store of the current ``LOOPML_HOME`` (which should be empty)."""
    started = time.perf_counter()
    experiment_id, run_ids, xss_run_id = _tracked_runs()
    artifact_run_id = _artifact_run()
    # Everything else (model training, pipeline steps, retrains) logs elsewhere, so the
    # experiment above holds exactly the runs listed here.
    lm.set_experiment(OTHER_EXPERIMENT)
    model_run_id = _datasets_and_model()
    first = ui_totals().raise_if_failed()
    second = ui_totals(scale=2.0).raise_if_failed()
    with tempfile.TemporaryDirectory(prefix="loopml-ui-seed-") as folder:
        _deployment(Path(folder))
    _monitoring()
    _loop()
    return SeededStore(
        experiment_id=experiment_id,
        run_ids=(*run_ids, artifact_run_id),
        xss_run_id=xss_run_id,
        artifact_run_id=artifact_run_id,
        model_run_id=model_run_id,
        pipeline_run_ids=(first.run.id, second.run.id),
        seconds=time.perf_counter() - started,
    )
