"""Parsed search expressions, the form in which run filters travel to the stores."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FieldKind(str, enum.Enum):
    """Which part of a run a search clause looks at."""

    METRIC = "metrics"
    PARAM = "params"
    TAG = "tags"
    ATTRIBUTE = "attributes"


#: Run attributes that filters and ``order_by`` may name.
SEARCHABLE_ATTRIBUTES = (
    "run_id",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "user",
    "experiment_id",
    "parent_run_id",
)
#: Attributes compared as numbers rather than strings.
NUMERIC_ATTRIBUTES = ("start_time", "end_time")
COMPARATORS = ("<", "<=", "=", "!=", ">=", ">", "LIKE", "ILIKE")


@dataclass(frozen=True)
class Clause:
    """One comparison: ``<kind>.<key> <op> <value>``; clauses of a filter are AND-ed."""

    kind: FieldKind
    key: str
    op: str
    value: str | float


@dataclass(frozen=True)
class OrderBy:
    """One sort key; runs missing the key sort last."""

    kind: FieldKind
    key: str
    ascending: bool = True


def _quote_key(key: str) -> str:
    return key if key.replace("_", "a").replace("-", "a").isalnum() else f"`{key}`"


def format_clause(clause: Clause) -> str:
    """Render a clause back into filter syntax (the parser reads it back unchanged)."""
    if isinstance(clause.value, float | int):
        value = repr(float(clause.value))
    else:
        value = "'" + str(clause.value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{clause.kind.value}.{_quote_key(clause.key)} {clause.op} {value}"


def format_filter(clauses: list[Clause] | tuple[Clause, ...]) -> str:
    """Render clauses as one filter string joined by ``and``."""
    return " and ".join(format_clause(c) for c in clauses)


def format_order_by(order: OrderBy) -> str:
    """Render a sort key as ``kind.key ASC|DESC``."""
    return f"{order.kind.value}.{_quote_key(order.key)} {'ASC' if order.ascending else 'DESC'}"
