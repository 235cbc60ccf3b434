"""Lineage from a model version to the feature service it was trained on.

The registry keeps it as two tags on the model version, ``features.service`` (the service
name and version) and ``features.views`` (each view with its version), which ``loopml
models show`` lists. They are recorded without being asked for: a training set built inside
an active run (:func:`record_on_active_run`, called by ``get_historical_features``) sets
them on the run, and registering a model logged from that run copies them to the version.
:func:`lineage_tags` computes them from the applied definitions, to pass explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from loopml.errors import InvalidInput, NotFound
from loopml.features.definitions import (
    FEATURE_SERVICE,
    FEATURE_VIEW,
    FeatureService,
    get_store,
)

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


def applied_service_version(name: str, references: list[str]) -> int | None:
    """The latest applied version of service ``name`` listing exactly ``references``.

    Parameters
    ----------
    name : str
        The feature service's name.
    references : list of str
        Its ``view`` / ``view:feature`` references, in order.

    Returns
    -------
    int or None
        The version, or ``None`` when no applied version lists these features (a service
        used without being applied, or changed since).
    """
    try:
        versions = get_store().list_feature_definition_versions(FEATURE_SERVICE, name)
    except NotFound:
        return None
    matching = [r.version for r in versions if list(r.definition["features"]) == references]
    return matching[-1] if matching else None


def _service_version(features: object) -> tuple[str, int] | None:
    """The applied feature service a request names, with its version; None for references."""
    if isinstance(features, FeatureService):
        version = applied_service_version(features.name, features.references())
        return None if version is None else (features.name, version)
    if isinstance(features, str):
        return features, get_store().get_feature_definition(FEATURE_SERVICE, features).version
    return None


def _merged(existing: str | None, entries: Iterable[str]) -> str:
    # Several training sets built in one run (train and validation, or two services): the
    # run records every one of them, each once, in the order first used.
    parts = [p for p in (existing or "").split(", ") if p]
    parts.extend(e for e in entries if e not in parts)
    return ", ".join(parts)


def record_on_active_run(
    features: Sequence[str] | FeatureService | str, views: Iterable[tuple[str, int]]
) -> None:
    """Record on this thread's active run the feature service and view versions it read.

    Nothing happens outside a run. The tags accumulate over several training sets built in
    the same run.

    Parameters
    ----------
    features : list of str, FeatureService, or str
        What the training set was built from, as given to ``get_historical_features``: a
        service (recorded when applied, with its version) or feature references.
    views : iterable of (str, int)
        Each feature view read, with the version read.
    """
    from loopml.tracking.fluent import active_run, get_service

    run = active_run()
    if run is None:
        return
    tracking = get_service()
    current = tracking.get_run(run.run_id).tags
    tags = {VIEWS_TAG: _merged(current.get(VIEWS_TAG), (f"{n} v{v}" for n, v in views))}
    service = _service_version(features)
    if service is not None:
        tags[SERVICE_TAG] = _merged(current.get(SERVICE_TAG), [f"{service[0]} v{service[1]}"])
    tracking.log_batch(run.run_id, tags=tags)


__all__ = [
    "SERVICE_TAG",
    "VIEWS_TAG",
    "applied_service_version",
    "lineage_tags",
    "record_on_active_run",
]
