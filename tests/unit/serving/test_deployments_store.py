"""The deployment store on SQLite and PostgreSQL: revisions, events and their order."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopml.errors import NotFound
from loopml.store.base import DeploymentEvent, DeploymentStore
from loopml.store.sql.deployments import SqlDeploymentStore


def _conformance(store: DeploymentStore, name: str) -> None:
    assert isinstance(store, DeploymentStore)
    first = store.apply_deployment(name, {"name": name, "model": "iris"}, "ana")
    assert (first.name, first.revision, first.user) == (name, 1, "ana")
    second = store.apply_deployment(name, {"name": name, "model": "iris", "x": [1]}, "bo")
    assert second.revision == 2
    assert store.get_deployment(name).config == {"name": name, "model": "iris", "x": [1]}
    assert store.get_deployment(name, 1).config == {"name": name, "model": "iris"}
    assert [r.revision for r in store.list_deployment_revisions(name)] == [1, 2]
    assert name in {d.name for d in store.list_deployments()}
    latest = next(d for d in store.list_deployments() if d.name == name)
    assert latest.revision == 2

    event = store.add_deployment_event(
        DeploymentEvent(
            deployment=name,
            revision=2,
            kind="rolled_back",
            variant="canary",
            from_version=2,
            to_version=1,
            evidence={"error_rate": 0.31, "requests": 200},
        )
    )
    assert event.id is not None and event.time > 0
    events = store.list_deployment_events(name)
    assert [e.kind for e in events] == ["applied", "applied", "rolled_back"]
    assert events[-1].evidence == {"error_rate": 0.31, "requests": 200}
    assert (events[-1].from_version, events[-1].to_version) == (2, 1)
    assert [e.kind for e in store.list_deployment_events(name, limit=1)] == ["rolled_back"]

    with pytest.raises(NotFound) as missing:
        store.get_deployment(f"{name}-missing")
    assert missing.value.field == "name"
    with pytest.raises(NotFound) as no_revision:
        store.get_deployment(name, 9)
    assert no_revision.value.field == "revision"
    with pytest.raises(NotFound):
        store.list_deployment_revisions(f"{name}-missing")
    assert store.list_deployment_events(f"{name}-missing") == []


def test_sqlite_deployment_store(tmp_path: Path) -> None:
    _conformance(SqlDeploymentStore(f"sqlite:///{tmp_path / 'store.db'}"), "churn-api")


def test_opened_from_settings() -> None:
    from loopml.config import load_settings
    from loopml.store.registry import open_deployment_store

    store = open_deployment_store(load_settings())
    assert store.apply_deployment("api", {"name": "api"}, "ana").revision == 1


@pytest.mark.postgres
def test_postgres_deployment_store(pg_uri: str) -> None:
    _conformance(SqlDeploymentStore(pg_uri), f"api-{uuid.uuid4().hex[:8]}")
