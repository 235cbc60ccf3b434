"""Train a small classifier and track everything with loopml: tracking alone, in one script.

A logistic model (``SGDClassifier(loss="log_loss")``) learns the breast-cancer data set shipped
with scikit-learn, one ``partial_fit`` pass per epoch. The run records its params, the train
and validation metrics of every epoch, the test metrics, a learning curve (HTML, and PNG when
matplotlib is installed), the confusion matrix as a Parquet table and the model as a skops file.

``make demo`` runs the whole loop (``examples/demo.py``); this script shows tracking alone,
and runs against a tracking server too (``LOOPML_TRACKING_URI``). Run it, then look at what
it stored::

    python examples/demo_tracking.py --epochs 20
    loopml runs list
    loopml runs show <run id>
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import loopml as lm

EXPERIMENT = "demo"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training set")
    parser.add_argument("--alpha", type=float, default=1e-3, help="L2 regularisation strength")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per partial_fit call")
    parser.add_argument("--seed", type=int, default=0, help="random seed (split and shuffling)")
    parser.add_argument("--experiment", default=EXPERIMENT, help="experiment to log into")
    parser.add_argument("--run-name", default=None, help="run name (generated when omitted)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def evaluate(model: Any, features: Any, labels: Any, prefix: str) -> dict[str, float]:
    """Loss, accuracy and F1 of ``model`` on one split, keyed ``<prefix>_<metric>``."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    probabilities = model.predict_proba(features)
    predictions = model.classes_[probabilities.argmax(axis=1)]
    return {
        f"{prefix}_loss": float(log_loss(labels, probabilities, labels=model.classes_)),
        f"{prefix}_accuracy": float(accuracy_score(labels, predictions)),
        f"{prefix}_f1": float(f1_score(labels, predictions)),
    }


def learning_curves(history: list[dict[str, float]]) -> list[tuple[str, Any]]:
    """The learning curve as a plotly figure, plus a matplotlib one when it is installed."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    epochs = [row["epoch"] for row in history]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("log loss", "accuracy"))
    for column, metric in ((1, "loss"), (2, "accuracy")):
        for split, dash in (("train", "solid"), ("val", "dash")):
            figure.add_trace(
                go.Scatter(
                    x=epochs,
                    y=[row[f"{split}_{metric}"] for row in history],
                    name=f"{split} {metric}",
                    line={"dash": dash},
                ),
                row=1,
                col=column,
            )
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(title="Learning curve", template="plotly_white", height=400)
    figures: list[tuple[str, Any]] = [("learning_curve.html", figure)]
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return figures
    # A bare Figure needs no pyplot and no GUI backend, so the demo runs headless.
    static = Figure(figsize=(9, 3.5), layout="constrained")
    axes = static.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(
                epochs,
                [row[f"{split}_{metric}"] for row in history],
                style,
                label=f"{split} {metric}",
            )
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    figures.append(("learning_curve.png", static))
    return figures


def main(argv: list[str] | None = None) -> str:
    """Train, evaluate and log the demo model; return the run id."""
    args = parse_args(argv)

    import numpy as np
    import pandas as pd
    import skops.io
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    console = Console(quiet=args.quiet)
    data = load_breast_cancer()
    x_rest, x_test, y_rest, y_test = train_test_split(
        data.data, data.target, test_size=0.2, stratify=data.target, random_state=args.seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.2, stratify=y_rest, random_state=args.seed
    )
    scaler = StandardScaler().fit(x_train)
    x_train_s, x_val_s, x_test_s = (scaler.transform(x) for x in (x_train, x_val, x_test))
    classifier = SGDClassifier(loss="log_loss", alpha=args.alpha, random_state=args.seed)
    classes = np.unique(data.target)
    rng = np.random.default_rng(args.seed)

    lm.set_experiment(args.experiment)
    with lm.start_run(run_name=args.run_name) as run:
        lm.log_params(
            {
                "dataset": "sklearn.datasets.load_breast_cancer",
                "model": "SGDClassifier",
                "loss": "log_loss",
                "alpha": args.alpha,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "seed": args.seed,
                "scaler": "StandardScaler",
                "n_train": len(y_train),
                "n_val": len(y_val),
                "n_test": len(y_test),
                "n_features": x_train.shape[1],
            }
        )
        history: list[dict[str, float]] = []
        progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("val_loss {task.fields[val_loss]:.4f}"),
            console=console,
        )
        with progress:
            task = progress.add_task("epochs", total=args.epochs, val_loss=float("nan"))
            for epoch in range(1, args.epochs + 1):
                order = rng.permutation(len(y_train))
                for start in range(0, len(order), args.batch_size):
                    batch = order[start : start + args.batch_size]
                    classifier.partial_fit(x_train_s[batch], y_train[batch], classes=classes)
                metrics = {
                    **evaluate(classifier, x_train_s, y_train, "train"),
                    **evaluate(classifier, x_val_s, y_val, "val"),
                }
                lm.log_metrics(metrics, step=epoch)
                history.append({"epoch": epoch, **metrics})
                progress.update(task, advance=1, val_loss=metrics["val_loss"])

        test = evaluate(classifier, x_test_s, y_test, "test")
        now = int(time.time() * 1000)
        lm.log_batch(
            metrics=[
                lm.Metric(key=k, value=v, timestamp=now, step=args.epochs) for k, v in test.items()
            ],
            tags={"demo.dataset_rows": str(len(data.target))},
        )
        for file_name, figure in learning_curves(history):
            lm.log_figure(figure, file_name)

        predictions = classifier.predict(x_test_s)
        names = [str(n) for n in data.target_names]
        matrix = confusion_matrix(y_test, predictions, labels=classes)
        table = pd.DataFrame(matrix, columns=[f"predicted_{n}" for n in names])
        table.insert(0, "actual", names)
        lm.log_table(table, "confusion_matrix.parquet")

        model = make_pipeline(scaler, classifier)
        with tempfile.TemporaryDirectory(prefix="loopml-demo-") as folder:
            path = Path(folder) / "model.skops"
            skops.io.dump(model, path)
            lm.log_artifact(path, "model")

    settings = lm.load_settings()
    where = settings.tracking_uri or (
        settings.resolved_store_uri if not settings.store_uri else "LOOPML_STORE_URI"
    )
    console.print()
    console.print(f"[bold green]Run {run.run_id} finished[/] in experiment {args.experiment!r}")
    console.print(f"  test accuracy  {test['test_accuracy']:.4f}   test F1  {test['test_f1']:.4f}")
    console.print(f"  stored in      {where}", soft_wrap=True, markup=False)
    console.print("Next, try:")
    for command in (
        "loopml runs list",
        f"loopml runs show {run.run_id[:8]}",
        "loopml server   # then open http://127.0.0.1:5000/ (the API: /docs)",
    ):
        console.print(f"  {command}", markup=False)
    return run.run_id


if __name__ == "__main__":
    main()
