"""Reading dataset sources as Arrow record batches and hashing their canonical content.

The content digest must not depend on where the data came from (a DataFrame, a Parquet or a
CSV file), on how it was split into batches, or on bytes Arrow leaves undefined (the value
slot under a null). So each column is hashed separately as a stream of: validity bytes,
value bytes with null slots zeroed, and for strings the value lengths plus the bytes — all
independent of batch boundaries. Dictionary columns are decoded first, large string types
narrowed, and pandas metadata dropped, so the same table always gives the same digest.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidInput

BATCH_ROWS = 65_536
DIGEST_PREFIX = b"loopml-dataset-v1\n"


@dataclass
class SourceReader:
    """Record batches of a source with its canonical schema."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    description: str


def _unsupported(field: pa.Field) -> str | None:
    kind = field.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    nested = (
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_struct(kind)
        or pa.types.is_map(kind)
        or pa.types.is_union(kind)
        or pa.types.is_fixed_size_list(kind)
    )
    if nested:
        return f"column {field.name!r} has nested type {kind}; flatten it into scalar columns"
    return None


def canonical_type(kind: pa.DataType) -> pa.DataType:
    """The type a column is stored and hashed as."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_null(kind):
        return pa.string()
    return kind


def canonical_schema(schema: pa.Schema, where: str) -> pa.Schema:
    """Check names and types; return the schema without metadata and with canonical types."""
    if len(schema) == 0:
        raise InvalidInput(f"{where} has no columns", field="data")
    names = schema.names
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"{where} has a column without a name", field="data")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"{where} has duplicate columns: {', '.join(duplicates)}", field="data")
    fields = []
    for field in schema:
        problem = _unsupported(field)
        if problem:
            raise InvalidInput(f"{where}: {problem}", field=field.name)
        fields.append(pa.field(field.name, canonical_type(field.type), nullable=True))
    return pa.schema(fields)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to the canonical schema."""
    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if column.type != field.type:
            column = column.cast(field.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class ContentHasher:
    """Streams record batches into one digest that ignores batch boundaries."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows = 0
        # Separate streams per column and per kind of bytes: interleaving them per batch
        # would make the digest depend on where batches start and end.
        self._values = [hashlib.sha256() for _ in schema]
        self._lengths = [hashlib.sha256() for _ in schema]
        self._validity = [hashlib.sha256() for _ in schema]

    def update(self, batch: pa.RecordBatch) -> None:
        """Add one batch (already conformed to the schema)."""
        self.rows += batch.num_rows
        for index, column in enumerate(batch.columns):
            valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
            # One byte per row: packed bits would pad each batch and depend on its length.
            self._validity[index].update(valid.astype(np.uint8).tobytes())
            _hash_values(column, valid, self._values[index], self._lengths[index])

    def hexdigest(self) -> str:
        """The sha256 of schema, row count and every column's values and validity."""
        total = hashlib.sha256(DIGEST_PREFIX)
        total.update(json.dumps([[f.name, str(f.type)] for f in self.schema]).encode())
        total.update(str(self.rows).encode())
        for values, lengths, validity in zip(
            self._values, self._lengths, self._validity, strict=True
        ):
            total.update(values.digest())
            total.update(lengths.digest())
            total.update(validity.digest())
        return total.hexdigest()


def _hash_values(column: pa.Array, valid: np.ndarray[Any, Any], digest: Any, lengths: Any) -> None:
    kind = column.type
    count = len(column)
    if pa.types.is_boolean(kind):
        values = pc.fill_null(column, False).to_numpy(zero_copy_only=False)
        digest.update(values.astype(np.uint8).tobytes())
    elif pa.types.is_string(kind) or pa.types.is_binary(kind):
        filled = pc.fill_null(column, "" if pa.types.is_string(kind) else b"")
        offsets_buffer, data_buffer = filled.buffers()[1], filled.buffers()[2]
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
            filled.offset : filled.offset + count + 1
        ]
        lengths.update(np.diff(offsets).astype(np.int64).tobytes())
        if data_buffer is not None and count:
            digest.update(memoryview(data_buffer)[offsets[0] : offsets[-1]])
    elif kind.bit_width and kind.bit_width % 8 == 0:
        width = kind.bit_width // 8
        buffer = column.buffers()[1]
        raw = np.frombuffer(buffer, dtype=np.uint8)[
            column.offset * width : (column.offset + count) * width
        ].reshape(count, width)
        if not valid.all():
            raw = raw.copy()
            raw[~valid] = 0
        digest.update(raw.tobytes())
    else:  # pragma: no cover - canonical_schema only lets fixed-width and string types through
        raise InvalidInput(f"cannot hash a column of type {kind}", field="data")


