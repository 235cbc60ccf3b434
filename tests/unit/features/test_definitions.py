"""Feature-store definitions: validation, versioning and incompatible-change refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest

import loopml as lm
from loopml.errors import InvalidInput, NotFound

F = lm.features


def _view(**changes: object) -> lm.features.FeatureView:
    options: dict[str, object] = {
        "name": "driver_stats",
        "entities": [F.Entity("driver", ["driver_id"])],
        "source": "driver_stats.parquet",
        "timestamp_field": "ts",
        "features": [F.Field("rating", "float64"), F.Field("trips", "int64")],
        "ttl": timedelta(days=1),
    }
    options.update(changes)
    return F.FeatureView(**options)  # type: ignore[arg-type]


def test_apply_versions_only_changed_definitions() -> None:
    first = F.apply([_view()])
    assert [(r.kind, r.name, r.version) for r in first] == [
        ("entity", "driver", 1),
        ("feature_view", "driver_stats", 1),
    ]
    assert [r.version for r in F.apply([_view()])] == [1, 1]
    changed = F.apply([_view(ttl=timedelta(hours=2))])
    assert changed[1].version == 2
    assert changed[1].definition["ttl_seconds"] == 7200
    added = F.apply([_view(features=[F.Field("rating"), F.Field("trips", "int64"), F.Field("x")])])
    assert added[1].version == 3
    assert F.get("driver_stats").version == 3
    assert F.get("driver_stats", version=1).definition["ttl_seconds"] == 86400
    assert [(r.kind, r.name) for r in F.list_definitions()] == [
        ("entity", "driver"),
        ("feature_view", "driver_stats"),
    ]


def test_incompatible_changes_are_refused_unless_forced() -> None:
    F.apply([_view()])
    with pytest.raises(InvalidInput, match="dtype float64 -> string"):
        F.apply([_view(features=[F.Field("rating", "string")])])
    with pytest.raises(InvalidInput, match="join keys"):
        F.apply([_view(entities=[F.Entity("driver", ["driver_id", "city"])])])
    assert F.get("driver_stats").version == 1
    assert F.get("driver").version == 1
    forced = F.apply([_view(features=[F.Field("rating", "string")])], force=True)
    assert forced[1].version == 2


def test_services_reference_applied_features() -> None:
    view = _view()
    F.apply([view, F.FeatureService("ranker", [view, "driver_stats:rating"])])
    assert F.get("ranker").definition["features"] == ["driver_stats", "driver_stats:rating"]
    with pytest.raises(InvalidInput, match="no feature 'nope'"):
        F.apply([F.FeatureService("bad", ["driver_stats:nope"])])
    with pytest.raises(InvalidInput, match="not applied"):
        F.apply([F.FeatureService("bad", ["missing:rating"])])
    with pytest.raises(NotFound):
        F.get("bad")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: _view(ttl=timedelta(seconds=-1)), "ttl"),
        (lambda: _view(ttl=timedelta(0)), "ttl"),
        (lambda: _view(ttl=5), "ttl"),
        (lambda: _view(features=[F.Field("ts")]), "features"),
        (lambda: _view(features=[]), "features"),
        (lambda: _view(entities=[]), "entities"),
        (lambda: _view(source=""), "source"),
        (lambda: _view(name="bad name"), "name"),
        (lambda: _view(name="a__b"), "name"),
        (lambda: F.Field("x", "complex"), "dtype"),
        (lambda: F.Entity("driver", []), "join_keys"),
        (lambda: F.FeatureService("s", []), "features"),
    ],
)
def test_bad_definitions_name_the_field(build: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field


def test_two_different_definitions_under_one_name_are_refused() -> None:
    with pytest.raises(InvalidInput, match="two different definitions"):
        F.apply([_view(), _view(ttl=None)])
    with pytest.raises(NotFound):
        F.get("driver_stats")


def test_definitions_are_kept_briefly_and_apply_here_is_seen_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loopml.features import definitions

    F.apply([_view()])
    assert definitions.latest_definition("feature_view", "driver_stats").version == 1
    # Another process storing a version: not seen while the kept one is fresh...
    changed = _view(description="from elsewhere").to_definition()
    definitions.get_store().put_feature_definition("feature_view", "driver_stats", changed)
    assert definitions.latest_definition("feature_view", "driver_stats").version == 1
    # ...and seen once it is older than the interval.
    monkeypatch.setattr(definitions, "DEFINITIONS_CACHE_SECONDS", 0.0)
    assert definitions.latest_definition("feature_view", "driver_stats").version == 2
    monkeypatch.setattr(definitions, "DEFINITIONS_CACHE_SECONDS", 3600.0)
    # An apply in this process is seen at once, however fresh the kept version.
    F.apply([_view(description="here")])
    assert definitions.latest_definition("feature_view", "driver_stats").version == 3
    with pytest.raises(NotFound):
        definitions.latest_definition("feature_view", "nope")
