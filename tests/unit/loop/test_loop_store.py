"""The loop store on SQLite and PostgreSQL, and a controller storm on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import loop_flows
import pytest

import loopml as lm
from loopml.config import load_settings
from loopml.errors import NotFound
from loopml.store.loop_base import LoopEvent, LoopStore
from loopml.store.sql.loop import SqlLoopStore

bikes, make_policy = loop_flows.bikes, loop_flows.make_policy


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> SqlLoopStore:
    if request.param == "postgresql":
        return SqlLoopStore(request.getfixturevalue("pg_uri"))
    return SqlLoopStore(load_settings().resolved_store_uri)


def test_policies_are_versioned_and_listed(store: SqlLoopStore) -> None:
    assert isinstance(store, LoopStore)
    name = f"p-{id(store)}"
    first, created = store.put_loop_policy(name, {"cooldown": 60}, time=1000)
    assert created and first.version == 1 and first.created_time == 1000
    same, created = store.put_loop_policy(name, {"cooldown": 60})
    assert not created and same.version == 1
    second, created = store.put_loop_policy(name, {"cooldown": 120})
    assert created and second.version == 2
    assert store.get_loop_policy(name).definition == {"cooldown": 120}
    assert store.get_loop_policy(name, 1).definition == {"cooldown": 60}
    assert [p.version for p in store.list_loop_policy_versions(name)] == [1, 2]
    assert {p.name: p.version for p in store.list_loop_policies()}[name] == 2
    with pytest.raises(NotFound, match="no version 3"):
        store.get_loop_policy(name, 3)
    with pytest.raises(NotFound, match="does not exist"):
        store.get_loop_policy("nothing-here")
    store.set_loop_state(name, {"cursor": 3}, time=1)
    store.delete_loop_policy(name)
    assert store.get_loop_state(name) == {}
    with pytest.raises(NotFound):
        store.delete_loop_policy(name)


def test_events_claims_and_state(store: SqlLoopStore) -> None:
    name = f"e-{id(store)}"
    stored = [
        store.add_loop_event(LoopEvent(name, kind, {"n": i, "x": float("nan")}, retrain="r1"))
        for i, kind in enumerate(["triggered", "window_built", "failed"])
    ]
    assert [e.id for e in stored] == sorted(e.id for e in stored) and stored[0].time > 0
    assert [e.kind for e in store.list_loop_events(name, limit=2)] == ["window_built", "failed"]
    assert [e.evidence["n"] for e in store.list_loop_events(name, kinds=["failed"])] == [2]
    assert len(store.list_loop_events(retrain="r1", limit=10)) >= 3
    assert store.list_loop_events(name)[0].to_dict()["retrain"] == "r1"

    # Of many claims on one occurrence exactly one wins, also from many threads.
    results: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(
                store.claim_loop_trigger(name, "event:7", f"owner-{i}", 1)
            )
        )
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert store.claim_loop_trigger(name, "event:8", "owner", 1)

    assert store.get_loop_state(name) == {}
    store.set_loop_state(name, {"cursor": 3, "rollout": None}, time=5)
    store.set_loop_state(name, {"cursor": 4, "rollout": {"candidate": 2}}, time=6)
    assert store.get_loop_state(name) == {"cursor": 4, "rollout": {"candidate": 2}}


@pytest.mark.postgres
def test_a_storm_on_postgresql_gives_one_retrain(
    pg_uri: str, make_policy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPML_STORE_URI", pg_uri)
    lm.datasets.register("bikes", loop_flows.make_data(120))
    lm.registry.register(loop_flows.train("bikes"), "bikeshare")
    lm.registry.set_alias("bikeshare", "champion", 1, reason="first model")
    lm.loop.apply(make_policy(name="pg-bikes", triggers=[lm.loop.Drift(share=0.3)]))
    for _ in range(20):
        lm.triggers.fire("drift", {"model": "bikeshare", "check": "drift_share", "value": 0.5})
    first, second = lm.loop.Controller(owner="pg-a"), lm.loop.Controller(owner="pg-b")
    counts = Counter(e.kind for e in first.run_once() + second.run_once())
    assert counts["triggered"] == 1 and counts["skipped_cooldown"] == 19
    assert counts["promoted"] == 1
    assert lm.registry.resolve("bikeshare@champion").version == 2
    first.close()
    assert second.run_once() == [] and second.is_active
    second.close()
