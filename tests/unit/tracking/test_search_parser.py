from __future__ import annotations

import pytest

from loopml.entities.search import Clause, FieldKind, OrderBy, format_filter
from loopml.errors import InvalidInput
from loopml.tracking.search import parse_filter, parse_order_by


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.acc > 0.9", [Clause(FieldKind.METRIC, "acc", ">", 0.9)]),
        ("metric.acc >= -1e-3", [Clause(FieldKind.METRIC, "acc", ">=", -0.001)]),
        ("metrics.val.loss < 2", [Clause(FieldKind.METRIC, "val.loss", "<", 2.0)]),
        ("metrics.`my metric` != 1", [Clause(FieldKind.METRIC, "my metric", "!=", 1.0)]),
        ("params.lr = '0.01'", [Clause(FieldKind.PARAM, "lr", "=", "0.01")]),
        ('params.model = "rf"', [Clause(FieldKind.PARAM, "model", "=", "rf")]),
        ("params.x == 'a'", [Clause(FieldKind.PARAM, "x", "=", "a")]),
        ("params.x <> 'a'", [Clause(FieldKind.PARAM, "x", "!=", "a")]),
        ("tags.team like 'ri%'", [Clause(FieldKind.TAG, "team", "LIKE", "ri%")]),
        (
            "tags.\"data set\" ILIKE '%Churn%'",
            [Clause(FieldKind.TAG, "data set", "ILIKE", "%Churn%")],
        ),
        ("status = 'finished'", [Clause(FieldKind.ATTRIBUTE, "status", "=", "FINISHED")]),
        ("attributes.run_name = 'it''s'", [Clause(FieldKind.ATTRIBUTE, "run_name", "=", "it's")]),
        ("attribute.start_time > 17", [Clause(FieldKind.ATTRIBUTE, "start_time", ">", 17.0)]),
        (
            "metrics.a > 1 AND params.b = 'x' and tags.c = 'y'",
            [
                Clause(FieldKind.METRIC, "a", ">", 1.0),
                Clause(FieldKind.PARAM, "b", "=", "x"),
                Clause(FieldKind.TAG, "c", "=", "y"),
            ],
        ),
        ("", []),
        ("   ", []),
    ],
)
def test_parse_filter(text: str, expected: list[Clause]) -> None:
    assert parse_filter(text) == expected
    assert parse_filter(format_filter(expected)) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("metrics.acc >", "ended"),
        ("metrics.acc > 'x'", "number"),
        ("params.lr = 0.1", "quoted string"),
        ("foo.bar = 'x'", "unknown key type"),
        ("attributes.color = 'red'", "unknown attribute"),
        ("metrics.a > 1 or metrics.b > 2", "OR is not supported"),
        ("metrics.a > 1 metrics.b > 2", "expected AND"),
        ("metrics.a ~ 1", "unexpected character"),
        ("metrics.a LIKE 'x%'", "LIKE needs a string"),
        ("params.a = 'unterminated", "unexpected character"),
        ("= 'x'", "expected a key"),
        ("params.a NOT LIKE 'x'", "NOT is not supported"),
    ],
)
def test_malformed_filters_name_the_field(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_filter(text)
    assert caught.value.field == "filter_string"
    assert fragment in caught.value.message


def test_parse_order_by() -> None:
    assert parse_order_by(["metrics.acc DESC", "start_time", "params.lr asc"]) == [
        OrderBy(FieldKind.METRIC, "acc", False),
        OrderBy(FieldKind.ATTRIBUTE, "start_time", True),
        OrderBy(FieldKind.PARAM, "lr", True),
    ]
    for bad in (["metrics.acc sideways"], ["nonsense.x"], [""]):
        with pytest.raises(InvalidInput) as caught:
            parse_order_by(bad)
        assert caught.value.field == "order_by"
