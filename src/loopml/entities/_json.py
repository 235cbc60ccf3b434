"""Strict JSON for the plain dictionaries that entities and results turn into."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """Make ``value`` strict JSON: NaN and infinities become strings, tuples lists.

    JSON has no NaN or infinity, and Python's encoder would write them as bare tokens that
    other parsers refuse; the REST API and ``--json`` output both send them as ``"nan"``,
    ``"inf"`` and ``"-inf"``.

    Parameters
    ----------
    value : Any
        Nested mappings, lists, tuples and scalars; mapping keys become strings.

    Returns
    -------
    Any
        The same structure, with every non-finite float replaced by its string.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
