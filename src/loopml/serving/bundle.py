"""Deployable serving bundles: one model version with everything needed to run it elsewhere.

``loopml build churn@champion bundle/`` resolves the alias once and pins the version it names,
then writes a folder that needs neither the metadata store nor the registry:

- ``model/``: the model's files, each checked against the sha256 its manifest recorded;
- ``requirements.txt``: loopml and the libraries the model's flavor needs, pinned to the
  versions installed at build time;
- ``wheels/``: a wheel of loopml, when loopml was installed from a source folder or a local
  file rather than a package index (or the wheel given with ``loopml_wheel``);
  ``requirements.txt`` then names that file instead of ``loopml==<version>``;
- ``serve.py``: serves ``model/`` with the regular serving app on ``$HOST:$PORT``;
- ``Dockerfile``: a slim Python image running ``serve.py`` as a non-root user;
- ``k8s/``: a Deployment (readiness on ``/ready``, liveness on ``/health``), a Service and a
  CPU-based HorizontalPodAutoscaler;
- ``bundle.json``: what was bundled (model, version, flavor, sha256s, loopml version and how
  it is installed, time).

The bundle is assembled in a temporary folder beside the output and renamed into place, so a
failed build never leaves a half-written bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput
from loopml.serving._bundle_files import WHEELS_DIR, LoopmlInstall, check_wheel, provide_loopml

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopml.entities.registry import ModelVersion
    from loopml.models.storage import LoadedModel
    from loopml.tracking.service import TrackingService

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = 1
MODEL_DIR = "model"
#: The uid the container runs as (any non-root uid works; the files are world-readable).
CONTAINER_UID = 10001
#: Target average CPU utilisation (percent of the request) of the autoscaler.
CPU_TARGET = 70
#: Container resources; edit ``k8s/deployment.yaml`` for large models.
RESOURCES = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
#: Libraries every bundle pins: the serving app's own stack.
BASE_PACKAGES = ("fastapi", "starlette", "pydantic", "uvicorn", "numpy", "pandas")
#: Libraries (import names) each flavor loads models with.
FLAVOR_PACKAGES: dict[str, tuple[str, ...]] = {
    "sklearn": ("sklearn", "skops", "scipy"),
    # xgboost's estimator classes are scikit-learn estimators.
    "xgboost": ("xgboost", "sklearn", "scipy"),
    "lightgbm": ("lightgbm", "scipy"),
    "torch": ("torch",),
    "python": (),
    "pickle": (),
}
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "prometheus_client": "prometheus-client"}
_SLUG = re.compile(r"[^a-z0-9-]+")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")

SERVE_PY = '''"""Serve the model of this bundle on $HOST:$PORT (written by `loopml build`)."""

import sys
from pathlib import Path

from loopml.errors import LoopmlError
from loopml.serving.bundle import serve_bundle

if __name__ == "__main__":
    try:
        serve_bundle(Path(__file__).resolve().parent)
    except LoopmlError as exc:
        sys.exit(f"error: {exc.message}")
'''


@dataclass(frozen=True)
class BundleResult:
    """What ``build_bundle`` wrote.

    Attributes
    ----------
    path : str
        The bundle folder.
    model : str
        The registered model name.
    version : int
        The version bundled (the alias resolved at build time).
    flavor : str
        The model's flavor.
    image : str
        The image name the Kubernetes manifests use.
    files : tuple of str
        Every file of the bundle, relative to ``path``.
    loopml : LoopmlInstall, optional
        How the bundle installs loopml: a pinned release or a wheel under ``wheels/``.
    """

    path: str
    model: str
    version: int
    flavor: str
    image: str
    files: tuple[str, ...]
    loopml: LoopmlInstall | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        return {
            "path": self.path,
            "model": self.model,
            "version": self.version,
            "flavor": self.flavor,
            "image": self.image,
            "files": list(self.files),
            "loopml": self.loopml.to_dict() if self.loopml is not None else None,
        }


def build_bundle(
    spec: str,
    output: str | Path,
    *,
    port: int = 8080,
    replicas: int = 2,
    max_replicas: int | None = None,
    image: str | None = None,
    force: bool = False,
    loopml_wheel: str | Path | None = None,
) -> BundleResult:
    """Write a self-contained serving bundle of a registered model version.

    Parameters
    ----------
    spec : str
        ``name@alias``, ``name/3`` or ``models:/...``; an alias is resolved now and the
        version it names is pinned in the bundle.
    output : str or Path
        The bundle folder; it must not exist or be empty, unless ``force``.
    port : int, default 8080
        The port the container listens on.
    replicas : int, default 2
        Replicas of the Deployment, and the autoscaler's minimum.
    max_replicas : int, optional
        The autoscaler's maximum; ``5 * replicas`` by default.
    image : str, optional
        The image name in the manifests; ``<model>:<version>`` by default.
    force : bool, default False
        Replace an existing, non-empty ``output``.
    loopml_wheel : str or Path, optional
        A loopml wheel to bundle under ``wheels/``. Without it, a wheel is built (with
        ``pip wheel``) when loopml was installed from a source folder or a local file, and
        ``loopml==<version>`` is pinned when it was installed from a package index.

    Returns
    -------
    BundleResult
        The model version bundled and the files written.

    Raises
    ------
    InvalidInput
        For a bad spec, port, replica count, image name or loopml wheel, a non-empty output
        without ``force``, a model file whose sha256 differs from the one its manifest
        recorded, or when building the loopml wheel fails.
    NotFound
        When the model, version or alias does not exist.
    """
    target = Path(output).resolve()
    if target.parent == target:
        raise InvalidInput(f"{output} cannot be a bundle folder", field="output")
    _check_options(spec, port, replicas, max_replicas, image)
    if loopml_wheel is not None:
        check_wheel(loopml_wheel)  # before the registry, so a typo fails fast
    _check_output(target, force)
    from loopml.registry import get_service

    registry = get_service()
    version = registry.resolve(spec)
    name = _slug(version.name)
    image_name = image or f"{name}:{version.version}"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the image build must read it
        manifest = _copy_model(registry.tracking, version, staging / MODEL_DIR)
        flavor = str(manifest["flavor"])
        # Loading it here means a bundle that builds is a bundle that starts.
        load_model_folder(staging / MODEL_DIR, version.name, version.version)
        loopml = provide_loopml(staging, loopml_wheel)
        info = {
            "format": BUNDLE_FORMAT,
            "model": version.name,
            "version": version.version,
            "spec": spec,
            "source": f"runs:/{version.run_id}/{version.artifact_path}",
            "flavor": flavor,
            "files": manifest["files"],
            "signature": manifest.get("signature"),
            "loopml": loopml.version,
            "loopml_install": loopml.to_dict(),
            "python": platform.python_version(),
            "image": image_name,
            "port": port,
            "built_time": int(time.time() * 1000),
        }
        (staging / BUNDLE_FILE).write_text(json.dumps(info, indent=2) + "\n")
        (staging / "requirements.txt").write_text(
            requirements_text(flavor, version, loopml=loopml.requirement)
        )
        (staging / "serve.py").write_text(SERVE_PY)
        (staging / "Dockerfile").write_text(
            dockerfile_text(version, flavor, port, wheels=loopml.wheel is not None)
        )
        _write_manifests(
            staging / "k8s",
            name,
            version,
            image_name,
            port,
            replicas,
            max_replicas or 5 * replicas,
        )
        files = tuple(
            sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        )
        _publish(staging, target, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BundleResult(
        str(Path(output)), version.name, version.version, flavor, image_name, files, loopml
    )


def _check_options(
    spec: str, port: int, replicas: int, max_replicas: int | None, image: str | None
) -> None:
    if spec.strip().startswith("runs:/"):
        raise InvalidInput(
            "bundles are built from registered models: register the run's model and pass "
            "name@alias or name/version",
            field="model",
        )
    if not 1 <= port <= 65535:
        raise InvalidInput(f"port must be between 1 and 65535, got {port}", field="port")
    if replicas < 1:
        raise InvalidInput(f"replicas must be at least 1, got {replicas}", field="replicas")
    if max_replicas is not None and max_replicas < replicas:
        raise InvalidInput(
            f"max_replicas ({max_replicas}) must be at least replicas ({replicas})",
            field="max_replicas",
        )
    if image is not None and not _IMAGE.match(image):
        raise InvalidInput(f"{image!r} is not a container image name", field="image")


def _check_output(target: Path, force: bool) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InvalidInput(f"{target} exists and is not a folder", field="output")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise InvalidInput(
            f"{target} is not empty; choose another folder or pass --force to replace it",
            field="output",
        )


def _publish(staging: Path, target: Path, force: bool) -> None:
    """Move the finished bundle into place (replacing ``target`` only with ``force``)."""
    _check_output(target, force)
    if target.is_dir():
        if not any(target.iterdir()):
            target.rmdir()
        else:
            old = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
            os.rename(target, old)
            try:
                os.rename(staging, target)
            except OSError:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
            return
    os.rename(staging, target)


def _copy_model(tracking: TrackingService, version: ModelVersion, target: Path) -> dict[str, Any]:
    """Copy a version's model files, verifying each against its manifest's sha256."""
    from loopml.models.flavors import FLAVORS
    from loopml.models.storage import MANIFEST

    source = f"{version.run_id}/{version.artifact_path}"
    raw = b"".join(tracking.read_artifact(version.run_id, f"{version.artifact_path}/{MANIFEST}"))
    manifest: dict[str, Any] = json.loads(raw)
    if manifest.get("flavor") not in FLAVORS:
        raise InvalidInput(f"unknown model flavor {manifest.get('flavor')!r}", field="flavor")
    target.mkdir()
    for name, expected in manifest["files"].items():
        _check_file_name(name)
        digest = hashlib.sha256()
        with (target / name).open("wb") as out:
            for chunk in tracking.read_artifact(version.run_id, f"{version.artifact_path}/{name}"):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise InvalidInput(
                f"model file {name} of {version.name}/{version.version} (runs:/{source}) changed "
                f"since it was logged (sha256 {digest.hexdigest()[:12]}… != {expected[:12]}…); "
                "refusing to bundle it",
                field="model",
            )
    (target / MANIFEST).write_bytes(raw)
    return manifest


def _check_file_name(name: str) -> None:
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise InvalidInput(f"the model manifest names an invalid file {name!r}", field="model")


def _slug(name: str) -> str:
    """A Kubernetes object name (DNS-1123 label) for a model name."""
    slug = _SLUG.sub("-", name.lower()).strip("-")[:63].rstrip("-")
    return slug or "model"


def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _distribution(module: str) -> str:
    """The installed distribution providing an import name (``xgboost`` -> ``xgboost-cpu``)."""
    from importlib.metadata import packages_distributions

    names = packages_distributions().get(module) or []
    return names[0] if names else _DISTRIBUTIONS.get(module, module)


def requirements_text(
    flavor: str, version: ModelVersion | None = None, *, loopml: str | None = None
) -> str:
    """The pinned ``requirements.txt`` of a bundle serving a model of ``flavor``.

    Parameters
    ----------
    flavor : str
        The model's flavor; its libraries are pinned next to loopml and the serving stack.
    version : ModelVersion, optional
        Named in the header comment.
    loopml : str, optional
        The line installing loopml, such as ``./wheels/loopml-0.4.1-py3-none-any.whl``;
        the installed version is pinned by default.

    Returns
    -------
    str
        One ``name==version`` line per installed library (a library that is not installed is
        left to pip), plus the PyTorch package index for a local build such as ``+cpu``.
    """
    modules = (*BASE_PACKAGES, "prometheus_client", *FLAVOR_PACKAGES.get(flavor, ()))
    pins: dict[str, str] = {}
    for module in modules:
        name = _distribution(module)
        installed = _installed_version(name)
        if installed is not None:
            pins.setdefault(name, installed)
    if loopml is None:
        release = _installed_version("loopml")
        loopml = f"loopml=={release}" if release is not None else None
    what = f"{version.name}/{version.version} " if version is not None else ""
    lines = [f"# Written by loopml build for {what}({flavor}): the versions installed then."]
    torch = pins.get("torch", "")
    if "+" in torch:
        # Local builds (2.3.0+cpu) live only on PyTorch's own index.
        lines.append(f"--extra-index-url https://download.pytorch.org/whl/{torch.split('+', 1)[1]}")
    if loopml is not None:
        lines.append(loopml)
    lines += [f"{name}=={pinned}" for name, pinned in pins.items()]
    return "\n".join(lines) + "\n"


def dockerfile_text(version: ModelVersion, flavor: str, port: int, *, wheels: bool = False) -> str:
    """The bundle's Dockerfile: a slim image running ``serve.py`` as a non-root user.

    Parameters
    ----------
    version : ModelVersion
        The version bundled (named in a comment).
    flavor : str
        The model's flavor (named in a comment).
    port : int
        Exposed, and the default of ``$PORT``.
    wheels : bool, default False
        Copy ``wheels/`` into the image before installing, for ``requirements.txt`` to
        install loopml from it.

    Returns
    -------
    str
        The Dockerfile text.
    """
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    probe = (
        "import os, urllib.request; urllib.request.urlopen("
        "'http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"
    )
    return "\n".join(
        [
            f"# Serves {version.name}/{version.version} ({flavor}); written by loopml build.",
            f"FROM python:{python}-slim",
            "",
            "ENV PYTHONDONTWRITEBYTECODE=1 \\",
            "    PYTHONUNBUFFERED=1 \\",
            "    PIP_NO_CACHE_DIR=1 \\",
            "    PIP_DISABLE_PIP_VERSION_CHECK=1 \\",
            "    HOST=0.0.0.0 \\",
            f"    PORT={port}",
            "WORKDIR /app",
            "",
            *([f"COPY {WHEELS_DIR}/ {WHEELS_DIR}/"] if wheels else []),
            "COPY requirements.txt .",
            "RUN pip install -r requirements.txt",
            f"RUN useradd --system --uid {CONTAINER_UID} --no-create-home loopml",
            "COPY bundle.json serve.py ./",
            f"COPY {MODEL_DIR}/ {MODEL_DIR}/",
            "",
            f"USER {CONTAINER_UID}",
            f"EXPOSE {port}",
            "HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\",
            f"    CMD {json.dumps(['python', '-c', probe])}",
            'CMD ["python", "serve.py"]',
            "",
        ]
    )


def _write_manifests(
    folder: Path,
    name: str,
    version: ModelVersion,
    image: str,
    port: int,
    replicas: int,
    max_replicas: int,
) -> None:
    """Write the Deployment, Service and HorizontalPodAutoscaler as YAML."""
    import yaml

    folder.mkdir()
    for kind, document in kubernetes_manifests(
        name, version, image, port, replicas, max_replicas
    ).items():
        # A JSON round trip unshares the label dicts, so the YAML holds no anchors/aliases.
        plain = json.loads(json.dumps(document))
        (folder / f"{kind}.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))


def kubernetes_manifests(
    name: str, version: ModelVersion, image: str, port: int, replicas: int, max_replicas: int
) -> dict[str, dict[str, Any]]:
    """The Kubernetes objects of a bundle.

    Parameters
    ----------
    name : str
        The object name (a DNS-1123 label) shared by all three objects.
    version : ModelVersion
        The version served (a label and annotations).
    image : str
        The container image.
    port : int
        The container port; probes use it and the Service forwards port 80 to it.
    replicas, max_replicas : int
        The Deployment's replicas (the autoscaler's minimum) and the autoscaler's maximum.

    Returns
    -------
    dict
        ``{"deployment": ..., "service": ..., "hpa": ...}``, ready for ``yaml.safe_dump``.
    """
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-server"}
    labels = {**selector, "app.kubernetes.io/version": str(version.version)}
    annotations = {"loopml/model": version.name, "loopml/version": str(version.version)}

    def probe(path: str, delay: int, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": port},
            "initialDelaySeconds": delay,
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    container = {
        "name": "model",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": "HOST", "value": "0.0.0.0"}, {"name": "PORT", "value": str(port)}],
        # The server listens only once the model is loaded: allow up to 5 minutes for that
        # before liveness may restart the container.
        "startupProbe": probe("/health", 0, 5, 60),
        "readinessProbe": probe("/ready", 0, 5, 3),
        "livenessProbe": probe("/health", 0, 10, 3),
        "resources": RESOURCES,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": CONTAINER_UID},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": CPU_TARGET},
                    },
                }
            ],
        },
    }
    return {"deployment": deployment, "service": service, "hpa": hpa}


# -- serving a bundle -----------------------------------------------------------------------


def read_bundle(directory: str | Path) -> dict[str, Any]:
    """The ``bundle.json`` of a bundle folder.

    Raises
    ------
    InvalidInput
        When the folder holds no readable ``bundle.json``.
    """
    path = Path(directory) / BUNDLE_FILE
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is missing or unreadable: {exc}", field="bundle") from exc
    if info.get("format") != BUNDLE_FORMAT:
        raise InvalidInput(f"{path} has unknown format {info.get('format')!r}", field="bundle")
    return info


def load_model_folder(directory: str | Path, name: str, version: int) -> LoadedModel:
    """Load a model folder (files plus ``loopml_model.json``) after checking every sha256.

    Parameters
    ----------
    directory : str or Path
        A folder as ``loopml build`` writes it under ``model/``.
    name, version : str, int
        The registered name and version the model is served as.

    Returns
    -------
    LoadedModel
        The model, with ``registered`` set to ``(name, version)``.

    Raises
    ------
    InvalidInput
        When a file is missing or differs from its manifest, or the flavor is unknown.
    """
    import io

    from loopml.models.flavors import FLAVORS
    from loopml.models.storage import INPUT_EXAMPLE, MANIFEST, LoadedModel, file_sha256

    folder = Path(directory)
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"{folder / MANIFEST} is missing or unreadable: {exc}", field="model"
        ) from exc
    flavor = FLAVORS.get(manifest.get("flavor", ""))
    if flavor is None:
        raise InvalidInput(f"unknown model flavor {manifest.get('flavor')!r}", field="flavor")
    for file_name, expected in manifest["files"].items():
        _check_file_name(file_name)
        path = folder / file_name
        if not path.is_file() or file_sha256(path) != expected:
            raise InvalidInput(
                f"model file {path} is missing or changed since the bundle was built; "
                "refusing to load it",
                field="model",
            )
    model = flavor.load(folder, manifest.get("flavor_details", {}), trusted=False, trusted_types=[])
    example = None
    if (folder / INPUT_EXAMPLE).is_file():
        import pandas as pd

        example = pd.read_json(io.StringIO((folder / INPUT_EXAMPLE).read_text()), orient="split")
    loaded = LoadedModel(model, manifest, f"{name}/{version}", example)
    loaded.registered = (name, version)
    return loaded


def create_bundle_app(directory: str | Path, model: LoadedModel | None = None) -> FastAPI:
    """The serving app of a bundle folder; it never opens a store or the registry.

    Parameters
    ----------
    directory : str or Path
        The bundle folder (with ``bundle.json`` and ``model/``).
    model : LoadedModel, optional
        The bundle's model, already loaded; loaded from ``model/`` when the app starts
        otherwise.

    Returns
    -------
    FastAPI
        The regular serving app (``/predict``, ``/health``, ``/ready``, ``/metrics``...).
    """
    from loopml.serving.app import create_serving_app

    folder = Path(directory)
    info = read_bundle(folder)
    name, version = str(info["model"]), int(info["version"])

    def loader(spec: str) -> LoadedModel:
        return model if model is not None else load_model_folder(folder / MODEL_DIR, name, version)

    def resolver(spec: str) -> tuple[str, int | None]:
        return name, version

    return create_serving_app(f"{name}/{version}", loader=loader, resolver=resolver)


def serve_bundle(directory: str | Path) -> None:
    """Serve a bundle folder on ``$HOST:$PORT`` until stopped (``serve.py`` calls this).

    The model is loaded and verified before the server starts listening, so a damaged bundle
    stops with one error line instead of a server that never becomes ready.

    Parameters
    ----------
    directory : str or Path
        The bundle folder.

    Raises
    ------
    InvalidInput
        For a bad ``$PORT`` or a damaged bundle.
    """
    import uvicorn

    folder = Path(directory)
    info = read_bundle(folder)
    host = os.environ.get("HOST") or "0.0.0.0"
    raw_port = os.environ.get("PORT") or str(info.get("port", 8080))
    if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
        raise InvalidInput(f"PORT must be a TCP port number, got {raw_port!r}", field="PORT")
    model = load_model_folder(folder / MODEL_DIR, str(info["model"]), int(info["version"]))
    uvicorn.run(create_bundle_app(folder, model), host=host, port=int(raw_port))