def _rebatch(table: pa.Table) -> Iterator[pa.RecordBatch]:
    yield from table.to_batches(max_chunksize=BATCH_ROWS)


def from_pandas(frame: Any) -> pa.Table:
    """Convert a DataFrame, naming the column when a conversion fails."""
    import pandas as pd

    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    for name in frame.columns:
        if not isinstance(name, str):
            raise InvalidInput(f"column names must be strings, got {name!r}", field="data")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        column = _column_in_message(str(exc), list(frame.columns))
        raise InvalidInput(
            f"column {column!r} cannot be stored: it mixes types or holds objects ({exc})"
            if column
            else f"the DataFrame cannot be stored as Arrow: {exc}",
            field=column or "data",
        ) from exc


def _column_in_message(message: str, columns: list[str]) -> str | None:
    for name in columns:
        if f"column {name} " in message or f"column {name!r}" in message:
            return name
    return None


def check_url(url: str) -> None:
    """Refuse link-local and cloud-metadata addresses in http(s) dataset URLs (SSRF)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 443)
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot resolve {parsed.hostname!r}: {exc}", field="data") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_link_local or address.is_multicast or address.is_unspecified:
            raise InvalidInput(
                f"{url} points at {address}, a link-local or metadata address", field="data"
            )


def open_source(data: Any) -> SourceReader:
    """Open a DataFrame, an Arrow table, or a Parquet/CSV path or URL as record batches.

    Raises
    ------
    InvalidInput
        For unsupported inputs, unreadable files (naming the file), nested columns
        (naming the column) and frames without columns.
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        table = from_pandas(data)
        where = "the DataFrame"
    elif isinstance(data, pa.Table):
        table = data
        where = "the Arrow table"
    elif isinstance(data, str | Path):
        return _open_file(str(data))
    else:
        raise InvalidInput(
            f"data must be a DataFrame, an Arrow table or a Parquet/CSV path, "
            f"got {type(data).__name__}",
            field="data",
        )
    schema = canonical_schema(table.schema, where)
    return SourceReader(schema, (conform(b, schema) for b in _rebatch(table)), where)


def _open_file(location: str) -> SourceReader:
    import fsspec
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    lowered = location.lower()
    check_url(location)
    if "://" not in location and not Path(location).is_file():
        raise InvalidInput(f"{location} does not exist or is not a file", field="data")
    try:
        handle = fsspec.open(location, "rb").open()
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot open {location}: {exc}", field="data") from exc
    try:
        if lowered.endswith((".parquet", ".pq")):
            parquet = pq.ParquetFile(handle)
            schema = canonical_schema(parquet.schema_arrow, location)
            raw = parquet.iter_batches(batch_size=BATCH_ROWS)
        elif lowered.endswith((".csv", ".csv.gz", ".tsv")):
            options = pacsv.ParseOptions(delimiter="\t" if lowered.endswith(".tsv") else ",")
            compression = "gzip" if lowered.endswith(".gz") else None
            stream = pa.CompressedInputStream(handle, compression) if compression else handle
            reader = pacsv.open_csv(
                stream, parse_options=options, read_options=pacsv.ReadOptions(block_size=8 << 20)
            )
            schema = canonical_schema(reader.schema, location)
            raw = iter(reader)
        else:
            raise InvalidInput(
                f"{location}: only .parquet and .csv files can be registered", field="data"
            )
    except (pa.ArrowInvalid, OSError) as exc:
        handle.close()
        raise InvalidInput(f"{location} is not a readable file: {exc}", field="data") from exc
    except InvalidInput:
        handle.close()
        raise
    return SourceReader(schema, _guarded(raw, schema, location, handle), location)


def _guarded(
    raw: Iterator[pa.RecordBatch], schema: pa.Schema, location: str, handle: Any
) -> Iterator[pa.RecordBatch]:
    """Yield conformed batches; decoding errors mid-file become InvalidInput naming it."""
    try:
        while True:
            try:
                batch = next(raw)
            except StopIteration:
                return
            except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
                raise InvalidInput(
                    f"{location} is corrupt or inconsistent: {exc}", field="data"
                ) from exc
            try:
                yield conform(batch, schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InvalidInput(
                    f"{location}: a column changed type mid-file ({exc})", field="data"
                ) from exc
    finally:
        handle.close()
