"""Every model flavor survives lm.log_model and lm.models.load with the same predictions."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from model_classes_for_tests import LinearScore
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import loopml as lm
from loopml.errors import InvalidInput
from loopml.models.flavors import FLAVORS, choose_flavor
from loopml.models.flavors_extra import register_extra_flavors
from loopml.models.storage import MANIFEST


@pytest.fixture(autouse=True)
def extra_flavors() -> None:
    register_extra_flavors(FLAVORS)


@pytest.fixture
def numeric() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, 300),
            "income": rng.normal(50.0, 15.0, 300),
            "score": rng.normal(0.0, 1.0, 300),
        }
    )


def log_and_load(model: Any, example: pd.DataFrame, **kwargs: Any) -> lm.models.LoadedModel:
    with lm.start_run() as run:
        info = lm.log_model(model, "m", input_example=example.head(), **kwargs)
    assert info.uri == f"runs:/{run.run_id}/m"
    return lm.models.load(info.uri)


def test_sklearn_pipeline_with_column_transformer() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "plus", "pro"], 400),
            "region": rng.choice(["eu", "us"], 400),
            "tenure": rng.integers(0, 72, 400),
            "charges": rng.normal(70.0, 20.0, 400),
        }
    )
    target = ((frame.charges > 70) ^ (frame.plan == "pro")).astype(int)
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
                        ("num", StandardScaler(), ["tenure", "charges"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, target)
    loaded = log_and_load(pipeline, frame)
    assert loaded.flavor == "sklearn"
    np.testing.assert_array_equal(loaded.predict(frame), pipeline.predict(frame))
    np.testing.assert_allclose(loaded.predict_proba(frame), pipeline.predict_proba(frame))
    # records work too, and extra columns are dropped by the signature
    records = frame.head(3).assign(extra=1).to_dict(orient="records")
    np.testing.assert_array_equal(loaded.predict(records), pipeline.predict(frame.head(3)))


def test_python_model(numeric: pd.DataFrame) -> None:
    model = LinearScore({"age": 0.5, "income": -0.25}, offset=3.0)
    loaded = log_and_load(model, numeric)
    assert loaded.flavor == "python"
    assert isinstance(loaded.model, LinearScore)
    np.testing.assert_allclose(loaded.predict(numeric), model.predict(numeric))
    with pytest.raises(InvalidInput, match="no predict_proba"):
        loaded.predict_proba(numeric)


def test_xgboost_classifier_and_regressor(numeric: pd.DataFrame) -> None:
    xgboost = pytest.importorskip("xgboost")
    labels = (numeric.income + 10 * numeric.score > 50).astype(int)
    classifier = xgboost.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1).fit(numeric, labels)
    loaded = log_and_load(classifier, numeric)
    assert loaded.flavor == "xgboost"
    assert loaded.manifest["flavor_details"]["class"] == "xgboost.XGBClassifier"
    assert set(loaded.manifest["files"]) == {
        "model.json",
        "input_example.json",
        "background.parquet",
    }
    np.testing.assert_array_equal(loaded.predict(numeric), classifier.predict(numeric))
    np.testing.assert_allclose(
        loaded.predict_proba(numeric), classifier.predict_proba(numeric), rtol=1e-6
    )

    multiclass = xgboost.XGBClassifier(n_estimators=10, max_depth=2, n_jobs=1).fit(
        numeric, pd.cut(numeric.score, 3, labels=False)
    )
    loaded = log_and_load(multiclass, numeric)
    np.testing.assert_array_equal(loaded.predict(numeric), multiclass.predict(numeric))
    np.testing.assert_allclose(
        loaded.predict_proba(numeric), multiclass.predict_proba(numeric), rtol=1e-6
    )

    regressor = xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(
        numeric, numeric.income * 2 + numeric.score
    )
    loaded = log_and_load(regressor, numeric)
    assert loaded.manifest["flavor_details"]["class"] == "xgboost.XGBRegressor"
    np.testing.assert_allclose(loaded.predict(numeric), regressor.predict(numeric), rtol=1e-6)
    with pytest.raises(InvalidInput, match="no predict_proba"):
        loaded.predict_proba(numeric)


def test_xgboost_booster(numeric: pd.DataFrame) -> None:
    xgboost = pytest.importorskip("xgboost")
    train = xgboost.DMatrix(numeric, label=numeric.income - numeric.age)
    booster = xgboost.train({"max_depth": 2, "nthread": 1}, train, num_boost_round=10)
    flavor: Any = FLAVORS["xgboost"]
    expected = booster.predict(xgboost.DMatrix(numeric))
    np.testing.assert_array_equal(flavor.predict_example(booster, numeric), expected)
    # A Booster's own predict needs a DMatrix, so give the signature until storage predicts
    # through the flavor.
    signature = lm.models.infer_signature(numeric.head(), expected[:5])
    loaded = log_and_load(booster, numeric, signature=signature)
    assert loaded.manifest["flavor_details"]["class"] == "xgboost.Booster"
    np.testing.assert_allclose(loaded.predict(numeric), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(lambda f: np.where(f.score > 0, "churn", "stay"), id="binary-strings"),
        pytest.param(lambda f: pd.cut(f.income, 3, labels=False) * 10 + 5, id="multiclass-ints"),
    ],
)
def test_lightgbm_classifier(numeric: pd.DataFrame, labels: Any) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    target = labels(numeric)
    classifier = lightgbm.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1, n_jobs=1)
    classifier.fit(numeric, target)
    loaded = log_and_load(classifier, numeric)
    assert loaded.flavor == "lightgbm"
    details = loaded.manifest["flavor_details"]
    assert details["classes"] == classifier.classes_.tolist()
    assert set(loaded.manifest["files"]) == {
        "model.txt",
        "input_example.json",
        "background.parquet",
    }
    np.testing.assert_array_equal(loaded.predict(numeric), classifier.predict(numeric))
    np.testing.assert_allclose(
        loaded.predict_proba(numeric), classifier.predict_proba(numeric), rtol=1e-9
    )
    assert loaded.predict(numeric).dtype.kind == np.asarray(classifier.predict(numeric)).dtype.kind


def test_lightgbm_regressor_and_booster(numeric: pd.DataFrame) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    target = numeric.income * 3 - numeric.age
    regressor = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=7, verbose=-1, n_jobs=1)
    regressor.fit(numeric, target)
    loaded = log_and_load(regressor, numeric)
    assert loaded.manifest["flavor_details"]["kind"] == "regressor"
    np.testing.assert_allclose(loaded.predict(numeric), regressor.predict(numeric), rtol=1e-9)
    with pytest.raises(InvalidInput, match="no predict_proba"):
        loaded.predict_proba(numeric)

    booster = regressor.booster_
    loaded = log_and_load(booster, numeric)
    assert loaded.manifest["flavor_details"]["kind"] == "booster"
    np.testing.assert_allclose(loaded.predict(numeric), booster.predict(numeric), rtol=1e-9)


def test_lightgbm_early_stopping_keeps_best_iteration(numeric: pd.DataFrame) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    target = numeric.score > 0
    classifier = lightgbm.LGBMClassifier(n_estimators=200, verbose=-1, n_jobs=1)
    if "eval_X" in inspect.signature(classifier.fit).parameters:  # lightgbm >= 4.7
        validation: dict[str, Any] = {"eval_X": numeric[200:], "eval_y": target[200:]}
    else:
        validation = {"eval_set": [(numeric[200:], target[200:])]}
    classifier.fit(
        numeric[:200],
        target[:200],
        callbacks=[lightgbm.early_stopping(5, verbose=False)],
        **validation,
    )
    assert 0 < classifier.best_iteration_ < 200
    loaded = log_and_load(classifier, numeric)
    assert loaded.manifest["flavor_details"]["classes"] == [False, True]
    np.testing.assert_array_equal(loaded.predict(numeric), classifier.predict(numeric))
    np.testing.assert_allclose(loaded.predict_proba(numeric), classifier.predict_proba(numeric))


def torch_predict(module: Any, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    import torch

    with torch.no_grad():
        return np.asarray(module(torch.tensor(frame.to_numpy(dtype=np.float32))).numpy())


def test_torch_scripted_mlp(numeric: pd.DataFrame) -> None:
    torch = pytest.importorskip("torch")
    from model_classes_for_tests import RegressionMLP

    torch.manual_seed(0)
    model = RegressionMLP(n_features=3, hidden=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    inputs = torch.tensor(numeric.to_numpy(dtype=np.float32))
    target = torch.tensor(numeric.income.to_numpy(dtype=np.float32)).unsqueeze(1)
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), target).backward()
        optimizer.step()
    assert model.training
    loaded = log_and_load(model, numeric)
    assert model.training, "logging must leave the module's mode as it was"
    assert loaded.flavor == "torch"
    details = loaded.manifest["flavor_details"]
    assert details == {
        "format": "torchscript",
        "file": "model.pt",
        "method": "script",
        "columns": ["age", "income", "score"],
    }
    model.eval()
    expected = torch_predict(model, numeric)
    model.train()
    flavor: Any = FLAVORS["torch"]
    np.testing.assert_array_equal(flavor.predict_example(model, numeric), expected)
    assert model.training
    np.testing.assert_allclose(loaded.predict(numeric), expected, rtol=1e-6)
    # columns are fed to the module in signature order, whatever the caller's order
    np.testing.assert_allclose(loaded.predict(numeric[["score", "age", "income"]]), expected)


def test_torch_traced_when_scripting_fails(numeric: pd.DataFrame) -> None:
    torch = pytest.importorskip("torch")
    from model_classes_for_tests import VariadicMLP

    torch.manual_seed(1)
    model = VariadicMLP()
    loaded = log_and_load(model, numeric)
    assert loaded.manifest["flavor_details"]["method"] == "trace"
    np.testing.assert_allclose(
        loaded.predict(numeric), torch_predict(model, numeric), rtol=1e-6, atol=1e-7
    )


def test_torch_state_dict_when_the_trace_is_doubtful(numeric: pd.DataFrame) -> None:
    torch = pytest.importorskip("torch")
    from model_classes_for_tests import BranchingMLP

    torch.manual_seed(2)
    model = BranchingMLP()
    loaded = log_and_load(model, numeric)
    details = loaded.manifest["flavor_details"]
    assert details["format"] == "state_dict"
    assert details["class"] == "model_classes_for_tests:BranchingMLP"
    assert set(loaded.manifest["files"]) == {
        "state_dict.pt",
        "input_example.json",
        "background.parquet",
    }
    assert isinstance(loaded.model.module, BranchingMLP)
    for rows in (numeric, -numeric):  # both branches: a trace would have frozen one
        np.testing.assert_allclose(loaded.predict(rows), torch_predict(model, rows), rtol=1e-6)


def test_torch_unstorable_module_is_refused(numeric: pd.DataFrame) -> None:
    torch = pytest.importorskip("torch")

    class Local(torch.nn.Module):  # type: ignore[misc]
        def forward(self, *inputs: Any) -> Any:
            return inputs[0]

    with lm.start_run(), pytest.raises(InvalidInput, match="without pickle") as caught:
        lm.log_model(Local(), "m")
    assert "torch.jit.script failed" in caught.value.message
    assert "no input_example" in caught.value.message


def test_non_numeric_input_to_torch_names_the_column(numeric: pd.DataFrame) -> None:
    torch = pytest.importorskip("torch")
    from model_classes_for_tests import RegressionMLP

    torch.manual_seed(0)
    with lm.start_run() as run:
        lm.log_model(RegressionMLP(), "m")  # no signature to check inputs first
    loaded = lm.models.load(f"runs:/{run.run_id}/m")
    with pytest.raises(InvalidInput, match="'income'") as caught:
        loaded.predict(numeric.assign(income="high"))
    assert caught.value.field == "income"


def test_extra_flavors_come_before_sklearn_and_register_once() -> None:
    register_extra_flavors(FLAVORS)
    names = list(FLAVORS)
    assert names.index("xgboost") < names.index("sklearn")
    assert names.index("lightgbm") < names.index("sklearn")
    assert names.count("torch") == 1 and {"python", "pickle"} <= set(names)
    registry: dict[str, Any] = {}
    register_extra_flavors(registry)
    assert list(registry) == ["xgboost", "lightgbm", "torch"]


def test_choose_flavor_prefers_native_formats() -> None:
    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    assert choose_flavor(xgboost.XGBRegressor(), None).name == "xgboost"
    assert choose_flavor(xgboost.XGBRFClassifier(), None).name == "xgboost"
    assert choose_flavor(lightgbm.LGBMClassifier(), None).name == "lightgbm"
    assert choose_flavor(LogisticRegression(), None).name == "sklearn"


def test_unfitted_estimators_are_refused() -> None:
    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    with lm.start_run():
        for model in (xgboost.XGBClassifier(), lightgbm.LGBMRegressor()):
            with pytest.raises(InvalidInput, match="not fitted"):
                lm.log_model(model, "m")


def test_matching_never_imports_a_library() -> None:
    code = (
        "import sys\n"
        "from loopml.models.flavors_extra import extra_flavors\n"
        "assert not any(f.matches(object()) for f in extra_flavors())\n"
        "print(sorted(m for m in ('xgboost', 'lightgbm', 'torch') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout.replace("'", '"')) == []


def test_manifest_lists_every_file_with_its_sha256(numeric: pd.DataFrame) -> None:
    model = LinearScore({"age": 1.0}, offset=0.0)
    with lm.start_run() as run:
        lm.log_model(model, "m", input_example=numeric.head())
    service = lm.get_service()
    entries = {e.path: e.sha256 for e in service.list_artifacts(run.run_id, "m")}
    manifest = json.loads(b"".join(service.read_artifact(run.run_id, f"m/{MANIFEST}")))
    assert {f"m/{name}": sha for name, sha in manifest["files"].items()} == {
        path: sha for path, sha in entries.items() if not path.endswith(MANIFEST)
    }
