"""The feature store: definitions, and point-in-time-correct training sets.

Examples
--------
>>> import loopml as lm
>>> driver = lm.features.Entity("driver", ["driver_id"])                  # doctest: +SKIP
>>> stats = lm.features.FeatureView(
...     "driver_stats", [driver], source="driver_stats",
...     timestamp_field="ts", features=[lm.features.Field("rating", "float64")],
... )                                                                       # doctest: +SKIP
>>> lm.features.apply([driver, stats])                                      # doctest: +SKIP
>>> lm.features.get_historical_features(entities, ["driver_stats:rating"])  # doctest: +SKIP
"""

from loopml.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    apply,
    get,
    list_definitions,
)
from loopml.features.materialize import materialize
from loopml.features.retrieval import get_historical_features
from loopml.store.features_base import FeatureDefinitionRecord

__all__ = [
    "Entity",
    "FeatureDefinitionRecord",
    "FeatureService",
    "FeatureView",
    "Field",
    "apply",
    "get",
    "get_historical_features",
    "list_definitions",
    "materialize",
]
