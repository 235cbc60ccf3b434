from __future__ import annotations

from pathlib import Path

import pytest

from loopml.config import load_settings
from loopml.errors import InvalidInput


def test_defaults_live_under_home(isolated_home: Path) -> None:
    settings = load_settings()
    assert settings.home == isolated_home
    assert settings.resolved_store_uri == f"sqlite:///{isolated_home / 'loopml.db'}"
    assert settings.resolved_artifact_uri == str(isolated_home / "artifacts")
    assert settings.tracking_uri is None


def test_environment_beats_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "loopml.toml").write_text(
        '[loopml]\nstore_uri = "sqlite:////tmp/from-toml.db"\nartifact_uri = "s3://b/p"\n'
    )
    settings = load_settings()
    assert settings.store_uri == "sqlite:////tmp/from-toml.db"
    assert settings.artifact_uri == "s3://b/p"
    monkeypatch.setenv("LOOPML_STORE_URI", "sqlite:////tmp/from-env.db")
    assert load_settings().store_uri == "sqlite:////tmp/from-env.db"


def test_toml_in_home_is_read(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "loopml.toml").write_text('tracking_uri = "http://127.0.0.1:5000/"\n')
    assert load_settings().tracking_uri == "http://127.0.0.1:5000"


def test_bad_settings_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_TRACKING_URI", "ftp://nope")
    with pytest.raises(InvalidInput) as caught:
        load_settings()
    assert caught.value.field == "tracking_uri"
    monkeypatch.delenv("LOOPML_TRACKING_URI")
    (tmp_path / "loopml.toml").write_text("this is = = not toml")
    with pytest.raises(InvalidInput):
        load_settings()
