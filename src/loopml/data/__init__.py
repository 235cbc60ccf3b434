"""Data quality: schemas, profiles and validation (``lm.data``).

Examples
--------
>>> import loopml as lm
>>> schema = lm.data.infer_schema(reference)                       # doctest: +SKIP
>>> result = lm.data.validate(batch, schema=schema, reference=reference)  # doctest: +SKIP
>>> result.raise_if_failed()                                          # doctest: +SKIP
"""

from loopml.data.profile import ColumnProfile, DatasetProfile, profile_table
from loopml.data.schema import ColumnSchema, Schema, infer_schema
from loopml.data.validation import (
    Anomaly,
    AnomalyKind,
    DataValidationError,
    ValidationResult,
    validate,
)

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "ColumnProfile",
    "ColumnSchema",
    "DataValidationError",
    "DatasetProfile",
    "Schema",
    "ValidationResult",
    "infer_schema",
    "profile_table",
    "validate",
]
