"""Registry entities: registered models, their versions, aliases and the audit trail."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RegisteredModel:
    """A named model; its versions are numbered from 1."""

    name: str
    description: str
    created_time: int
    last_update_time: int
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where its files are and what it came from.

    Attributes
    ----------
    source : str
        ``runs:/<run_id>/<artifact_path>``, the logged model this version points at.
    datasets : list of str
        Dataset versions (``name@vN``) the source run read.
    code_version : str
        The git commit the source run recorded (empty when unknown).
    """

    name: str
    version: int
    run_id: str
    artifact_path: str
    status: str
    created_time: int
    last_update_time: int
    description: str = ""
    flavor: str = ""
    signature: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: tuple[str, ...] = ()
    code_version: str = ""
    user: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    evaluation: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None

    @property
    def source(self) -> str:
        """The logged model's URI."""
        return f"runs:/{self.run_id}/{self.artifact_path}"

    @property
    def uri(self) -> str:
        """``models:/name/version``."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        data = asdict(self)
        data["datasets"] = list(self.datasets)
        data["aliases"] = list(self.aliases)
        data["source"] = self.source
        return data


@dataclass(frozen=True)
class AuditEntry:
    """One change to a registered model: who, when, what, from, to and why."""

    id: int
    model_name: str
    version: int | None
    action: str
    from_value: str | None
    to_value: str | None
    reason: str
    user: str
    time: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)
