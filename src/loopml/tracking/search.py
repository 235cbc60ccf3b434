"""Parser of run filter strings and ``order_by`` keys (MLflow's syntax).

A filter is clauses joined by ``AND``::

    metrics.accuracy > 0.9 and params.model = 'rf' and tags."data set" LIKE 'churn%'
    attributes.status != 'FAILED' and start_time >= 1700000000000

Keys are ``metrics.``, ``params.``, ``tags.`` or ``attributes.`` (the prefix may be omitted for
attributes); a key with spaces or dots is quoted with double quotes or backticks. Metric values
are numbers; everything else is a quoted string (numbers are accepted for the time attributes).
"""

from __future__ import annotations

import re

from loopml.entities.search import (
    COMPARATORS,
    NUMERIC_ATTRIBUTES,
    SEARCHABLE_ATTRIBUTES,
    Clause,
    FieldKind,
    OrderBy,
)
from loopml.errors import InvalidInput

_TOKEN = re.compile(
    r"""
    \s*(?:
        (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
      | (?P<quoted_ident>`[^`]*`)
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<op><=|>=|!=|<>|==|=|<|>)
      | (?P<word>[A-Za-z_][\w\-]*)
      | (?P<dot>\.)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_KIND_ALIASES = {
    "metric": FieldKind.METRIC,
    "metrics": FieldKind.METRIC,
    "param": FieldKind.PARAM,
    "params": FieldKind.PARAM,
    "parameter": FieldKind.PARAM,
    "parameters": FieldKind.PARAM,
    "tag": FieldKind.TAG,
    "tags": FieldKind.TAG,
    "attribute": FieldKind.ATTRIBUTE,
    "attributes": FieldKind.ATTRIBUTE,
    "attr": FieldKind.ATTRIBUTE,
    "run": FieldKind.ATTRIBUTE,
}
_ATTRIBUTE_ALIASES = {"name": "run_name", "id": "run_id", "created": "start_time"}


def _error(message: str, source: str) -> InvalidInput:
    return InvalidInput(f"invalid filter {source!r}: {message}", field="filter_string")


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    stripped = source.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.lastgroup is None:
            raise _error(f"cannot read from position {position}", source)
        kind = match.lastgroup
        if kind == "bad":
            raise _error(f"unexpected character {match.group(kind)!r}", source)
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(token: str) -> str:
    quote = token[0]
    body = token[1:-1]
    if quote == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body) if quote in "'\"" else body


class _Cursor:
    def __init__(self, tokens: list[tuple[str, str]], source: str) -> None:
        self.tokens = tokens
        self.index = 0
        self.source = source

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, what: str) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _error(f"expected {what} but the filter ended", self.source)
        self.index += 1
        return token


def _parse_key(cursor: _Cursor) -> tuple[FieldKind, str]:
    kind_token, text = cursor.take("a key such as metrics.accuracy")
    if kind_token not in ("word", "quoted_ident", "string"):
        raise _error(f"expected a key, got {text!r}", cursor.source)
    first = text if kind_token == "word" else _unquote(text)
    following = cursor.peek()
    if kind_token == "word" and following is not None and following[0] == "dot":
        kind = _KIND_ALIASES.get(first.lower())
        if kind is None:
            raise _error(
                f"unknown key type {first!r}: use metrics., params., tags. or attributes.",
                cursor.source,
            )
        cursor.take("dot")
        name_kind, name = cursor.take("a key name")
        if name_kind not in ("word", "quoted_ident", "string"):
            raise _error(f"expected a key name after {first}., got {name!r}", cursor.source)
        key = name if name_kind == "word" else _unquote(name)
        # Unquoted metric names may contain dots: metrics.val.loss
        while name_kind == "word" and (nxt := cursor.peek()) is not None and nxt[0] == "dot":
            cursor.take("dot")
            part_kind, part = cursor.take("a key name")
            if part_kind != "word":
                raise _error(f"unexpected {part!r} in key {key!r}", cursor.source)
            key = f"{key}.{part}"
    else:
        kind, key = FieldKind.ATTRIBUTE, first
    if kind is FieldKind.ATTRIBUTE:
        key = _ATTRIBUTE_ALIASES.get(key, key)
        if key not in SEARCHABLE_ATTRIBUTES:
            raise _error(
                f"unknown attribute {key!r}; searchable: {', '.join(SEARCHABLE_ATTRIBUTES)}",
                cursor.source,
            )
    if not key:
        raise _error("empty key", cursor.source)
    return kind, key


def parse_filter(filter_string: str | None) -> list[Clause]:
    """Parse a filter string into clauses (AND-ed).

    Raises
    ------
    InvalidInput
        With the field ``filter_string`` and a message saying what is wrong.
    """
    if filter_string is None or not filter_string.strip():
        return []
    cursor = _Cursor(_tokenize(filter_string), filter_string)
    clauses: list[Clause] = []
    while True:
        kind, key = _parse_key(cursor)
        op_kind, op_text = cursor.take("a comparator")
        op = op_text.upper()
        if op_kind == "op":
            op = {"==": "=", "<>": "!="}.get(op, op)
        elif op_kind == "word" and op in ("LIKE", "ILIKE"):
            pass
        elif op_kind == "word" and op == "NOT":
            raise _error("NOT is not supported; use != instead", filter_string)
        else:
            raise _error(
                f"expected a comparator ({', '.join(COMPARATORS)}) after {key!r}, got {op_text!r}",
                filter_string,
            )
        value_kind, value_text = cursor.take("a value")
        value: str | float
        numeric = kind is FieldKind.METRIC or (
            kind is FieldKind.ATTRIBUTE and key in NUMERIC_ATTRIBUTES
        )
        if numeric:
            if op in ("LIKE", "ILIKE"):
                raise _error(f"{op} needs a string key, not {key!r}", filter_string)
            if value_kind != "number":
                raise _error(
                    f"{key!r} is compared with a number, got {value_text!r}", filter_string
                )
            value = float(value_text)
        else:
            if value_kind != "string":
                raise _error(
                    f"{key!r} is compared with a quoted string, got {value_text!r}",
                    filter_string,
                )
            value = _unquote(value_text)
            if kind is FieldKind.ATTRIBUTE and key == "status":
                value = value.upper() if op not in ("LIKE", "ILIKE") else value
        clauses.append(Clause(kind=kind, key=key, op=op, value=value))
        following = cursor.peek()
        if following is None:
            return clauses
        if following[0] == "word" and following[1].upper() == "AND":
            cursor.take("AND")
            continue
        if following[0] == "word" and following[1].upper() == "OR":
            raise _error("OR is not supported; run two searches instead", filter_string)
        raise _error(f"expected AND after a comparison, got {following[1]!r}", filter_string)


def parse_order_by(order_by: list[str] | tuple[str, ...] | None) -> list[OrderBy]:
    """Parse keys such as ``"metrics.accuracy DESC"`` or ``"start_time"``."""
    parsed: list[OrderBy] = []
    for item in order_by or []:
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput(f"invalid order_by entry {item!r}", field="order_by")
        tokens = _tokenize(item)
        direction = "ASC"
        if tokens and tokens[-1][0] == "word" and tokens[-1][1].upper() in ("ASC", "DESC"):
            direction = tokens.pop()[1].upper()
        cursor = _Cursor(tokens, item)
        try:
            kind, key = _parse_key(cursor)
        except InvalidInput as exc:
            raise InvalidInput(
                exc.message.replace("filter", "order_by", 1), field="order_by"
            ) from None
        if cursor.peek() is not None:
            raise InvalidInput(
                f"invalid order_by {item!r}: expected '<key> [ASC|DESC]'", field="order_by"
            )
        parsed.append(OrderBy(kind=kind, key=key, ascending=direction == "ASC"))
    return parsed
