"""Registering, resolving, aliasing, loading and model cards through the fluent API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml as lm
from loopml.errors import Conflict, InvalidInput, NotFound


@pytest.fixture
def logged() -> tuple[str, pd.DataFrame, LogisticRegression]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"tenure": rng.integers(0, 72, 200), "charges": rng.normal(70, 20, 200)})
    target = (frame.charges > 70).astype(int)
    lm.datasets.register("churn", frame.assign(churned=target))
    model = LogisticRegression().fit(frame, target)
    with lm.start_run() as run:
        lm.datasets.get("churn")
        lm.log_metric("f1", 0.91)
        info = lm.log_model(model, "model", input_example=frame.head())
    assert info.uri == f"runs:/{run.run_id}/model"
    return info.uri, frame, model


def test_register_records_lineage(logged: tuple[str, pd.DataFrame, LogisticRegression]) -> None:
    uri, _, _ = logged
    version = lm.registry.register(uri, "churn-model", description="baseline")
    assert version.version == 1 and version.flavor == "sklearn"
    assert version.datasets == ("churn@v1",)
    assert version.metrics == {"f1": 0.91}
    assert [c["name"] for c in (version.signature or {})["inputs"]] == ["tenure", "charges"]
    with pytest.raises(Conflict, match="churn-model/1"):
        lm.datasets.delete("churn", 1)


def test_aliases_and_loading(logged: tuple[str, pd.DataFrame, LogisticRegression]) -> None:
    uri, frame, model = logged
    lm.registry.register(uri, "churn-model")
    lm.registry.register(uri, "churn-model")
    with pytest.raises(InvalidInput, match="needs a reason"):
        lm.registry.set_alias("churn-model", "champion", 1)
    with pytest.raises(NotFound):
        lm.registry.set_alias("churn-model", "champion", 3, reason="missing version")
    assert lm.registry.set_alias("churn-model", "champion", 1, reason="first") is None
    assert lm.registry.set_alias("churn-model", "challenger", 2) is None
    for spec in (
        "churn-model@champion",
        "churn-model/1",
        "models:/churn-model/2",
        "churn-model@latest",
        uri,
    ):
        loaded = lm.models.load(spec)
        assert (loaded.predict(frame) == model.predict(frame)).all()
    assert lm.registry.resolve("churn-model@latest").version == 2
    with pytest.raises(InvalidInput):
        lm.registry.archive("churn-model", 1)  # still champion
    lm.registry.delete_alias("churn-model", "challenger")
    lm.registry.archive("churn-model", 2, reason="superseded")
    with pytest.raises(InvalidInput, match="ARCHIVED"):
        lm.registry.set_alias("churn-model", "challenger", 2)
    actions = [entry.action for entry in lm.registry.audit("churn-model")]
    assert actions.count("set_alias:champion") == 1 and "set_status" in actions
    for bad in ("UPPER", "has space", "latest", ""):
        with pytest.raises(InvalidInput):
            lm.registry.set_alias("churn-model", bad, 1, reason="x")


def test_model_card(logged: tuple[str, pd.DataFrame, LogisticRegression], tmp_path: Path) -> None:
    uri, _, _ = logged
    lm.registry.register(uri, "churn-model")
    lm.registry.get_service().record(
        "churn-model",
        1,
        "gate",
        {"passed": False, "reasons": [{"passed": False, "message": "f1 < 0.95 <script>"}]},
    )
    card = lm.registry.card("churn-model", 1)
    assert "# Model card: churn-model v1" in card and "churn@v1" in card
    assert "| f1 | 0.91 |" in card and "FAILED" in card
    page = lm.registry.card("churn-model", 1, format="html")
    assert "&lt;script&gt;" in page and "<script>" not in page


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 300])
def test_bad_model_names(logged: tuple[str, pd.DataFrame, LogisticRegression], name: str) -> None:
    with pytest.raises(InvalidInput):
        lm.registry.register(logged[0], name)
    assert lm.registry.list_models() == []


def test_bad_uris() -> None:
    for spec in ("runs:/nothex/model", "nope", "a@B", "a/0x"):
        with pytest.raises(InvalidInput):
            lm.models.load(spec)
