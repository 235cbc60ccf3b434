"""Settings: environment variables first, then ``loopml.toml``, then defaults.

``LOOPML_HOME`` (default ``~/.loopml``) holds the embedded store. ``LOOPML_STORE_URI`` picks
the metadata backend (SQLite file under home by default, ``postgresql+psycopg://`` for
PostgreSQL), ``LOOPML_ARTIFACT_URI`` the artifact backend (a folder under home by default,
``s3://bucket/prefix`` for S3), and ``LOOPML_TRACKING_URI`` an ``http(s)://`` tracking server
that replaces both for the SDK.

``loopml.toml`` is read from the current directory, else from ``LOOPML_HOME``. Keys are the
setting names without the prefix, at top level or under a ``[loopml]`` table::

    store_uri = "postgresql+psycopg://postgres@127.0.0.1:5432/loopml"
    artifact_uri = "s3://my-bucket/loopml"
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from loopml.errors import InvalidInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILE_NAME = "loopml.toml"


def default_home() -> Path:
    """Return ``LOOPML_HOME`` or ``~/.loopml``."""
    return Path(os.environ.get("LOOPML_HOME") or Path.home() / ".loopml").expanduser()


class _TomlSource(PydanticBaseSettingsSource):
    """Reads ``loopml.toml`` from the working directory or from ``LOOPML_HOME``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values().get(field_name), field_name, False

    def _values(self) -> dict[str, Any]:
        for candidate in (Path.cwd() / CONFIG_FILE_NAME, default_home() / CONFIG_FILE_NAME):
            if candidate.is_file():
                try:
                    data = tomllib.loads(candidate.read_text(encoding="utf-8"))
                except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                    raise InvalidInput(f"{candidate} is not valid TOML: {exc}") from exc
                section = data.get("loopml", data)
                return {k: v for k, v in section.items() if not isinstance(v, dict)}
        return {}

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values().items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Where loopml keeps its metadata and artifacts.

    Attributes
    ----------
    home : Path
        Folder of the embedded store (``LOOPML_HOME``).
    store_uri : str
        SQLAlchemy URL of the metadata store (``LOOPML_STORE_URI``).
    artifact_uri : str
        Folder or fsspec URL of the artifact store (``LOOPML_ARTIFACT_URI``).
    tracking_uri : str or None
        ``http(s)://`` URL of a loopml server; when set the SDK talks REST to it.
    tracking_token : str or None
        Bearer token sent to the tracking server (``LOOPML_TRACKING_TOKEN``).
    run_heartbeat_timeout : float
        Seconds without a heartbeat after which a RUNNING run counts as killed.
    max_upload_bytes : int
        Largest artifact upload the server accepts (``LOOPML_MAX_UPLOAD_BYTES``).
    online_store : str or None
        URI of the feature store's online store (``LOOPML_ONLINE_STORE``, e.g.
        ``redis://127.0.0.1:6379/0``); the SQLite file under ``home`` when unset.
    """

    model_config = SettingsConfigDict(env_prefix="LOOPML_", extra="ignore")

    home: Path = default_home()
    store_uri: str = ""
    artifact_uri: str = ""
    tracking_uri: str | None = None
    tracking_token: str | None = None
    run_heartbeat_timeout: float = 300.0
    max_upload_bytes: int = 2 * 1024**3
    online_store: str | None = None

    @field_validator("tracking_uri")
    @classmethod
    def _check_tracking_uri(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("LOOPML_TRACKING_URI must start with http:// or https://")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Give explicit arguments, then the environment, then ``loopml.toml`` precedence."""
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def resolved_store_uri(self) -> str:
        """The metadata store URI, defaulting to ``sqlite:///<home>/loopml.db``."""
        return self.store_uri or f"sqlite:///{self.home / 'loopml.db'}"

    @property
    def resolved_artifact_uri(self) -> str:
        """The artifact store URI, defaulting to ``<home>/artifacts``."""
        return self.artifact_uri or str(self.home / "artifacts")


def _fingerprint() -> tuple[Any, ...]:
    """What the settings are read from: the working folder, LOOPML_* variables, the files."""
    files: list[tuple[str, int | None, int | None]] = []
    for candidate in (Path.cwd() / CONFIG_FILE_NAME, default_home() / CONFIG_FILE_NAME):
        try:
            stat = candidate.stat()
            files.append((str(candidate), stat.st_mtime_ns, stat.st_size))
        except OSError:
            files.append((str(candidate), None, None))
    variables = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LOOPML_")))
    return (str(Path.cwd()), variables, tuple(files))


_cache: tuple[tuple[Any, ...], Settings] | None = None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings (environment and ``loopml.toml``), again whenever they changed.

    Parsing costs milliseconds and the SDK asks on every call, so the result is kept until
    the working folder, a ``LOOPML_*`` variable or a ``loopml.toml`` file changes.

    Raises
    ------
    InvalidInput
        When a setting has a value loopml cannot use.
    """
    global _cache
    from pydantic import ValidationError

    key = None if overrides else _fingerprint()
    if key is not None and _cache is not None and _cache[0] == key:
        return _cache[1]
    try:
        home = overrides.pop("home", None) or default_home()
        settings = Settings(home=home, **overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        raise InvalidInput(f"setting {name}: {first['msg']}", field=name) from exc
    if key is not None:
        _cache = (key, settings)
    return settings
