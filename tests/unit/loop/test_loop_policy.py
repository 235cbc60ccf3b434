"""Policies: validation, versions, references that must exist, the Manual trigger."""

from __future__ import annotations

from typing import Any

import loop_flows
import pytest

import loopml as lm
from loopml.errors import InvalidInput, NotFound
from loopml.loop.policy import policy_from_dict, policy_to_dict

bikes, make_policy = loop_flows.bikes, loop_flows.make_policy


def test_apply_stores_versions_only_when_the_definition_changes(make_policy: Any) -> None:
    first = lm.loop.apply(make_policy())
    assert (first.name, first.version) == ("bikes", 1)
    assert first.definition["pipeline"] == "loop_flows:train"
    assert first.definition["cooldown"] == 21600.0
    assert lm.loop.apply(make_policy()).version == 1
    second = lm.loop.apply(make_policy(cooldown="2h", triggers=[lm.loop.Cron("0 3 * * *")]))
    assert second.version == 2 and second.definition["triggers"] == [
        {"type": "cron", "cron": "0 3 * * *"}
    ]
    assert lm.loop.get("bikes").version == 2
    assert [p.name for p in lm.loop.list_policies()] == ["bikes"]
    assert [e.kind for e in lm.loop.history("bikes")] == ["applied", "applied"]
    assert lm.loop.history("bikes")[-1].policy_version == 2


def test_a_stored_policy_reads_back_as_a_policy(make_policy: Any) -> None:
    policy = make_policy(
        triggers=[
            lm.loop.Cron("0 3 * * *"),
            lm.loop.NewData("bikes"),
            lm.loop.Drift(share=0.3, monitor="bikes-monitor"),
            lm.loop.Degradation(metric="accuracy", drop=0.05),
            lm.loop.Manual(),
        ],
        window=lm.loop.RepresentativeSample(n=50, stratify="label"),
        rollout=lm.loop.Canary(share=0.1, min_requests=500, max_duration="1h"),
    )
    stored = lm.loop.apply(policy)
    again = stored.policy
    assert again.triggers == list(policy.triggers)
    assert again.window == policy.window
    assert again.rollout == lm.loop.Canary(share=0.1, min_requests=500, max_duration=3600.0)
    assert again.gate.get_params() == policy.gate.get_params()
    assert policy_to_dict(policy_from_dict(stored.definition)) == stored.definition


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"triggers": []}, "triggers", "at least one trigger"),
        ({"triggers": ["drift"]}, "triggers.0", "must be Cron"),
        ({"triggers": [lm.loop.Cron("every day")]}, "triggers.0", "invalid cron"),
        ({"triggers": [lm.loop.Drift(share=1.5)]}, "triggers.0.share", "[0.0, 1.0]"),
        ({"triggers": [lm.loop.Degradation(metric="f1", drop=-1)]}, "triggers.0.drop", "number"),
        ({"window": lm.loop.FixedWindow(days=0)}, "window.days", "positive"),
        ({"window": lm.loop.RepresentativeSample(n=0)}, "window.n", "number"),
        ({"window": "30d"}, "window", "FixedWindow"),
        ({"rollout": lm.loop.Canary(share=1.0)}, "rollout.share", "between 0 and 1"),
        ({"rollout": lm.loop.Canary(max_duration="soon")}, "rollout.max_duration", "duration"),
        ({"cooldown": "a while"}, "cooldown", "not a duration"),
        ({"max_retrains_per_day": 0}, "max_retrains_per_day", "number"),
        ({"alias": "Champion!"}, "alias", "alias"),
        ({"name": "bad name"}, "name", "name"),
        ({"holdout": 0.9}, "holdout", "holdout"),
        ({"gate": "strict"}, "gate", "lm.Gate"),
        ({"pipeline_params": {"dataset": "x"}}, "pipeline_params", "dataset"),
        ({"pipeline": lambda dataset: dataset}, "pipeline", "module-level"),
        ({"pipeline": "no-colon"}, "pipeline", "module:function"),
    ],
)
def test_bad_definitions_name_the_field(
    make_policy: Any, changes: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        lm.loop.apply(make_policy(**changes))
    assert caught.value.field == field
    assert text in caught.value.message
    assert lm.loop.list_policies() == []


@pytest.mark.parametrize(
    ("changes", "error", "field", "text"),
    [
        ({"pipeline": "loop_nowhere:train"}, InvalidInput, "pipeline", "cannot import"),
        ({"pipeline": "loop_flows:missing"}, InvalidInput, "pipeline", "cannot import"),
        ({"pipeline": loop_flows.no_dataset}, InvalidInput, "pipeline", "keyword 'dataset'"),
        ({"data": "nothing"}, NotFound, "data", "not registered"),
        ({"triggers": [lm.loop.NewData("other")]}, NotFound, "dataset", "'other'"),
        ({"timestamp": "when"}, InvalidInput, "timestamp", "no timestamp column 'when'"),
        ({"label": "y"}, InvalidInput, "label", "no label column 'y'"),
        ({"model": "nobody"}, NotFound, "model", "does not exist"),
    ],
)
def test_a_policy_must_name_things_that_exist(
    make_policy: Any, changes: dict[str, Any], error: type[Exception], field: str, text: str
) -> None:
    with pytest.raises(error) as caught:
        lm.loop.apply(make_policy(**changes))
    assert caught.value.field == field  # type: ignore[attr-defined]
    assert text in caught.value.message  # type: ignore[attr-defined]


def test_a_policy_given_as_a_file_reference(make_policy: Any, tmp_path: Any) -> None:
    flow = tmp_path / "myflow.py"
    flow.write_text("def train(dataset):\n    return dataset\n")
    stored = lm.loop.apply(make_policy(pipeline=f"{flow}:train"))
    assert stored.definition["pipeline"].endswith("myflow.py:train")


def test_trigger_needs_a_manual_trigger_and_a_policy(make_policy: Any) -> None:
    with pytest.raises(NotFound, match="'bikes' does not exist"):
        lm.loop.trigger("bikes")
    lm.loop.apply(make_policy(triggers=[lm.loop.Drift()]))
    with pytest.raises(InvalidInput, match="no Manual"):
        lm.loop.trigger("bikes")
    with pytest.raises(InvalidInput, match="limit"):
        lm.loop.history("bikes", limit=0)
    with pytest.raises(NotFound):
        lm.loop.history("nobody")
    lm.loop.apply(make_policy())
    event_id = lm.loop.trigger("bikes", reason="because")
    event = lm.triggers.list_events(kind="loop_trigger")[-1]
    assert event.id == event_id and event.payload == {
        "policy": "bikes",
        "reason": "because",
        "force": False,
    }


def test_not_a_policy() -> None:
    with pytest.raises(InvalidInput, match="expected an lm.loop.Policy"):
        lm.loop.apply("bikes")  # type: ignore[arg-type]
