"""How step outputs become blobs and come back: one materializer per kind of value.

Built in, tried in order: pandas DataFrames and Arrow tables as Parquet, numpy arrays as
``.npy`` (without pickle), scikit-learn estimators with skops, and JSON-able values as JSON.
Anything else needs a registered materializer (:func:`register_materializer`) or the step
option ``materializer="pickle"``: pickle is only ever loaded from blobs this store wrote for
a step output, never from outside files.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from loopml.errors import InvalidInput


class Materializer(Protocol):
    """Turns values of some types into bytes and back."""

    name: str

    def can_save(self, value: Any) -> bool:
        """Whether this materializer handles the value."""
        ...

    def save(self, value: Any, stream: BinaryIO) -> None:
        """Write the value."""
        ...

    def load(self, stream: BinaryIO) -> Any:
        """Read a value written by :meth:`save`."""
        ...


class _Parquet:
    name = "parquet"

    def can_save(self, value: Any) -> bool:
        module = type(value).__module__
        return (module.startswith("pandas") and type(value).__name__ == "DataFrame") or (
            module.startswith("pyarrow") and type(value).__name__ == "Table"
        )

    def save(self, value: Any, stream: BinaryIO) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = value if isinstance(value, pa.Table) else pa.Table.from_pandas(value)
        pq.write_table(table, stream)

    def load(self, stream: BinaryIO) -> Any:
        import pyarrow.parquet as pq

        table = pq.read_table(stream)
        return table.to_pandas() if table.schema.pandas_metadata else table


class _Numpy:
    name = "numpy"

    def can_save(self, value: Any) -> bool:
        import numpy as np

        return isinstance(value, np.ndarray) and value.dtype != object

    def save(self, value: Any, stream: BinaryIO) -> None:
        import numpy as np

        np.save(stream, value, allow_pickle=False)

    def load(self, stream: BinaryIO) -> Any:
        import numpy as np

        return np.load(io.BytesIO(stream.read()), allow_pickle=False)


class _Skops:
    name = "skops"

    def can_save(self, value: Any) -> bool:
        return type(value).__module__.startswith("sklearn") or (
            hasattr(value, "fit") and hasattr(value, "get_params")
        )

    def save(self, value: Any, stream: BinaryIO) -> None:
        import skops.io as sio

        stream.write(sio.dumps(value))

    def load(self, stream: BinaryIO) -> Any:
        import skops.io as sio

        data = stream.read()
        # The blob was written by save() above for a step output of this store.
        return sio.loads(data, trusted=sio.get_untrusted_types(data=data))


def _json_able(value: Any, depth: int = 0) -> bool:
    if depth > 50:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_json_able(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_able(v, depth + 1) for k, v in value.items())
    return False


class _Json:
    name = "json"

    def can_save(self, value: Any) -> bool:
        return _json_able(value)

    def save(self, value: Any, stream: BinaryIO) -> None:
        stream.write(json.dumps(value).encode("utf-8"))

    def load(self, stream: BinaryIO) -> Any:
        return json.loads(stream.read().decode("utf-8"))


class _Pickle:
    name = "pickle"

    def can_save(self, value: Any) -> bool:
        return True

    def save(self, value: Any, stream: BinaryIO) -> None:
        import pickle

        pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, stream: BinaryIO) -> Any:
        import pickle

        # Only reached for blobs recorded as this store's own step outputs.
        return pickle.load(stream)  # noqa: S301


@dataclass
class _Registry:
    custom: list[tuple[type, Materializer]]
    builtin: tuple[Materializer, ...]
    pickle: Materializer


_REGISTRY = _Registry(
    custom=[], builtin=(_Parquet(), _Numpy(), _Skops(), _Json()), pickle=_Pickle()
)


def register_materializer(value_type: type, materializer: Materializer) -> None:
    """Use ``materializer`` for outputs of ``value_type`` (and subclasses)."""
    if not all(hasattr(materializer, a) for a in ("name", "save", "load")):
        raise InvalidInput("a materializer needs name, save and load", field="materializer")
    _REGISTRY.custom.insert(0, (value_type, materializer))


def by_name(name: str) -> Materializer:
    """The materializer that wrote a blob."""
    for _, custom in _REGISTRY.custom:
        if custom.name == name:
            return custom
    for builtin in (*_REGISTRY.builtin, _REGISTRY.pickle):
        if builtin.name == name:
            return builtin
    raise InvalidInput(f"no materializer named {name!r} is registered", field="materializer")


def choose(value: Any, step: str, output: str, preferred: str | None = None) -> Materializer:
    """The materializer for a step output.

    Raises
    ------
    InvalidInput
        When no materializer handles the value, naming the step, output and type.
    """
    if preferred is not None:
        return by_name(preferred)
    for value_type, custom in _REGISTRY.custom:
        if isinstance(value, value_type):
            return custom
    for builtin in _REGISTRY.builtin:
        if builtin.can_save(value):
            return builtin
    raise InvalidInput(
        f"step {step!r} returned {type(value).__module__}.{type(value).__qualname__} as "
        f"{output!r}, which no materializer stores: register one with "
        "lm.pipelines.register_materializer, or pass materializer='pickle' to the step",
        field=output,
    )
