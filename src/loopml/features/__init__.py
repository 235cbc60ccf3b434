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
from loopml.features.lineage import lineage_tags
from loopml.features.materialize import materialize, materialize_incremental, watermark
from loopml.features.online_lookup import get_online_features
from loopml.features.retrieval import get_historical_features
from loopml.features.skew import FeatureSkew, SkewReport, check_skew
from loopml.store.features_base import FeatureDefinitionRecord

__all__ = [
    "Entity",
    "FeatureDefinitionRecord",
    "FeatureService",
    "FeatureSkew",
    "FeatureView",
    "Field",
    "SkewReport",
    "apply",
    "check_skew",
    "get",
    "get_historical_features",
    "get_online_features",
    "lineage_tags",
    "list_definitions",
    "materialize",
    "materialize_incremental",
    "watermark",
]
