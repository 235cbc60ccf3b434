"""Where ``loopml ci`` reads its settings: flags, ``loopml.toml`` ``[ci]``, ``[tool.loopml.ci]``.

The first file that has a CI section wins, in this order: ``--config PATH``; the project's
``loopml.toml`` (``[ci]``, or ``[loopml.ci]`` when the file keeps its settings under
``[loopml]``); the project's ``pyproject.toml`` (``[tool.loopml.ci]``); ``loopml.toml`` in
``LOOPML_HOME``. Flags override single keys of that section.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopml.config import CONFIG_FILE_NAME, default_home
from loopml.errors import InvalidInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The checks, in the order they run.
CHECKS = ("tests", "data", "pipeline", "gate")
CheckName = Literal["tests", "data", "pipeline", "gate"]


class _Section(BaseModel):
    """The keys a CI section may hold; anything else is a typo and refused."""

    model_config = ConfigDict(extra="forbid")

    tests: str | None = None
    tests_timeout: float = Field(default=1800.0, gt=0)
    dataset: str | None = None
    reference: str | None = None
    pipeline: str | None = None
    sample: int = Field(default=1000, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    gate: dict[str, Any] | str | None = None
    skip: list[CheckName] = Field(default_factory=list)
    fail_fast: bool = False
    cache: bool = True
    executor: Literal["inprocess", "process", "dask"] = "inprocess"


@dataclass(frozen=True)
class CIConfig:
    """What ``loopml ci`` checks, and how.

    Attributes
    ----------
    project : Path
        The project folder: tests run there and pipeline modules are imported from it.
    tests : str, optional
        The test command; ``pytest -q`` (with this interpreter) when the project has a
        ``tests/`` folder and no command is set.
    tests_timeout : float
        Seconds the tests may take before they count as failed.
    dataset : str, optional
        The dataset whose latest version is validated against its attached schema.
    reference : str, optional
        A dataset version (``churn@v1``) the latest version is also checked against for
        drift.
    pipeline : str, optional
        The training pipeline, ``package.module:pipeline`` or ``path/to/file.py:pipeline``.
    sample : int
        Rows the pipeline trains on (see the pipeline contract in :mod:`loopml.training.ci`).
    params : dict
        More pipeline parameters.
    model : str, optional
        The registered model whose champion the gate compares an evaluation with.
    gate : dict or str, optional
        ``lm.Gate`` parameters, or ``module:attr`` of an ``lm.Gate``; ``lm.Gate()`` when
        omitted.
    skip : tuple of str
        Checks not to run.
    fail_fast : bool
        Skip the remaining checks after the first failure.
    cache : bool
        Let the pipeline take unchanged steps from its cache.
    executor : str
        Where the pipeline's steps run.
    source : str
        Where the settings came from (a file and section, or "flags only").
    """

    project: Path = Path(".")
    tests: str | None = None
    tests_timeout: float = 1800.0
    dataset: str | None = None
    reference: str | None = None
    pipeline: str | None = None
    sample: int = 1000
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    gate: dict[str, Any] | str | None = None
    skip: tuple[str, ...] = ()
    fail_fast: bool = False
    cache: bool = True
    executor: str = "inprocess"
    source: str = "flags only"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}", field="config") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="config") from exc


def _section(data: dict[str, Any], pyproject: bool) -> tuple[Any, str] | None:
    """The CI table of a parsed file and its name, or None when it has none."""
    paths = [("tool", "loopml", "ci")] if pyproject else [("ci",), ("loopml", "ci")]
    if not pyproject:
        paths.append(("tool", "loopml", "ci"))
    for keys in paths:
        node: Any = data
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return node, "[" + ".".join(keys) + "]"
    return None


def read_section(project: Path, config_file: Path | None = None) -> tuple[dict[str, Any], str]:
    """Find the CI section that applies to ``project``; return it and where it was found.

    Raises
    ------
    InvalidInput
        When ``config_file`` is missing or has no CI section, or a file is not valid TOML.
    """
    if config_file is not None:
        if not config_file.is_file():
            raise InvalidInput(f"config file {config_file} does not exist", field="config")
        found = _section(_read_toml(config_file), config_file.name == "pyproject.toml")
        if found is None:
            raise InvalidInput(
                f"{config_file} has no [ci] or [tool.loopml.ci] section", field="config"
            )
        return _table(found, config_file)
    candidates = [
        (project / CONFIG_FILE_NAME, False),
        (project / "pyproject.toml", True),
        (default_home() / CONFIG_FILE_NAME, False),
    ]
    for path, pyproject in candidates:
        if path.is_file():
            found = _section(_read_toml(path), pyproject)
            if found is not None:
                return _table(found, path)
    return {}, "flags only"


def _table(found: tuple[Any, str], path: Path) -> tuple[dict[str, Any], str]:
    table, name = found
    if not isinstance(table, dict):
        raise InvalidInput(f"{name} in {path} must be a table", field="config")
    return dict(table), f"{path} {name}"


def load_config(
    project: Path | str = ".",
    *,
    config_file: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
) -> CIConfig:
    """Read the CI settings of ``project``, with ``overrides`` (from flags) on top.

    Parameters
    ----------
    project : Path or str
        The project folder.
    config_file : Path or str, optional
        Read this file instead of looking for one.
    overrides : dict, optional
        Keys of the section to replace; None values are ignored.

    Raises
    ------
    InvalidInput
        Naming the key, when a key is unknown or its value has the wrong type.
    """
    folder = Path(project).resolve()
    if not folder.is_dir():
        raise InvalidInput(f"project folder {folder} does not exist", field="project")
    section, source = read_section(folder, Path(config_file) if config_file else None)
    values = {**section, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        parsed = _Section(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        key = ".".join([str(loc[0]), *(str(p) for p in loc[1:] if isinstance(p, int))])
        message = first["msg"]
        if len(loc) > 1 and isinstance(loc[1], str):
            # A union (gate: a table or a reference): pydantic names a branch, not the key.
            message = f"{type(values.get(str(loc[0]))).__name__} is not one of the accepted types"
        if first["type"] == "extra_forbidden":
            message += f" (known keys: {', '.join(_Section.model_fields)})"
        raise InvalidInput(f"ci setting {key!r}: {message}", field=key) from exc
    return CIConfig(
        project=folder,
        tests=parsed.tests,
        tests_timeout=parsed.tests_timeout,
        dataset=parsed.dataset,
        reference=parsed.reference,
        pipeline=parsed.pipeline,
        sample=parsed.sample,
        params=dict(parsed.params),
        model=parsed.model,
        gate=parsed.gate,
        skip=tuple(dict.fromkeys(parsed.skip)),
        fail_fast=parsed.fail_fast,
        cache=parsed.cache,
        executor=parsed.executor,
        source=source,
    )
