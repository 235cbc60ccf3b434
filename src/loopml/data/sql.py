"""SQL over registered datasets with DuckDB: table names resolve to dataset versions."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopml.data.datasets import DatasetService


def referenced_tables(connection: Any, query: str) -> set[str]:
    """Names of the tables a single SELECT statement reads (CTE names excluded).

    Raises
    ------
    InvalidInput
        When the text is not exactly one valid SELECT statement.
    """
    import duckdb

    try:
        serialized = connection.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0]
    except duckdb.Error as exc:
        raise InvalidInput(f"invalid SQL: {exc}", field="query") from exc
    tree = json.loads(serialized)
    if tree.get("error"):
        message = tree.get("error_message", "not a SELECT statement")
        raise InvalidInput(f"only single SELECT queries are supported: {message}", field="query")
    if len(tree.get("statements", [])) != 1:
        raise InvalidInput("give exactly one SELECT statement", field="query")
    tables: set[str] = set()
    ctes: set[str] = set()
    _collect(tree, tables, ctes)
    return tables - ctes


def _collect(node: Any, tables: set[str], ctes: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE" and node.get("table_name"):
            tables.add(node["table_name"])
        for entry in (node.get("cte_map") or {}).get("map", []):
            ctes.add(entry["key"])
        for value in node.values():
            _collect(value, tables, ctes)
    elif isinstance(node, list):
        for value in node:
            _collect(value, tables, ctes)


def run_sql(
    service: DatasetService, query: str, *, as_arrow: bool = False, run_id: str | None = None
) -> pd.DataFrame | pa.Table:
    """Run a query whose tables are datasets: ``churn`` (latest) or ``"churn@v3"``.

    Each referenced dataset becomes a DuckDB view over its Parquet file, so DuckDB reads
    only the columns and row groups the query needs. Inside a run, every dataset version
    the query touched is recorded as a run input.
    """
    import duckdb

    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the SQL query is empty", field="query")
    connection = duckdb.connect(":memory:")
    names = referenced_tables(connection, query)
    with ExitStack() as stack:
        versions = []
        for name in sorted(names):
            try:
                version = service.resolve(name)
            except (NotFound, InvalidInput) as exc:
                raise NotFound(
                    f"table {name!r} is not a registered dataset ({exc.message})", field="query"
                ) from exc
            path = stack.enter_context(service.local_file(version))
            quoted = '"' + name.replace('"', '""') + '"'
            literal = "'" + str(path).replace("'", "''") + "'"
            connection.execute(f"CREATE VIEW {quoted} AS SELECT * FROM read_parquet({literal})")
            versions.append(version)
        try:
            result: Any = connection.execute(query).to_arrow_table()
        except duckdb.Error as exc:
            raise InvalidInput(f"the query failed: {exc}", field="query") from exc
        finally:
            connection.close()
    if run_id is not None:
        for version in versions:
            service.record_input(version.name, version.version, run_id)
    return result if as_arrow else result.to_pandas()
