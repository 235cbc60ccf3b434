"""Loading refuses what it cannot trust: changed files, pickles, unknown types, bad inputs."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from model_classes_for_tests import ClipOutliers, LinearScore
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline

import loopml as lm
from loopml.errors import InvalidInput, PermissionDenied
from loopml.models.flavors import FLAVORS
from loopml.models.flavors_extra import register_extra_flavors
from loopml.models.storage import MANIFEST


@pytest.fixture(autouse=True)
def extra_flavors() -> None:
    register_extra_flavors(FLAVORS)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"tenure": rng.integers(0, 72, 120), "charges": rng.normal(70, 20, 120)})


def log(model: Any, example: pd.DataFrame | None = None, **kwargs: Any) -> str:
    with lm.start_run():
        info = lm.log_model(model, "m", input_example=example, **kwargs)
    return info.uri


def blob_path(home: Path, uri: str, name: str) -> Path:
    """Where the content-addressed blob of one of the model's files lives."""
    run_id = uri.split("/")[1]
    entries = {e.path: e.sha256 for e in lm.get_service().list_artifacts(run_id, "m")}
    sha = entries[f"m/{name}"]
    path = home / "artifacts" / "blobs" / sha[:2] / sha[2:]
    assert path.is_file()
    return path


def overwrite(path: Path, data: bytes) -> None:
    os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    path.write_bytes(data)


def sklearn_model(frame: pd.DataFrame) -> Any:
    return LinearRegression().fit(frame, frame.charges * 2)


def xgboost_model(frame: pd.DataFrame) -> Any:
    xgboost = pytest.importorskip("xgboost")
    return xgboost.XGBRegressor(n_estimators=3, n_jobs=1).fit(frame, frame.charges)


def lightgbm_model(frame: pd.DataFrame) -> Any:
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMRegressor(n_estimators=3, verbose=-1, n_jobs=1).fit(frame, frame.charges)


