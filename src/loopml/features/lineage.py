"""Lineage from a model version to the feature service it was trained on.

The registry keeps it as two tags on the model version, ``features.service`` (the service
name and version) and ``features.views`` (each view of the service with its version), which
``loopml models show`` lists. :func:`lineage_tags` computes them from the applied
definitions, to pass to ``lm.registry.register(..., tags=...)``.
"""

from __future__ import annotations

from loopml.errors import InvalidInput, NotFound
from loopml.features.definitions import FEATURE_SERVICE, FEATURE_VIEW, get_store

#: The model-version tag naming the feature service, as ``<name> v<version>``.
SERVICE_TAG = "features.service"
#: The model-version tag listing the service's views, as ``<view> v<version>, ...``.
VIEWS_TAG = "features.views"


def lineage_tags(service: str) -> dict[str, str]:
    """Return the model-version tags recording a feature service and its view versions.

    Parameters
    ----------
    service : str
        The name of an applied feature service; its latest version and the latest versions
        of its views (the ones a training set built now reads) are recorded.

    Returns
    -------
    dict
        ``{"features.service": "ranker v1", "features.views": "driver_stats v2, ..."}``.

    Raises
    ------
    InvalidInput
        When no such feature service is applied.

    Examples
    --------
    >>> version = lm.registry.register(
    ...     uri, "ranker", tags=lm.features.lineage_tags("ranker")
    ... )  # doctest: +SKIP
    """
    store = get_store()
    try:
        record = store.get_feature_definition(FEATURE_SERVICE, service)
    except NotFound as exc:
        raise InvalidInput(f"no feature service {service!r} is applied", field="service") from exc
    names = list(dict.fromkeys(ref.partition(":")[0] for ref in record.definition["features"]))
    views = [store.get_feature_definition(FEATURE_VIEW, name) for name in names]
    return {
        SERVICE_TAG: f"{record.name} v{record.version}",
        VIEWS_TAG: ", ".join(f"{view.name} v{view.version}" for view in views),
    }


__all__ = ["SERVICE_TAG", "VIEWS_TAG", "lineage_tags"]
