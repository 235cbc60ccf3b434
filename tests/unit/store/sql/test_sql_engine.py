from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from loopml.errors import InvalidInput
from loopml.store.sql import engine as engine_module
from loopml.store.sql.models import Base


def test_schema_revision_is_the_migration_head() -> None:
    config = Config()
    config.set_main_option(
        "script_location", str(Path(engine_module.__file__).parent / "migrations")
    )
    assert ScriptDirectory.from_config(config).get_current_head() == engine_module.SCHEMA_REVISION


def _uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'schema.db'}"


def test_migrations_match_the_models(tmp_path: Path) -> None:
    engines = engine_module.open_engine(_uri(tmp_path))
    with engines.read.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgres(pg_uri: str) -> None:
    engines = engine_module.open_engine(pg_uri)
    with engines.read.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    engines = engine_module.open_engine(_uri(tmp_path))
    with engines.write.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 30_000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def _open(uri: str) -> None:
    engine_module.open_engine(uri)


def test_concurrent_first_start_migrations_are_safe(tmp_path: Path) -> None:
    uri = _uri(tmp_path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open, args=(uri,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    engines = engine_module.open_engine(uri)
    with engines.read.connect() as conn:
        assert (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            == engine_module.SCHEMA_REVISION
        )


@pytest.mark.parametrize("uri", ["mysql://x/y", "not a url", "sqlite://", "sqlite:///:memory:"])
def test_unsupported_uris(uri: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        engine_module.open_engine(uri)
    assert caught.value.field == "store_uri"


def test_a_database_from_an_earlier_revision_upgrades_in_place(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    uri = _uri(tmp_path)
    config = Config()
    config.set_main_option(
        "script_location", str(Path(engine_module.__file__).parent / "migrations")
    )
    old = create_engine(uri)
    with old.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            text(
                "INSERT INTO experiments (name, lifecycle_stage, creation_time, last_update_time) "
                "VALUES ('kept', 'active', 1, 1)"
            )
        )
    old.dispose()
    from loopml.store.sql import SqlTrackingStore

    store = SqlTrackingStore(uri)
    assert store.get_experiment_by_name("kept") is not None
    engines = engine_module.open_engine(uri)
    with engines.read.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        indexes = {row[1] for row in conn.execute(text("PRAGMA index_list('dataset_versions')"))}
    assert version == engine_module.SCHEMA_REVISION
    assert "ix_dataset_versions_digest" in indexes