def torch_model(frame: pd.DataFrame) -> Any:
    pytest.importorskip("torch")
    from model_classes_for_tests import RegressionMLP

    return RegressionMLP(n_features=2)


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (sklearn_model, "model.skops"),
        (lambda f: LinearScore({"tenure": 1.0}, 0.0), "python_model.json"),
        (xgboost_model, "model.json"),
        (lightgbm_model, "model.txt"),
        (torch_model, "model.pt"),
        (sklearn_model, "input_example.json"),
    ],
)
def test_tampered_file_is_refused(
    isolated_home: Path, frame: pd.DataFrame, build: Any, name: str
) -> None:
    uri = log(build(frame), frame.head())
    lm.models.load(uri)  # intact: loads
    path = blob_path(isolated_home, uri, name)
    original = path.read_bytes()
    overwrite(path, original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(InvalidInput, match=rf"model file {name} .* changed since it was logged"):
        lm.models.load(uri)


def test_pickle_needs_trusted(frame: pd.DataFrame) -> None:
    model = LinearScore({"charges": 2.0}, 1.0)
    uri = log(model, frame.head(), flavor="pickle")
    with pytest.raises(PermissionDenied, match="refusing to unpickle") as caught:
        lm.models.load(uri)
    assert caught.value.field == "trusted"
    loaded = lm.models.load(uri, trusted=True)
    assert loaded.flavor == "pickle"
    np.testing.assert_allclose(loaded.predict(frame), model.predict(frame))


def test_skops_custom_type_needs_trusted_types(frame: pd.DataFrame) -> None:
    target = (frame.charges > 70).astype(int)
    model = make_pipeline(ClipOutliers(limit=2.0), LogisticRegression()).fit(frame, target)
    uri = log(model, frame.head())
    with pytest.raises(PermissionDenied, match=r"model_classes_for_tests\.ClipOutliers"):
        lm.models.load(uri)
    with pytest.raises(PermissionDenied):
        lm.models.load(uri, trusted_types=["model_classes_for_tests.Other"])
    loaded = lm.models.load(uri, trusted_types=["model_classes_for_tests.ClipOutliers"])
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_unsupported_object_is_refused() -> None:
    with lm.start_run(), pytest.raises(InvalidInput, match="cannot log a builtins.object"):
        lm.log_model(object(), "m")


def test_input_example_with_a_list_column_names_it(frame: pd.DataFrame) -> None:
    example = frame.head(3).assign(tags=[["a"], ["b", "c"], []])
    with lm.start_run(), pytest.raises(InvalidInput, match="'tags'") as caught:
        lm.log_model(LinearScore({"tenure": 1.0}, 0.0), "m", input_example=example)
    assert caught.value.field == "tags"


def test_predict_checks_columns_and_types(frame: pd.DataFrame) -> None:
    model = sklearn_model(frame)
    loaded = lm.models.load(log(model, frame.head()))
    with pytest.raises(InvalidInput, match="missing column.*charges") as caught:
        loaded.predict(frame.drop(columns=["charges"]))
    assert caught.value.field == "charges"
    with pytest.raises(InvalidInput, match="'tenure' must hold integer") as caught:
        loaded.predict(frame.assign(tenure="long"))
    assert caught.value.field == "tenure"
    with pytest.raises(InvalidInput, match="'tenure'"):
        loaded.predict(frame.assign(tenure=frame.tenure + 0.5))


def write_model(files: dict[str, bytes], manifest: dict[str, Any]) -> str:
    """Log a hand-made model folder into a new run (files, then the manifest)."""
    service = lm.get_service()
    with lm.start_run() as run:
        for name, data in files.items():
            service.log_artifact_stream(run.run_id, f"m/{name}", io.BytesIO(data))
        body = json.dumps(manifest).encode()
        service.log_artifact_stream(run.run_id, f"m/{MANIFEST}", io.BytesIO(body))
    return f"runs:/{run.run_id}/m"


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", ["../x", "..", "a/b", ""])
def test_manifest_naming_a_file_outside_the_model_is_refused(name: str) -> None:
    data = b'{"class": "model_classes_for_tests:LinearScore", "state": {}}'
    uri = write_model(
        {"python_model.json": data},
        {"flavor": "python", "files": {name: sha256(data)}, "flavor_details": {}},
    )
    with pytest.raises(InvalidInput, match="invalid file"):
        lm.models.load(uri)


def test_unknown_flavor_is_refused() -> None:
    uri = write_model({}, {"flavor": "exec", "files": {}})
    with pytest.raises(InvalidInput, match="unknown model flavor 'exec'"):
        lm.models.load(uri)


@pytest.mark.parametrize(
    "recorded", ["builtins.eval", "xgboost.core.Booster", "xgboost.XGBRanker", "os.system"]
)
def test_xgboost_class_outside_the_whitelist_is_refused(frame: pd.DataFrame, recorded: str) -> None:
    pytest.importorskip("xgboost")
    uri = log(xgboost_model(frame), frame.head())
    run_id = uri.split("/")[1]
    service = lm.get_service()
    manifest = json.loads(b"".join(service.read_artifact(run_id, f"m/{MANIFEST}")))
    data = b"".join(service.read_artifact(run_id, "m/model.json"))
    manifest["flavor_details"]["class"] = recorded
    forged = write_model({"model.json": data}, {**manifest, "files": {"model.json": sha256(data)}})
    with pytest.raises(InvalidInput, match="refusing to rebuild"):
        lm.models.load(forged)


def test_torch_state_dict_with_python_objects_is_refused() -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(1), "payload": LinearScore({}, 0.0)}, buffer)
    data = buffer.getvalue()
    details = {
        "format": "state_dict",
        "file": "state_dict.pt",
        "class": "model_classes_for_tests:RegressionMLP",
        "columns": None,
    }
    manifest = {
        "flavor": "torch",
        "flavor_details": details,
        "files": {"state_dict.pt": sha256(data)},
    }
    uri = write_model({"state_dict.pt": data}, manifest)
    with pytest.raises(PermissionDenied, match="holds more than tensors"):
        lm.models.load(uri)
    with pytest.raises(PermissionDenied):
        lm.models.load(uri, trusted=True)  # weights_only is not lifted by trusted=True


def test_torch_state_dict_class_must_be_a_module() -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(1)}, buffer)
    data = buffer.getvalue()
    details = {"format": "state_dict", "file": "state_dict.pt", "class": "os:system"}
    uri = write_model(
        {"state_dict.pt": data},
        {"flavor": "torch", "flavor_details": details, "files": {"state_dict.pt": sha256(data)}},
    )
    with pytest.raises(InvalidInput, match="'os:system' is not a torch.nn.Module"):
        lm.models.load(uri)
