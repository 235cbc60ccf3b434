"""The Bikeshare data and the training pipeline of the continuous-training demo.

The data is the hourly bike-sharing record of Washington D.C. in 2011 (8,645 hours) that
ships inside the ``ISLP`` package, so nothing is downloaded at run time. Each row gets a
timestamp (``ts``, built from the day of the year and the hour) and a label: ``busy`` is 1
when at least :data:`BUSY_THRESHOLD` bikes were rented in that hour. A model that learned
busy hours in winter misjudges spring and summer, when the same hour of a working day is
far busier: the seasons are the drift.

:func:`train` is the pipeline a continuous-training policy runs (by path,
``examples/demo_bikes.py:train``): it reads a dataset version, tunes a regularised logistic
model briefly, logs it and returns its URI. ``demo.py`` and ``benchmarks/bench_loop.py``
share this module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: This file, for a policy's pipeline reference (``<path>:train``).
PIPELINE_FILE = Path(__file__).resolve()
#: A rented-bike count from which an hour counts as busy (about the year's 60th percentile).
BUSY_THRESHOLD = 200
TIMESTAMP = "ts"
LABEL = "busy"
#: What the model sees of an hour; everything a client knows before the hour is over.
FEATURES = ["hr", "workingday", "holiday", "weathersit", "temp", "hum", "windspeed"]
#: ISLP's weather names, in order of severity.
WEATHER = {"clear": 1, "cloudy/misty": 2, "light rain/snow": 3, "heavy rain/snow": 4}
#: The experiment every training run of the demo goes to.
EXPERIMENT = "demo"


def _read_islp_bikeshare() -> pd.DataFrame:
    """ISLP's Bikeshare table, through ``load_data`` or straight from the installed CSV."""
    import pandas as pd

    try:
        from ISLP import load_data
    except ImportError as exc:
        # ISLP's __init__ imports only pandas, numpy and scikit-learn today; should a release
        # need one of the dependencies `pip install --no-deps ISLP` leaves out, read the
        # CSV the package ships without importing the package.
        spec = importlib.util.find_spec("ISLP")
        locations = list(spec.submodule_search_locations or []) if spec else []
        for folder in locations:
            path = Path(folder) / "data" / "Bikeshare.csv"
            if path.is_file():
                return pd.read_csv(path)
        raise SystemExit(
            "the demo needs the ISLP package for its data: "
            f"pip install --no-deps ISLP ({type(exc).__name__}: {exc})"
        ) from None
    frame: pd.DataFrame = load_data("Bikeshare")
    return frame


def load_bikeshare() -> pd.DataFrame:
    """The 2011 hourly Bikeshare data with ``ts`` (UTC), integer codes and the ``busy`` label.

    Returns
    -------
    pandas.DataFrame
        One row per hour, oldest first: ``ts``, :data:`FEATURES`, ``weekday``, ``bikers``
        (the count behind the label) and ``busy``.
    """
    import pandas as pd

    raw = _read_islp_bikeshare()
    frame = pd.DataFrame(
        {
            TIMESTAMP: pd.Timestamp("2011-01-01", tz="UTC")
            + pd.to_timedelta(raw["day"].astype(int) - 1, unit="D")
            + pd.to_timedelta(raw["hr"].astype(int), unit="h"),
            "hr": raw["hr"].astype(int),
            "weekday": raw["weekday"].astype(int),
            "workingday": raw["workingday"].astype(int),
            "holiday": raw["holiday"].astype(int),
            "weathersit": raw["weathersit"].astype(str).map(WEATHER).astype(int),
            "temp": raw["temp"].astype(float),
            "hum": raw["hum"].astype(float),
            "windspeed": raw["windspeed"].astype(float),
            "bikers": raw["bikers"].astype(int),
        }
    )
    frame[LABEL] = (frame["bikers"] >= BUSY_THRESHOLD).astype(int)
    return frame.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def build_model(C: float = 1.0) -> Any:
    """A logistic model of busy hours: one weight per hour of a working or a free day.

    Only scikit-learn's own types are used, so the model is stored with skops and loads
    without trusting any extra type.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

    def one_hot() -> OneHotEncoder:
        return OneHotEncoder(handle_unknown="ignore", sparse_output=False)

    # hour x working day: rush hours matter on working days, afternoons on free days.
    hour_of_day = make_pipeline(
        one_hot(), PolynomialFeatures(2, interaction_only=True, include_bias=False)
    )
    columns = ColumnTransformer(
        [
            ("hour", hour_of_day, ["hr", "workingday"]),
            ("weather", one_hot(), ["weathersit"]),
            ("numeric", StandardScaler(), ["temp", "hum", "windspeed", "holiday"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression(C=C, max_iter=5000))


def accuracy(model: Any, frame: pd.DataFrame) -> float:
    """Share of ``frame``'s hours whose ``busy`` label ``model`` gets right."""
    if frame.empty:
        return float("nan")
    predicted = model.predict(frame[FEATURES])
    return float((predicted == frame[LABEL].to_numpy()).mean())


def train(
    dataset: str, trials: int = 4, seed: int = 0, experiment: str = EXPERIMENT
) -> dict[str, Any]:
    """Train, tune and log a busy-hour model on a dataset version: the policy's pipeline.

    The newest fifth of the rows (by ``ts``) scores ``trials`` values of the regularisation
    ``C`` (Optuna, each trial a nested run); the best is refit on every row and logged.

    Parameters
    ----------
    dataset : str
        The training data, ``name@vN`` (the loop passes its window).
    trials : int
        Tuning trials.
    seed : int
        Seed of the tuner.
    experiment : str
        Experiment of the training run.

    Returns
    -------
    dict
        ``model_uri`` (``runs:/<id>/model``), the validation accuracy and the chosen ``C``.
    """
    import loopml as lm

    name, _, version = dataset.partition("@")
    lm.set_experiment(experiment)
    with lm.start_run(run_name=f"train on {dataset}", tags={"demo.dataset": dataset}):
        frame = lm.datasets.get(name, version or None)
        frame = frame.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
        cut = max(1, int(len(frame) * 0.8))
        fit_part, validation = frame.iloc[:cut], frame.iloc[cut:]

        def objective(params: dict[str, Any]) -> dict[str, float]:
            model = build_model(params["C"]).fit(fit_part[FEATURES], fit_part[LABEL])
            return {"val_accuracy": accuracy(model, validation)}

        tuned = lm.tune(
            objective,
            {"C": ("float", 0.05, 20.0, {"log": True})},
            n_trials=trials,
            metric="val_accuracy",
            seed=seed,
        )
        best_c = float(tuned.best_params["C"])
        model = build_model(best_c).fit(frame[FEATURES], frame[LABEL])
        lm.log_params(
            {"C": best_c, "rows": len(frame), "busy_threshold": BUSY_THRESHOLD, "trials": trials}
        )
        lm.log_metric("val_accuracy", float(tuned.best_value))
        info = lm.log_model(model, "model", input_example=frame[FEATURES].head(5))
    return {"model_uri": info.uri, "val_accuracy": float(tuned.best_value), "C": best_c}
