"""The registry store behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopml.entities.registry import ModelVersion
from loopml.errors import Conflict, NotFound
from loopml.store.sql.registry import SqlRegistryStore


@pytest.fixture(scope="session")
def sqlite_registry(tmp_path_factory: pytest.TempPathFactory) -> SqlRegistryStore:
    return SqlRegistryStore(f"sqlite:///{tmp_path_factory.mktemp('registry') / 'r.db'}")


@pytest.fixture(scope="session")
def postgres_registry(pg_uri: str) -> SqlRegistryStore:
    return SqlRegistryStore(pg_uri)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> SqlRegistryStore:
    return request.getfixturevalue(f"{request.param}_registry")  # type: ignore[no-any-return]


def _version(name: str, run_id: str = "a" * 32, **kwargs: object) -> ModelVersion:
    return ModelVersion(
        name=name,
        version=0,
        run_id=run_id,
        artifact_path="model",
        status="READY",
        created_time=0,
        last_update_time=0,
        flavor="sklearn",
        metrics={"f1": 0.8},
        datasets=("churn@v1",),
        user="ana",
        **kwargs,
    )  # type: ignore[arg-type]


def test_versions_are_numbered_and_create_the_model(store: SqlRegistryStore) -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    first = store.create_model_version(
        _version(name, signature={"inputs": []}, tags={"team": "risk"})
    )
    second = store.create_model_version(_version(name, run_id="b" * 32))
    assert (first.version, second.version) == (1, 2)
    assert first.tags == {"team": "risk"} and first.signature == {"inputs": []}
    assert first.datasets == ("churn@v1",) and first.metrics == {"f1": 0.8}
    assert [v.version for v in store.list_model_versions(name)] == [1, 2]
    assert store.get_registered_model(name).latest_version == 2
    assert name in [m.name for m in store.list_registered_models()]
    with pytest.raises(Conflict):
        store.create_registered_model(name)
    with pytest.raises(NotFound):
        store.get_model_version(name, 9)
    with pytest.raises(NotFound):
        store.get_registered_model(f"missing-{uuid.uuid4().hex[:6]}")


def test_aliases_move_and_every_change_is_audited(store: SqlRegistryStore) -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    store.create_model_version(_version(name))
    store.create_model_version(_version(name))
    assert store.set_alias(name, "champion", 1, "first", "ana") is None
    assert store.set_alias(name, "champion", 2, "better f1", "bob") == 1
    assert store.get_version_by_alias(name, "champion").version == 2
    assert store.get_registered_model(name).aliases == {"champion": 2}
    assert store.get_model_version(name, 2).aliases == ("champion",)
    assert store.delete_alias(name, "champion", "rollback", "ana") == 2
    with pytest.raises(NotFound):
        store.get_version_by_alias(name, "champion")
    with pytest.raises(NotFound):
        store.delete_alias(name, "champion", "", "ana")
    with pytest.raises(NotFound):
        store.set_alias(name, "champion", 7, "", "ana")
    store.set_version_status(name, 1, "ARCHIVED", "old", "ana")
    store.set_tag(name, 1, "reviewed", "yes", "ana")
    store.set_version_field(name, 2, "gate", {"passed": True, "reasons": []}, "ci")
    trail = [(a.action, a.from_value, a.to_value, a.reason, a.user) for a in store.list_audit(name)]
    assert trail == [
        ("create_model", None, name, "", "ana"),
        ("create_version", None, f"runs:/{'a' * 32}/model", "", "ana"),
        ("create_version", None, f"runs:/{'a' * 32}/model", "", "ana"),
        ("set_alias:champion", None, "1", "first", "ana"),
        ("set_alias:champion", "1", "2", "better f1", "bob"),
        ("delete_alias:champion", "2", None, "rollback", "ana"),
        ("set_status", "READY", "ARCHIVED", "old", "ana"),
        ("set_tag", None, "reviewed=yes", "", "ana"),
        ("set_gate", None, "True", "", "ci"),
    ]
    assert store.get_model_version(name, 2).gate == {"passed": True, "reasons": []}


def test_failed_alias_change_leaves_no_audit_row(store: SqlRegistryStore, tmp_path: Path) -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    store.create_model_version(_version(name))
    before = len(store.list_audit(name))
    with pytest.raises(NotFound):
        store.set_alias(name, "champion", 5, "nope", "ana")
    assert len(store.list_audit(name)) == before
