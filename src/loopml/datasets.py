"""Versioned datasets, the fluent way: ``lm.datasets.register(...)``, ``lm.datasets.get(...)``.

Examples
--------
>>> import loopml as lm
>>> v1 = lm.datasets.register("churn", frame)            # doctest: +SKIP
>>> lm.datasets.get("churn").shape                        # doctest: +SKIP
>>> lm.datasets.sql('select plan, avg(tenure) from churn group by plan')  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.config import load_settings
from loopml.data.datasets import DatasetService
from loopml.entities.data import Dataset, DatasetVersion

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopml.data.profile import DatasetProfile
    from loopml.data.schema import Schema
    from loopml.data.validation import ValidationResult

_lock = threading.Lock()
_service: DatasetService | None = None
_service_key: tuple[str, str, str | None] | None = None


def get_service() -> DatasetService:
    """The dataset service for the current settings."""
    global _service, _service_key
    settings = load_settings()
    key = (settings.resolved_store_uri, settings.resolved_artifact_uri, settings.tracking_uri)
    with _lock:
        if _service is None or key != _service_key:
            from loopml.store.registry import open_data_stores

            stores = open_data_stores(settings)
            _service = DatasetService(stores.datasets, stores.blobs)
            _service_key = key
        return _service


def _active_run_id() -> str | None:
    from loopml.tracking.fluent import active_run

    run = active_run()
    return None if run is None else run.run_id


def register(
    name: str,
    data: pd.DataFrame | pa.Table | str | Path,
    *,
    description: str = "",
    tags: dict[str, Any] | None = None,
    profile: bool = True,
) -> DatasetVersion:
    """Register a DataFrame, Arrow table, or Parquet/CSV path or URL as a dataset version.

    The same content registered again returns the existing version (no second copy).
    Inside a run, the new version is recorded as the run's output.
    """
    return get_service().register(
        name, data, description=description, tags=tags, profile=profile, run_id=_active_run_id()
    )


def get(
    name: str,
    version: int | str | None = None,
    *,
    as_arrow: bool = False,
    columns: builtins.list[str] | None = None,
) -> pd.DataFrame | pa.Table:
    """Load a dataset version (``None``/``"latest"``, ``3``, ``"v3"``, a hash prefix).

    Inside a run, the version is recorded as the run's input.
    """
    return get_service().read(
        name, version, as_arrow=as_arrow, columns=columns, run_id=_active_run_id()
    )


def resolve(name: str, version: int | str | None = None) -> DatasetVersion:
    """The version metadata (digest, rows, columns, ...) without reading the data."""
    return get_service().resolve(name, version)


def list() -> builtins.list[Dataset]:  # noqa: A001 - mirrors the CLI verb
    """Every dataset with its latest version number."""
    return get_service().list_datasets()


def versions(name: str) -> builtins.list[DatasetVersion]:
    """A dataset's versions, oldest first."""
    return get_service().list_versions(name)


def describe(name: str, version: int | str | None = None) -> dict[str, Any]:
    """Metadata, profile, schema, validation results and lineage of a version."""
    return get_service().describe(name, version)


def tag(name: str, key: str, value: Any, version: int | str | None = None) -> None:
    """Tag a version (the latest by default)."""
    get_service().tag(name, version, key, value)


def delete(
    name: str, version: int | str | None = None, *, all_versions: bool = False, force: bool = False
) -> builtins.list[DatasetVersion]:
    """Delete a version (or all); refused while a model version's lineage uses it."""
    return get_service().delete(name, version, all_versions=all_versions, force=force)


def sql(query: str, *, as_arrow: bool = False) -> pd.DataFrame | pa.Table:
    """Query datasets with DuckDB SQL; ``churn`` is the latest version, ``"churn@v3"`` v3."""
    return get_service().sql(query, as_arrow=as_arrow, run_id=_active_run_id())


def profile(name: str, version: int | str | None = None) -> DatasetProfile:
    """The version's per-column statistics."""
    return get_service().profile(name, version)


def set_schema(name: str, schema: Schema | None) -> None:
    """Attach a schema to a dataset name; ``validate`` then uses it by default."""
    get_service().set_schema(name, schema)


def get_schema(name: str) -> Schema | None:
    """The schema attached to a dataset name, or None."""
    return get_service().get_schema(name)


def validate(
    name: str,
    version: int | str | None = None,
    *,
    schema: Schema | None = None,
    reference: str | pd.DataFrame | None = None,
    **options: Any,
) -> ValidationResult:
    """Validate a version against its schema and/or a reference; the result is stored."""
    result, _ = get_service().validate(name, version, schema=schema, reference=reference, **options)
    return result
