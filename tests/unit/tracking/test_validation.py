from __future__ import annotations

import math

import numpy as np
import pytest

from loopml.entities.tracking import Metric
from loopml.errors import InvalidInput
from loopml.tracking import validation


@pytest.mark.parametrize("bad", ["", "   ", "x" * 251, "tab\there", "nul\x00", 5, None])
def test_bad_names(bad: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        validation.check_name(bad, "name")
    assert caught.value.field == "name"


@pytest.mark.parametrize("bad", ["../x", "/abs", "semi;colon", "new\nline", "a" * 251])
def test_bad_keys(bad: str) -> None:
    with pytest.raises(InvalidInput):
        validation.check_key(bad, "metrics")


@pytest.mark.parametrize("good", ["acc", "val/loss", "f1-score", "model.depth", "a b:c"])
def test_good_keys(good: str) -> None:
    assert validation.check_key(good, "metrics") == good


@pytest.mark.parametrize("bad", ["0.5", None, [1], True, {"a": 1}, b"1"])
def test_metric_value_must_be_a_number(bad: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        validation.make_metric("acc", bad)
    assert caught.value.field == "metrics.acc"


def test_metric_accepts_numpy_and_special_values() -> None:
    assert validation.make_metric("a", np.float32(0.5), step=np.int64(3)).step == 3
    assert math.isnan(validation.make_metric("a", float("nan")).value)
    assert validation.make_metric("a", 1, timestamp=5) == Metric("a", 1.0, 5, 0)


def test_metric_dicts_from_json_accept_nan_strings() -> None:
    checked = validation.check_metrics([{"key": "a", "value": "nan"}, {"key": "b", "value": 2}])
    assert math.isnan(checked[0].value)
    with pytest.raises(InvalidInput):
        validation.check_metrics([{"key": "a"}])
    with pytest.raises(InvalidInput):
        validation.check_metrics("not a list")
    with pytest.raises(InvalidInput):
        validation.make_metric("a", 1, step=2**64)


def test_params_become_strings_and_are_bounded() -> None:
    assert validation.check_params({"a": 1, "b": 0.5, "c": True, "d": None}) == {
        "a": "1",
        "b": "0.5",
        "c": "True",
        "d": "None",
    }
    with pytest.raises(InvalidInput) as caught:
        validation.check_params({"a": "x" * 6001})
    assert caught.value.field == "params.a"
    with pytest.raises(InvalidInput):
        validation.check_params({"a": object()})
