"""The dataset use cases: register, resolve, read, tag, delete, query, profile, validate."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopml.data._canonical import ContentHasher, open_source
from loopml.entities.data import ColumnInfo, Dataset, DatasetVersion, ValidationRecord
from loopml.errors import Conflict, InvalidInput, NotFound
from loopml.store.base import BlobStore, DatasetStore
from loopml.tracking import validation

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.profile import DatasetProfile
    from loopml.data.schema import Schema
    from loopml.data.validation import ValidationResult

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
_VERSION_SPEC = re.compile(r"^(?P<name>[^@]+)@(?P<version>.+)$")
DATASET_KIND = "dataset_version"
RUN_KIND = "run"
MODEL_VERSION_KIND = "model_version"


def check_dataset_name(name: Any) -> str:
    """Dataset names are identifiers: letters, digits, ``_``, ``-`` and ``.``, no paths."""
    checked = validation.check_name(name, "name")
    if not _NAME.match(checked) or ".." in checked:
        raise InvalidInput(
            f"dataset name {checked!r} may only contain letters, digits, '_', '-' and '.', "
            "and must start with a letter or digit",
            field="name",
        )
    return checked


def split_reference(reference: str) -> tuple[str, str | None]:
    """Split ``name@v3`` / ``name@<hash>`` / ``name`` into name and version spec."""
    match = _VERSION_SPEC.match(reference)
    if match:
        return match.group("name"), match.group("version")
    return reference, None


class DatasetService:
    """Versioned datasets over a :class:`DatasetStore` (metadata) and a blob store (Parquet).

    Parameters
    ----------
    store : DatasetStore
        Metadata backend.
    blobs : BlobStore
        Where the Parquet files go, content-addressed.
    """

    def __init__(self, store: DatasetStore, blobs: BlobStore) -> None:
        self.store = store
        self.blobs = blobs

    # -- register -----------------------------------------------------------------------
    def register(
        self,
        name: str,
        data: Any,
        *,
        description: str = "",
        tags: dict[str, Any] | None = None,
        profile: bool = True,
        run_id: str | None = None,
    ) -> DatasetVersion:
        """Store a snapshot as a new version, or return the version that has this content.

        The source is streamed batch by batch: hashed, written to a temporary Parquet file
        and (optionally) profiled in the same pass, then stored as one blob. Nothing is
        recorded unless every step succeeds.
        """
        from loopml.data.profile import profile_table

        name = check_dataset_name(name)
        checked_tags = validation.check_tags(tags or {})
        source = open_source(data)
        hasher = ContentHasher(source.schema)
        with _temporary_parquet() as path:
            with pq.ParquetWriter(path, source.schema, compression="zstd") as writer:

                def tee() -> Iterator[pa.RecordBatch]:
                    for batch in source.batches:
                        hasher.update(batch)
                        writer.write_batch(batch)
                        yield batch

                profile_json = None
                try:
                    if profile:
                        profile_json = json.dumps(profile_table(tee()).to_dict())
                    else:
                        _drain(tee())
                except InvalidInput:
                    if hasher.rows:
                        raise
            if hasher.rows == 0:
                raise InvalidInput(f"{source.description} has no rows", field="data")
            blob_sha256, size = self.blobs.put_file(str(path))
        version = DatasetVersion(
            name=name,
            version=0,
            digest=hasher.hexdigest(),
            blob_sha256=blob_sha256,
            num_rows=hasher.rows,
            num_columns=len(source.schema),
            size_bytes=size,
            columns=tuple(ColumnInfo(f.name, str(f.type)) for f in source.schema),
            created_time=0,
            source=source.description if isinstance(data, str | Path) else type(data).__name__,
            run_id=run_id,
            tags=checked_tags,
        )
        stored, _ = self.store.add_dataset_version(version, profile_json, description)
        if run_id is not None:
            self.store.add_lineage(RUN_KIND, run_id, DATASET_KIND, stored.uri, "output")
        return stored

    # -- resolve and read ---------------------------------------------------------------
    def resolve(self, name: str, version: int | str | None = None) -> DatasetVersion:
        """Find a version by number (``3``, ``"v3"``), ``"latest"``/None, or a digest prefix.

        ``name`` may also carry the version, as in ``"churn@v3"``.
        """
        base, spec = split_reference(name)
        if spec is not None:
            if version is not None:
                raise InvalidInput(f"{name!r} already names a version", field="version")
            version = spec
        base = check_dataset_name(base)
        if version is None or version == "latest":
            return self.store.get_dataset_version(base)
        if isinstance(version, bool):
            raise InvalidInput("version must be a number, 'latest' or a hash", field="version")
        if isinstance(version, int):
            return self.store.get_dataset_version(base, version)
        text = str(version).strip()
        if re.fullmatch(r"v?\d+", text) and len(text.lstrip("v")) < 10:
            return self.store.get_dataset_version(base, int(text.lstrip("v")))
        if re.fullmatch(r"[0-9a-f]{6,64}", text):
            matches = self.store.find_dataset_versions_by_digest(base, text)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidInput(
                    f"hash prefix {text!r} matches several versions of {base!r}", field="version"
                )
            raise NotFound(f"dataset {base!r} has no version with hash {text!r}", field="version")
        raise InvalidInput(
            f"version {version!r} is not a number, 'latest' or a hash prefix", field="version"
        )

    @contextmanager
    def local_file(self, version: DatasetVersion) -> Iterator[Path]:
        """A local path of the version's Parquet file (downloaded when the store is remote)."""
        local_path = getattr(self.blobs, "local_path", None)
        if callable(local_path):
            yield Path(local_path(version.blob_sha256))
            return
        with _temporary_parquet() as path:
            with self.blobs.open(version.blob_sha256) as source, path.open("wb") as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
            yield path

    def read(
        self,
        name: str,
        version: int | str | None = None,
        *,
        as_arrow: bool = False,
        columns: list[str] | None = None,
        run_id: str | None = None,
    ) -> pd.DataFrame | pa.Table:
        """Load a version; inside a run, record it as the run's input."""
        resolved = self.resolve(name, version)
        known = {c.name for c in resolved.columns}
        unknown = [c for c in columns or [] if c not in known]
        if unknown:
            raise InvalidInput(
                f"{resolved.uri} has no column(s) {', '.join(unknown)}", field="columns"
            )
        with self.local_file(resolved) as path:
            table = pq.read_table(path, columns=columns)
        if run_id is not None:
            self.store.add_lineage(DATASET_KIND, resolved.uri, RUN_KIND, run_id, "input")
        return table if as_arrow else table.to_pandas()

    # -- catalogue ----------------------------------------------------------------------
    def list_datasets(self) -> list[Dataset]:
        """Every dataset with its latest version number."""
        return self.store.list_datasets()

    def list_versions(self, name: str) -> list[DatasetVersion]:
        """A dataset's versions, oldest first."""
        return self.store.list_dataset_versions(check_dataset_name(name))

    def describe(self, name: str, version: int | str | None = None) -> dict[str, Any]:
        """Version metadata, profile summary, attached schema and validation results."""
        resolved = self.resolve(name, version)
        profile_json = self.store.get_dataset_profile(resolved.name, resolved.version)
        return {
            "dataset": self.store.get_dataset(resolved.name).to_dict(),
            "version": resolved.to_dict(),
            "profile": json.loads(profile_json) if profile_json else None,
            "schema": self.store.get_dataset_schema(resolved.name),
            "validations": [
                r.to_dict()
                for r in self.store.list_validation_results(resolved.name, resolved.version)
            ],
            "lineage": [
                e.to_dict() for e in self.store.list_lineage(source=(DATASET_KIND, resolved.uri))
            ]
            + [e.to_dict() for e in self.store.list_lineage(target=(DATASET_KIND, resolved.uri))],
        }

    def tag(self, name: str, version: int | str | None, key: str, value: Any) -> None:
        """Tag a version."""
        resolved = self.resolve(name, version)
        ((key, text),) = validation.check_tags({key: value}).items()
        self.store.set_dataset_version_tag(resolved.name, resolved.version, key, text)

    def delete(
        self,
        name: str,
        version: int | str | None = None,
        *,
        all_versions: bool = False,
        force: bool = False,
    ) -> list[DatasetVersion]:
        """Delete one version (or all), refusing while a model version's lineage uses it.

        Blobs no other dataset version or run artifact points at are removed too.
        """
        if all_versions:
            targets = self.list_versions(name)
        else:
            targets = [self.resolve(name, version)]
        if not force:
            for target in targets:
                users = [
                    e
                    for e in self.store.list_lineage(source=(DATASET_KIND, target.uri))
                    if e.target_kind == MODEL_VERSION_KIND
                ]
                if users:
                    raise Conflict(
                        f"{target.uri} is in the lineage of model version(s) "
                        f"{', '.join(e.target_id for e in users)}; pass force=True to delete",
                        field="name",
                    )
        deleted = []
        for target in targets:
            deleted.append(self.store.delete_dataset_version(target.name, target.version))
            if not self.store.blob_in_use(target.blob_sha256):
                self.blobs.delete(target.blob_sha256)
        return deleted

    def record_input(self, name: str, version: int | str | None, run_id: str) -> DatasetVersion:
        """Record that a run used a dataset version (for inputs read outside ``read``)."""
        resolved = self.resolve(name, version)
        self.store.add_lineage(DATASET_KIND, resolved.uri, RUN_KIND, run_id, "input")
        return resolved

    def runs_using(self, name: str, version: int | str | None = None) -> list[str]:
        """Ids of runs that read the version."""
        resolved = self.resolve(name, version)
        return [
            e.target_id
            for e in self.store.list_lineage(source=(DATASET_KIND, resolved.uri))
            if e.target_kind == RUN_KIND
        ]

    def run_inputs(self, run_id: str) -> list[str]:
        """``name@vN`` of every dataset version a run read."""
        return [
            e.source_id
            for e in self.store.list_lineage(target=(RUN_KIND, run_id))
            if e.source_kind == DATASET_KIND
        ]

    def run_lineage(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """The dataset versions a run read or wrote and the model versions registered from it.

        Parameters
        ----------
        run_id : str
            The run; the caller checks that it exists (an unknown id has no lineage).

        Returns
        -------
        dict
            ``{"datasets": [{"name", "version", "digest", "context"}], "models":
            [{"name", "version"}]}``; ``context`` is ``input`` or ``output`` and ``digest``
            is None for a version deleted since. Both lists are sorted.
        """
        edges = [
            (e.source_id, "input")
            for e in self.store.list_lineage(target=(RUN_KIND, run_id))
            if e.source_kind == DATASET_KIND
        ]
        models = []
        for edge in self.store.list_lineage(source=(RUN_KIND, run_id)):
            if edge.target_kind == DATASET_KIND:
                edges.append((edge.target_id, "output"))
            elif edge.target_kind == MODEL_VERSION_KIND:
                model, _, model_version = edge.target_id.rpartition("/")
                if model_version.isdigit():
                    models.append({"name": model, "version": int(model_version)})
        datasets = []
        for uri, context in edges:
            name, spec = split_reference(uri)
            number = int(spec[1:]) if spec and spec[1:].isdigit() else None
            digest: str | None = None
            if number is not None:
                try:
                    digest = self.store.get_dataset_version(name, number).digest
                except NotFound:
                    pass
            datasets.append({"name": name, "version": number, "digest": digest, "context": context})
        datasets.sort(key=lambda d: (d["context"], d["name"], d["version"] or 0))
        models.sort(key=lambda m: (m["name"], m["version"]))
        return {"datasets": datasets, "models": models}

    # -- schema, profile, validation ----------------------------------------------------
    def set_schema(self, name: str, schema: Schema | None) -> None:
        """Attach a schema to a dataset name (None detaches it)."""
        self.store.set_dataset_schema(
            check_dataset_name(name), None if schema is None else schema.to_yaml()
        )

    def get_schema(self, name: str) -> Schema | None:
        """The schema attached to a dataset name, or None."""
        from loopml.data.schema import Schema

        text = self.store.get_dataset_schema(check_dataset_name(name))
        return None if text is None else Schema.from_yaml(text)

    def profile(self, name: str, version: int | str | None = None) -> DatasetProfile:
        """The version's stored profile, computed and stored now if missing."""
        from loopml.data.profile import DatasetProfile, profile_table

        resolved = self.resolve(name, version)
        stored = self.store.get_dataset_profile(resolved.name, resolved.version)
        if stored:
            return DatasetProfile.from_dict(json.loads(stored))
        with self.local_file(resolved) as path:
            computed = profile_table(pq.ParquetFile(path).iter_batches(batch_size=65_536))
        self.store.set_dataset_profile(
            resolved.name, resolved.version, json.dumps(computed.to_dict())
        )
        return computed

    def validate(
        self,
        data: Any,
        version: int | str | None = None,
        *,
        schema: Schema | None = None,
        reference: Any = None,
        **options: Any,
    ) -> tuple[ValidationResult, ValidationRecord | None]:
        """Validate a dataset version (or a DataFrame) against a schema and/or a reference.

        ``data`` and ``reference`` may be DataFrames or dataset references (``"churn@v2"``).
        For a dataset without an explicit schema, its attached schema is used. Results of
        dataset versions are stored and returned with their record.
        """
        import pandas as pd

        from loopml.data.validation import validate

        resolved: DatasetVersion | None = None
        if isinstance(data, pd.DataFrame):
            frame = data
        elif isinstance(data, str):
            resolved = self.resolve(data, version)
            frame = self.read(resolved.name, resolved.version)
            if schema is None:
                schema = self.get_schema(resolved.name)
        else:
            raise InvalidInput("data must be a DataFrame or a dataset name", field="data")
        reference_name: str | None = None
        reference_frame: pd.DataFrame | None = None
        if isinstance(reference, str):
            reference_version = self.resolve(reference)
            reference_name = reference_version.uri
            reference_frame = self.read(
                reference_version.name,
                reference_version.version,
            )
        elif isinstance(reference, pd.DataFrame):
            reference_frame = reference
        elif reference is not None:
            raise InvalidInput("reference must be a DataFrame or a dataset name", field="reference")
        result = validate(frame, schema=schema, reference=reference_frame, **options)
        record = None
        if resolved is not None:
            record = self.store.add_validation_result(
                resolved.name,
                resolved.version,
                result.passed,
                json.dumps(result.to_dict()),
                reference_name,
            )
        return result, record

    # -- SQL ----------------------------------------------------------------------------
    def sql(
        self, query: str, *, as_arrow: bool = False, run_id: str | None = None
    ) -> pd.DataFrame | pa.Table:
        """Run DuckDB SQL where table names are datasets (``churn`` or ``"churn@v3"``)."""
        from loopml.data.sql import run_sql

        return run_sql(self, query, as_arrow=as_arrow, run_id=run_id)


def _drain(batches: Iterator[pa.RecordBatch]) -> None:
    for _ in batches:
        pass


@contextmanager
def _temporary_parquet() -> Iterator[Path]:
    handle, name = tempfile.mkstemp(prefix="loopml-", suffix=".parquet")
    os.close(handle)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
