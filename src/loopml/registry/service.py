"""The model registry use cases: register, resolve, alias, archive, audit, load, model cards."""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from loopml.entities.registry import AuditEntry, ModelVersion, RegisteredModel
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.models.storage import LoadedModel, load_logged_model, parse_runs_uri, read_manifest
from loopml.store.base import DatasetStore, RegistryStore
from loopml.tracking import validation
from loopml.tracking.service import TrackingService
from loopml.tracking.system import current_user

logger = logging.getLogger("loopml.registry")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,249}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")
_SPEC = re.compile(
    r"^(?:models:/)?(?P<name>[^@/]+)(?:(?:@(?P<alias>[^/]+))|(?:/(?P<version>\d+)))$"
)
APPROVAL_ALIASES = ("champion",)
READY, ARCHIVED = "READY", "ARCHIVED"
#: The run tags naming the feature service and view versions a run's training sets read
#: (written by ``loopml.features``); a registered version inherits them from its run.
FEATURE_LINEAGE_TAGS = ("features.service", "features.views")


def _with_feature_lineage(tags: dict[str, Any], run_tags: dict[str, str]) -> dict[str, Any]:
    """The version's tags plus the run's feature lineage, unless the caller gave their own."""
    if any(key in tags for key in FEATURE_LINEAGE_TAGS):
        return tags
    inherited = {key: run_tags[key] for key in FEATURE_LINEAGE_TAGS if key in run_tags}
    return {**inherited, **tags}


def check_model_name(name: Any) -> str:
    """Registered model names: letters, digits, ``_``, ``-``, ``.``; no paths."""
    checked = validation.check_name(name, "name")
    if not _MODEL_NAME.match(checked) or ".." in checked:
        raise InvalidInput(
            f"model name {checked!r} may only contain letters, digits, '_', '-' and '.'",
            field="name",
        )
    return checked


def check_alias(alias: Any) -> str:
    """Aliases are lowercase identifiers (``champion``, ``challenger``, ``shadow-eu``...)."""
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest":
        raise InvalidInput(
            f"alias {alias!r} must be a lowercase identifier other than 'latest'", field="alias"
        )
    return alias


