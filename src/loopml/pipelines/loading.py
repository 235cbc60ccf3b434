"""Import a user object named by ``package.module:attr`` or ``path/to/file.py:attr``.

Pipelines, loop policies, their training functions and feature definitions are all named
this way on the command line and in stored definitions, so they share one loader with one
behaviour:

- ``package.module:attr`` imports the module with the base folder (the working directory by
  default) first on ``sys.path`` for the duration of the import, as ``python -m`` would.
- ``path/to/file.py:attr`` (relative to the base folder) runs the file as the module named
  after it (``file``), with the file's folder first on ``sys.path`` meanwhile so that it can
  import its neighbours. The file is run again on every load, so edits are picked up, and
  objects defined in it can later be imported by reference (``file:attr``), which is how a
  stored policy names its training function.
- ``attr`` may be dotted (``module:Class.method``).

Every failure is an :class:`~loopml.errors.InvalidInput` naming the caller's field.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from loopml.errors import InvalidInput

__all__ = ["load_object"]

_lock = threading.RLock()
# Module names this loader ran from files; only those may be replaced by another file.
_loaded_from_files: dict[str, Path] = {}


@contextmanager
def _first_on_path(folder: Path) -> Iterator[None]:
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        # The imported code may have edited sys.path itself: remove only our entry.
        if entry in sys.path:
            sys.path.remove(entry)


def _module_file(module: ModuleType) -> Path | None:
    location = getattr(module, "__file__", None)
    return Path(location).resolve() if location else None


def _run_file(path: Path, spec_text: str, what: str, field: str) -> ModuleType:
    name = path.stem
    if not name.isidentifier():
        raise InvalidInput(
            f"cannot load {what} {spec_text!r}: {path.name} is not an importable module name",
            field=field,
        )
    existing = sys.modules.get(name)
    if (
        existing is not None
        and _module_file(existing) != path
        and _loaded_from_files.get(name) is None
    ):
        taken_by = _module_file(existing) or "a built-in module"
        raise InvalidInput(
            f"cannot load {what} {spec_text!r}: the module name {name!r} is already taken by "
            f"{taken_by}; rename the file",
            field=field,
        )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot load {what} {spec_text!r}: not a Python file", field=field)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _first_on_path(path.parent):
            spec.loader.exec_module(module)
    except BaseException:
        # A half-run module must not be found by a later import.
        if existing is not None:
            sys.modules[name] = existing
        else:
            sys.modules.pop(name, None)
        raise
    _loaded_from_files[name] = path
    return module


def load_object(
    spec: str,
    *,
    field: str,
    what: str | None = None,
    base_dir: str | Path | None = None,
) -> Any:
    """Import the object named by ``package.module:attr`` or ``path/to/file.py:attr``.

    Parameters
    ----------
    spec : str
        ``package.module:attr`` or ``path/to/file.py:attr``; ``attr`` may be dotted.
    field : str
        The caller's name for the reference (``"pipeline"``, ``"policy"``...), named by
        every error.
    what : str, optional
        What the object is, for messages (``"cannot load policy ..."``); ``field`` by
        default.
    base_dir : str or Path, optional
        Where relative file paths and top-level modules are looked up; the working
        directory by default.

    Returns
    -------
    Any
        The object.

    Raises
    ------
    InvalidInput
        A reference without ``:``, a file that does not exist, a module that cannot be
        imported (or raises while it is), or a missing attribute.

    Examples
    --------
    >>> load_object("json:dumps", field="function")({"a": 1})
    '{"a": 1}'
    """
    what = what or field
    if not isinstance(spec, str):
        raise InvalidInput(f"a {what} reference is a string, not {spec!r}", field=field)
    target, separator, attr = spec.strip().rpartition(":")
    if not separator or not target or not attr or not all(attr.split(".")):
        raise InvalidInput(
            f"{what} reference {spec!r} must look like module:{what} or path/to/file.py:{what}",
            field=field,
        )
    base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    with _lock:
        try:
            if target.endswith(".py"):
                path = (base / target).resolve()
                if not path.is_file():
                    raise InvalidInput(f"{target} does not exist", field=field)
                module = _run_file(path, spec, what, field)
            else:
                with _first_on_path(base):
                    module = importlib.import_module(target)
        except InvalidInput:
            raise
        except Exception as exc:  # noqa: BLE001 - importing user code may raise anything
            raise InvalidInput(
                f"cannot load {what} {spec!r}: cannot import {target}: {type(exc).__name__}: {exc}",
                field=field,
            ) from exc
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise InvalidInput(
                f"cannot load {what} {spec!r}: cannot import name {part!r} from "
                f"{getattr(found, '__name__', target)!r}",
                field=field,
            ) from None
    return found
