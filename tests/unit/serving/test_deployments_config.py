"""Deployment configuration: parsing, YAML files, durations and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopml.errors import InvalidInput, NotFound
from loopml.serving.deployment import (
    DeploymentConfig,
    check_registered,
    load_deployment,
    parse_deployment,
    parse_duration,
    single_model,
)


def _config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "iris-api",
        "model": "iris",
        "variants": [
            {"name": "blue", "model": "champion", "weight": 3},
            {"name": "green", "model": 2, "weight": 1},
        ],
    }
    return {**base, **overrides}


def _fails(data: Any, field: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_deployment(data, source="d.yaml")
    assert error.value.field == field, error.value
    assert fragment in error.value.message, error.value.message
    assert error.value.message.startswith(f"d.yaml: {field}: ")


def test_a_valid_config_and_its_plans_and_shares() -> None:
    config = parse_deployment(
        _config(
            sticky_key="header:X-User-Id",
            variants=[
                {"name": "blue", "model": "champion", "weight": 3},
                {"name": "green", "model": "2", "weight": 1},
                {"name": "next", "model": "challenger", "role": "canary"},
                {"name": "dark", "model": 4, "role": "shadow"},
            ],
            canary={"share": 0.2, "duration": "90s", "check_interval": "250ms"},
        )
    )
    assert [(p.name, p.spec, p.alias, p.role) for p in config.plans()] == [
        ("blue", "iris@champion", "champion", "primary"),
        ("green", "iris/2", None, "primary"),
        ("next", "iris@challenger", "challenger", "canary"),
        ("dark", "iris/4", None, "shadow"),
    ]
    assert config.canary.duration == 90.0 and config.canary.check_interval == 0.25
    assert config.shares() == pytest.approx({"blue": 0.6, "green": 0.2, "next": 0.2, "dark": 0})
    assert config.shares(canary=False) == pytest.approx(
        {"blue": 0.75, "green": 0.25, "next": 0, "dark": 0}
    )
    assert config.served_alias() == "champion"
    again = parse_deployment(config.to_dict())
    assert again == config
    assert isinstance(config, DeploymentConfig)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("500ms", 0.5), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0), (7, 7.0)],
)
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        (
            {"variants": [{"name": "a", "model": "champion", "weight": 0}]},
            "variants.0.weight",
            "greater than 0",
        ),
        (
            {
                "variants": [
                    {"name": "a", "model": "champion"},
                    {"name": "b", "model": 1, "weight": -2},
                ]
            },
            "variants.1.weight",
            "greater than 0",
        ),
        (
            {"variants": [{"name": "a", "model": "champion"}, {"name": "a", "model": 2}]},
            "variants.1.name",
            "used twice",
        ),
        ({"variants": [{"name": "a", "model": 1, "role": "shadow"}]}, "variants", "primary"),
        (
            {
                "variants": [
                    {"name": "a", "model": 1},
                    {"name": "b", "model": 2, "role": "canary"},
                    {"name": "c", "model": 3, "role": "canary"},
                ]
            },
            "variants.2.role",
            "at most one canary",
        ),
        ({"variants": [{"name": "a", "model": "Champion!"}]}, "variants.0.model", "alias"),
        ({"variants": [{"name": "a", "model": 0}]}, "variants.0.model", "starts at 1"),
        ({"variants": [{"name": "a", "model": 1, "role": "boss"}]}, "variants.0.role", "primary"),
        ({"variants": []}, "variants", "at least 1"),
        ({"canary": {"duration": "soon"}}, "canary.duration", "not a duration"),
        ({"canary": {"share": 1.5}}, "canary.share", "less than 1"),
        ({"canary": {"max_error_rate": -1}}, "canary.max_error_rate", "greater than"),
        ({"canary": {"min_requests": 0}}, "canary.min_requests", "greater than"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"name": "has space"}, "name", "letters, digits"),
        ({"sticky_key": "header:"}, "sticky_key", "names no header"),
        (
            {"on_alias_move": "canary", "variants": [{"name": "a", "model": 3}]},
            "on_alias_move",
            "alias",
        ),
        ({"on_alias_move": "jump"}, "on_alias_move", "swap"),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], field: str, fragment: str) -> None:
    _fails(_config(**change), field, fragment)


def test_missing_fields_and_non_mappings() -> None:
    data = _config()
    del data["model"]
    _fails(data, "model", "required")
    with pytest.raises(InvalidInput) as error:
        parse_deployment(["not", "a", "mapping"], source="d.yaml")
    assert error.value.field == "config" and "mapping" in error.value.message


def test_yaml_files(tmp_path: Path) -> None:
    good = tmp_path / "deployment.yaml"
    good.write_text(
        "name: iris-api\nmodel: iris\nsticky_key: X-User-Id\nvariants:\n"
        "  - {name: blue, model: champion, weight: 90}\n"
        "  - {name: green, model: 2, weight: 10}\n"
        "canary: {share: 0.1, duration: 10m, min_requests: 200, max_p99_latency_ms: 50}\n"
        "on_alias_move: canary\n",
        encoding="utf-8",
    )
    config = load_deployment(good)
    assert config.sticky_key == "X-User-Id" and config.canary.max_p99_latency_ms == 50
    assert config.on_alias_move == "canary"

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nvariants: [\n  - oops: {\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as error:
        load_deployment(broken)
    assert error.value.field == "file" and "not valid YAML at line" in error.value.message

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "name: x\nmodel: iris\nvariants:\n  - {name: a, model: 1, weight: 0}\n", encoding="utf-8"
    )
    with pytest.raises(InvalidInput) as error:
        load_deployment(wrong)
    assert error.value.field == "variants.0.weight"
    assert error.value.message.startswith("wrong.yaml: variants.0.weight")

    with pytest.raises(InvalidInput) as error:
        load_deployment(tmp_path / "missing.yaml")
    assert error.value.field == "file"


def test_single_model_specs() -> None:
    config, plan = single_model("iris@champion")
    assert config is not None and config.model == "iris" and plan.alias == "champion"
    assert plan.spec == "iris@champion" and plan.name == "primary"
    config, plan = single_model("models:/iris/3")
    assert config is not None and plan.alias is None and plan.spec == "models:/iris/3"
    config, plan = single_model("runs:/0123456789abcdef/model")
    assert config is None and plan.spec == "runs:/0123456789abcdef/model"


def test_check_registered_names_the_variant() -> None:
    config = parse_deployment(_config())
    known = {"iris@champion": 1, "iris/2": 2}

    def resolve(spec: str) -> int:
        if spec in known:
            return known[spec]
        raise NotFound(f"no {spec}", field="version")

    assert check_registered(config, resolve) == {"blue": 1, "green": 2}
    del known["iris/2"]
    with pytest.raises(NotFound) as error:
        check_registered(config, resolve)
    assert error.value.field == "variants.1.model" and "no version 2" in error.value.message

    def no_model(spec: str) -> int:
        raise NotFound("registered model 'iris' does not exist", field="name")

    with pytest.raises(NotFound) as error:
        check_registered(config, no_model)
    assert error.value.field == "model"
