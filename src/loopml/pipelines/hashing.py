"""Versions of steps and pipelines: hashes of their source code and their own helpers.

A step's version covers its function's source and, recursively, the source of the plain
functions and classes it references that live in the same package as the step (its "own
helpers"): editing a helper invalidates the cache of the steps that call it, while library
code (numpy, scikit-learn, loopml) does not count.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any


def _source(obj: Any) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        # Source unavailable (e.g. defined in a REPL): fall back to the bytecode.
        code = getattr(obj, "__code__", None)
        return repr(code.co_code) + repr(code.co_consts) if code is not None else repr(obj)


def _top_package(module: str | None) -> str:
    return (module or "").split(".")[0]


def _referenced(function: types.FunctionType) -> list[Any]:
    names: set[str] = set()
    stack = [function.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    found = []
    for name in sorted(names):
        value = function.__globals__.get(name)
        if isinstance(value, types.FunctionType | type):
            found.append(value)
        elif isinstance(getattr(value, "fn", None), types.FunctionType):
            found.append(getattr(value, "fn"))  # noqa: B009 - another step used as a helper
    return found


def code_hash(function: Callable[..., Any]) -> str:
    """sha256 of a function's source and of the same-package helpers it references."""
    root = inspect.unwrap(function)
    package = _top_package(getattr(root, "__module__", None))
    digest = hashlib.sha256()
    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        digest.update(f"{getattr(obj, '__qualname__', '')}\n".encode())
        digest.update(_source(obj).encode())
        if isinstance(obj, types.FunctionType):
            for helper in _referenced(obj):
                if _top_package(getattr(helper, "__module__", None)) == package and (
                    package != "loopml"
                ):
                    pending.append(helper)
    return digest.hexdigest()


def combine(*parts: str) -> str:
    """sha256 over several strings, unambiguously separated."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part.encode())
    return digest.hexdigest()