class RegistryService:
    """Registered models over a :class:`RegistryStore`, with lineage from tracking and data.

    Parameters
    ----------
    store : RegistryStore
        Where models, versions, aliases and the audit trail live.
    tracking : TrackingService
        Source runs and their artifacts (the model files).
    lineage : DatasetStore, optional
        Dataset lineage: which dataset versions a source run read.
    """

    def __init__(
        self, store: RegistryStore, tracking: TrackingService, lineage: DatasetStore | None = None
    ) -> None:
        self.store = store
        self.tracking = tracking
        self.lineage = lineage

    # -- registering ----------------------------------------------------------------------
    def register(
        self,
        model_uri: str,
        name: str,
        *,
        description: str = "",
        tags: dict[str, Any] | None = None,
        user: str | None = None,
    ) -> ModelVersion:
        """Register a logged model (``runs:/<run_id>/<path>``) as a new version of ``name``.

        The version records the source run's metrics, its git commit, the dataset versions
        it read, the feature service and view versions its training sets were built from
        (the run's ``features.*`` tags, unless ``tags`` names them) and the model's
        signature; lineage edges make those datasets undeletable while the version exists.
        """
        name = check_model_name(name)
        run_id, path = parse_runs_uri(model_uri)
        run = self.tracking.get_run(run_id)
        manifest = read_manifest(self.tracking, run_id, path)
        datasets: list[str] = []
        if self.lineage is not None:
            datasets = sorted(
                {
                    e.source_id
                    for e in self.lineage.list_lineage(target=("run", run_id))
                    if e.source_kind == "dataset_version"
                }
            )
        version = self.store.create_model_version(
            ModelVersion(
                name=name,
                version=0,
                run_id=run_id,
                artifact_path=path,
                status=READY,
                created_time=0,
                last_update_time=0,
                description=description,
                flavor=manifest.get("flavor", ""),
                signature=manifest.get("signature"),
                metrics={k: v for k, v in run.metrics.items() if v == v},
                datasets=tuple(datasets),
                code_version=run.tags.get("loopml.git.commit", ""),
                user=user or current_user(),
                tags=validation.check_tags(_with_feature_lineage(tags or {}, run.tags)),
            )
        )
        if self.lineage is not None:
            target = f"{name}/{version.version}"
            for dataset in datasets:
                self.lineage.add_lineage(
                    "dataset_version", dataset, "model_version", target, "training_data"
                )
            self.lineage.add_lineage("run", run_id, "model_version", target, "source")
        return version

    # -- reading --------------------------------------------------------------------------
    def get_model(self, name: str) -> RegisteredModel:
        """A registered model with its aliases."""
        return self.store.get_registered_model(check_model_name(name))

    def list_models(self) -> list[RegisteredModel]:
        """Every registered model."""
        return self.store.list_registered_models()

    def versions(self, name: str) -> list[ModelVersion]:
        """A model's versions, oldest first."""
        return self.store.list_model_versions(check_model_name(name))

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version."""
        return self.store.get_model_version(check_model_name(name), _check_version(version))

    def resolve(self, spec: str) -> ModelVersion:
        """``name@alias``, ``name/3``, ``models:/name/3``, ``models:/name@alias``."""
        match = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
        if match is None:
            raise InvalidInput(f"{spec!r} is not name@alias or name/version", field="model")
        name = check_model_name(match.group("name"))
        if match.group("version"):
            return self.store.get_model_version(name, int(match.group("version")))
        alias = match.group("alias")
        if alias == "latest":
            versions = [v for v in self.store.list_model_versions(name) if v.status == READY]
            if not versions:
                raise NotFound(f"model {name!r} has no ready version", field="model")
            return versions[-1]
        return self.store.get_version_by_alias(name, check_alias(alias))

    def audit(self, name: str) -> list[AuditEntry]:
        """Every change to the model, oldest first."""
        return self.store.list_audit(check_model_name(name))

    # -- changing -------------------------------------------------------------------------
    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str = "", user: str | None = None
    ) -> int | None:
        """Point an alias at a version; return the version it pointed at before.

        Moving ``champion`` needs a reason (recorded in the audit trail).
        """
        name, alias = check_model_name(name), check_alias(alias)
        target = self.store.get_model_version(name, _check_version(version))
        if target.status != READY:
            raise InvalidInput(
                f"{name}/{version} is {target.status}; only READY versions take aliases",
                field="version",
            )
        if alias in APPROVAL_ALIASES and not reason.strip():
            raise InvalidInput(f"moving {alias!r} needs a reason", field="reason")
        return self.store.set_alias(name, alias, target.version, reason, user or current_user())

    def delete_alias(
        self, name: str, alias: str, *, reason: str = "", user: str | None = None
    ) -> int:
        """Remove an alias; return the version it pointed at (``champion`` needs a reason)."""
        if alias in APPROVAL_ALIASES and not reason.strip():
            raise InvalidInput(f"removing {alias!r} needs a reason", field="reason")
        return self.store.delete_alias(
            check_model_name(name), check_alias(alias), reason, user or current_user()
        )

    def archive(
        self, name: str, version: int, *, reason: str = "", user: str | None = None
    ) -> None:
        """Archive a version (refused while an alias points at it)."""
        current = self.store.get_model_version(check_model_name(name), _check_version(version))
        if current.aliases:
            raise InvalidInput(
                f"{name}/{version} still has alias(es) "
                f"{', '.join(current.aliases)}; move them first",
                field="version",
            )
        self.store.set_version_status(
            name, current.version, ARCHIVED, reason, user or current_user()
        )

    def restore(
        self, name: str, version: int, *, reason: str = "", user: str | None = None
    ) -> None:
        """Make an archived version READY again."""
        self.store.set_version_status(
            check_model_name(name), _check_version(version), READY, reason, user or current_user()
        )

    def set_tag(
        self, name: str, key: str, value: Any, version: int | None = None, user: str | None = None
    ) -> None:
        """Tag a model, or one version of it."""
        ((key, text),) = validation.check_tags({key: value}).items()
        self.store.set_tag(check_model_name(name), version or 0, key, text, user or current_user())

    def record(
        self, name: str, version: int, field: str, value: dict[str, Any], user: str | None = None
    ) -> None:
        """Store an ``evaluation`` or ``gate`` result with a version."""
        if field not in ("evaluation", "gate"):
            raise InvalidInput("field must be 'evaluation' or 'gate'", field="field")
        self.store.set_version_field(
            check_model_name(name), _check_version(version), field, value, user or current_user()
        )

    # -- loading and cards ----------------------------------------------------------------
    def load(
        self, spec: str, *, trusted: bool = False, trusted_types: list[str] | None = None
    ) -> LoadedModel:
        """Load ``name@alias``, ``name/3`` or ``runs:/<id>/<path>``, verifying every file."""
        if spec.startswith("runs:/"):
            run_id, path = parse_runs_uri(spec)
            return load_logged_model(
                self.tracking, run_id, path, trusted=trusted, trusted_types=trusted_types
            )
        version = self.resolve(spec)
        loaded = load_logged_model(
            self.tracking,
            version.run_id,
            version.artifact_path,
            trusted=trusted,
            trusted_types=trusted_types,
        )
        loaded.registered = (version.name, version.version)
        return loaded

    def importance(
        self,
        name: str,
        version: int,
        *,
        trusted: bool = False,
        trusted_types: list[str] | None = None,
        refresh: bool = False,
        compute: bool = True,
    ) -> dict[str, Any]:
        """Global feature importance (mean |SHAP| over the background sample) of a version.

        Computed on first use and kept with the source run, so later cards read it back;
        pass ``trusted_types`` for models that need them to load (tree ensembles).

        Returns
        -------
        dict
            ``{"importance": {feature: value} (largest first), "rows", "explainer", ...}``.
        """
        from loopml.models.explain import stored_importance

        item = self.get_version(name, version)
        return stored_importance(
            self.tracking,
            item.run_id,
            item.artifact_path,
            trusted=trusted,
            trusted_types=trusted_types,
            refresh=refresh,
            compute=compute,
        )

    def _importance_lines(self, item: ModelVersion, compute: bool) -> list[str]:
        lines = ["", "## Global feature importance", ""]
        try:
            record = self.importance(item.name, item.version, compute=compute)
        except NotFound as exc:
            if compute or exc.field != "importance":
                return [*lines, f"- not available: {exc.message}"]
            return [
                *lines,
                "- not computed yet: the card computes and keeps it when asked with "
                "`importance=compute` (the CLI's and the SDK's cards always do)",
            ]
        except LoopmlError as exc:
            return [*lines, f"- not available: {exc.message}"]
        except Exception as exc:  # noqa: BLE001 - a card still renders when SHAP fails
            logger.warning("importance of %s/%s failed: %r", item.name, item.version, exc)
            return [*lines, f"- not available: {type(exc).__name__}: {exc}"]
        lines += [
            f"Mean absolute SHAP value over {record.get('rows')} background rows "
            f"({record.get('explainer')} explainer).",
            "",
            "| feature | mean abs SHAP |",
            "|---|---|",
        ]
        ranked = sorted(record["importance"].items(), key=lambda kv: (-kv[1], kv[0]))
        return lines + [f"| {feature} | {value:.4g} |" for feature, value in ranked]

    def card(
        self, name: str, version: int, *, format: str = "markdown", compute_importance: bool = True
    ) -> str:
        """A model card from the version's lineage, metrics, evaluation, gate and importance.

        With ``compute_importance=False`` the card shows the global importance only when it
        was kept before, so it renders in milliseconds (the web UI's cards).
        """
        item = self.get_version(name, version)
        lines = [f"# Model card: {item.name} v{item.version}", ""]
        if item.description:
            lines += [item.description, ""]
        lines += [
            "## Overview",
            "",
            "| | |",
            "|---|---|",
            f"| flavor | {item.flavor} |",
            f"| status | {item.status} |",
            f"| aliases | {', '.join(item.aliases) or '-'} |",
            f"| source run | {item.run_id} |",
            f"| code version | {item.code_version or 'unknown'} |",
            f"| registered by | {item.user} |",
            "",
        ]
        lines += ["## Training data", ""]
        lines += [f"- {d}" for d in item.datasets] or ["- not recorded"]
        lines += ["", "## Inputs", ""]
        inputs = (item.signature or {}).get("inputs") or []
        lines += [f"- `{c['name']}`: {c['type']}" for c in inputs] or ["- no signature"]
        lines += ["", "## Metrics", ""]
        if item.metrics:
            lines += ["| metric | value |", "|---|---|"]
            lines += [f"| {k} | {v:.4g} |" for k, v in sorted(item.metrics.items())]
        else:
            lines.append("- none logged by the source run")
        slices = (item.evaluation or {}).get("slices") or {}
        if slices:
            lines += ["", "## Slices", "", "| slice | n | metrics |", "|---|---|---|"]
            for slice_name, data in slices.items():
                metrics = ", ".join(
                    f"{k}={v:.3g}"
                    for k, v in (data.get("metrics") or {}).items()
                    if isinstance(v, int | float)
                )
                lines.append(f"| {slice_name} | {data.get('n', '')} | {metrics} |")
        if item.gate:
            lines += [
                "",
                f"## Validation gate: {'passed' if item.gate.get('passed') else 'FAILED'}",
                "",
            ]
            lines += [
                f"- {'✓' if r.get('passed') else '✗'} {r.get('message', '')}"
                for r in item.gate.get("reasons", [])
            ]
        lines += self._importance_lines(item, compute_importance)
        text = "\n".join(lines) + "\n"
        if format == "markdown":
            return text
        if format == "html":
            return _markdown_to_html(text)
        raise InvalidInput("format must be 'markdown' or 'html'", field="format")


def _check_version(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"version must be a positive integer, got {version!r}", field="version")
    return version


def _markdown_to_html(text: str) -> str:
    """Just enough Markdown (headings, lists, tables) for model cards; everything escaped."""
    out = [
        "<!doctype html><meta charset='utf-8'><title>Model card</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
        "</style>",
    ]
    in_table = False
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join(out) + "\n"
