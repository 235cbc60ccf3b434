"""Serving bundles: built from the registry, verified, and served without a store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version as installed
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import sklearn
import yaml
from click.testing import Result
from typer.testing import CliRunner

import loopml as lm
from conftest import free_port, module_home, register_iris
from loopml.cli.main import app
from loopml.errors import InvalidInput
from loopml.models.storage import LoadedModel, read_manifest
from loopml.serving import _bundle_files, bundle
from loopml.serving.bundle import build_bundle, load_model_folder, requirements_text

runner = CliRunner()
#: The source checkout these tests run from (it holds pyproject.toml).
CHECKOUT = Path(__file__).resolve().parents[3]
WHEEL_LINE = "./wheels/loopml-"


@dataclass(frozen=True)
class Built:
    """The bundle built once for this module, from a loopml installed from ``CHECKOUT``."""

    out: Path
    result: dict[str, Any]
    features: pd.DataFrame
    expected: LoadedModel


@pytest.fixture
def iris() -> pd.DataFrame:
    """Register ``iris`` version 1 as ``iris@champion``; return its features."""
    return register_iris()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Build one bundle as if loopml were an editable install of ``CHECKOUT``.

    Building the loopml wheel takes seconds, so the tests that only read a bundle share this
    one. It has its own store (the per-test home does not exist yet at module scope).
    """
    editable = {"url": CHECKOUT.as_uri(), "dir_info": {"editable": True}}
    with module_home(tmp_path_factory, "built") as root, pytest.MonkeyPatch.context() as patch:
        patch.setattr(_bundle_files, "_direct_url", lambda: editable)
        features = register_iris()
        out = root / "bundle"
        args = ["build", "iris@champion", str(out), "--port", "9090", "--replicas", "3"]
        result = _invoke([*args, "--image", "registry.example.com/ml/iris:1", "--json"])
        assert result.exit_code == 0, result.output
        expected = lm.models.load("iris@champion")
        # The alias moves after the build: the bundle keeps serving the version it pinned.
        lm.registry.register(lm.registry.resolve("iris@champion").source, "iris")
        lm.registry.set_alias("iris", "champion", 2, reason="retrained")
    return Built(out, json.loads(result.stdout), features, expected)


@pytest.fixture
def from_index(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Treat loopml as installed from a package index (no ``direct_url.json``)."""
    monkeypatch.setattr(_bundle_files, "_direct_url", lambda: None)
    yield


def _invoke(args: list[str]) -> Result:
    return runner.invoke(app, args, env={"COLUMNS": "200"})


def _yaml(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def test_the_bundle_serves_the_pinned_version_without_a_store(built: Built, tmp_path: Path) -> None:
    out, iris, expected = built.out, built.features, built.expected
    assert built.result["version"] == 1
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "LOOPML_HOME": str(empty_home)}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "serve.py"], cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "the bundle did not become ready"
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            rows = iris.sample(12, random_state=0)
            response = client.post("/predict", json={"inputs": rows.to_dict(orient="records")})
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["model"], body["version"]) == ("iris", 1)
            assert body["predictions"] == expected.predict(rows).tolist()
            np.testing.assert_allclose(body["probabilities"], expected.predict_proba(rows))
            assert client.get("/health").json() == {"status": "ok"}
            bad = client.post("/predict", json={"inputs": [{"petal width (cm)": "wide"}]})
            assert bad.status_code == 422
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    assert list(empty_home.iterdir()) == []  # no store was opened or created


def test_manifests_dockerfile_requirements_and_bundle_json(built: Built) -> None:
    out = built.out
    assert (built.result["model"], built.result["flavor"]) == ("iris", "sklearn")

    assert "&id" not in (out / "k8s" / "deployment.yaml").read_text()  # no YAML aliases
    deployment = _yaml(out / "k8s" / "deployment.yaml")
    service = _yaml(out / "k8s" / "service.yaml")
    hpa = _yaml(out / "k8s" / "hpa.yaml")
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/ml/iris:1"
    assert [p["containerPort"] for p in container["ports"]] == [9090]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 9090}
    assert {"name": "PORT", "value": "9090"} in container["env"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == selector
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [9090]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 15)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}

    dockerfile = (out / "Dockerfile").read_text().splitlines()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    for line in [
        f"FROM python:{python}-slim",
        "RUN pip install -r requirements.txt",
        "USER 10001",
        "EXPOSE 9090",
        'CMD ["python", "serve.py"]',
    ]:
        assert line in dockerfile
    assert any(line.startswith("HEALTHCHECK") for line in dockerfile)
    assert any("/health" in line for line in dockerfile)

    pins = [
        line
        for line in (out / "requirements.txt").read_text().splitlines()
        if line and not line.startswith(("#", "--"))
    ]
    assert pins[0].startswith(WHEEL_LINE)  # loopml comes from the bundle, not an index
    assert all("==" in line for line in pins[1:])
    assert not any(line.startswith("loopml==") for line in pins)
    assert f"scikit-learn=={sklearn.__version__}" in pins
    assert f"skops=={installed('skops')}" in pins

    info = json.loads((out / "bundle.json").read_text())
    assert (info["model"], info["version"], info["flavor"]) == ("iris", 1, "sklearn")
    assert info["loopml"] == lm.__version__
    assert info["built_time"] > 0
    for name, sha in info["files"].items():
        assert hashlib.sha256((out / "model" / name).read_bytes()).hexdigest() == sha
    assert "model.skops" in info["files"]
    assert not list(out.parent.glob(".bundle.*"))  # the staging folder is gone


def test_the_bundle_carries_a_wheel_of_the_source_checkout(built: Built) -> None:
    out = built.out
    (wheel,) = (out / "wheels").iterdir()
    assert wheel.name.startswith(f"loopml-{lm.__version__}-") and wheel.suffix == ".whl"
    assert f"wheels/{wheel.name}" in built.result["files"]
    assert zipfile.is_zipfile(wheel)
    with zipfile.ZipFile(wheel) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
    assert "loopml/__init__.py" in names
    assert "loopml/serving/bundle.py" in names
    assert any(name.endswith(".dist-info/METADATA") for name in names)

    requirements = (out / "requirements.txt").read_text().splitlines()
    assert f"./wheels/{wheel.name}" in requirements
    dockerfile = (out / "Dockerfile").read_text().splitlines()
    copy, install = (
        dockerfile.index("COPY wheels/ wheels/"),
        dockerfile.index("RUN pip install -r requirements.txt"),
    )
    assert copy < install
    assert dockerfile.index("COPY requirements.txt .") < install

    info = json.loads((out / "bundle.json").read_text())
    assert info["loopml_install"] == {
        "provided_by": "source",
        "requirement": f"./wheels/{wheel.name}",
        "version": lm.__version__,
        "wheel": f"wheels/{wheel.name}",
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "origin": str(CHECKOUT),
    }
    assert built.result["loopml"] == info["loopml_install"]

    # pip, run in the bundle folder as the Dockerfile does, finds the wheel requirements.txt
    # names (only that line: the other pins would need a package index).
    only_wheel = out.parent / "only-wheel.txt"
    only_wheel.write_text(f"./wheels/{wheel.name}\n")
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index"]
    done = subprocess.run(
        [*pip, "--ignore-installed", "-r", str(only_wheel)],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"Would install loopml-{lm.__version__}" in done.stdout


def test_a_given_wheel_is_bundled_as_is(
    iris: pd.DataFrame, built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (made,) = (built.out / "wheels").iterdir()
    given = tmp_path / "dist" / made.name
    given.parent.mkdir()
    given.write_bytes(made.read_bytes())

    def no_build(source: Path, folder: Path) -> Path:
        raise AssertionError("a wheel was built although one was given")

    monkeypatch.setattr(_bundle_files, "build_wheel", no_build)
    out = tmp_path / "bundle"
    result = _invoke(["build", "iris@champion", str(out), "--loopml-wheel", str(given)])
    assert result.exit_code == 0, result.output
    assert "built a bundle of iris/1 (sklearn)" in result.stdout
    assert f"wheels/{made.name} (copied from {given})" in result.stdout
    assert (out / "wheels" / made.name).read_bytes() == given.read_bytes()
    assert f"./wheels/{made.name}" in (out / "requirements.txt").read_text().splitlines()
    assert "COPY wheels/ wheels/" in (out / "Dockerfile").read_text()
    install = json.loads((out / "bundle.json").read_text())["loopml_install"]
    assert (install["provided_by"], install["origin"]) == ("wheel", str(given))


def test_loopml_from_an_index_keeps_the_pin(
    iris: pd.DataFrame, tmp_path: Path, from_index: None
) -> None:
    out = tmp_path / "bundle"
    result = build_bundle("iris@champion", out)
    assert result.loopml is not None and result.loopml.provided_by == "index"
    assert not (out / "wheels").exists()
    assert not any(name.startswith("wheels/") for name in result.files)
    requirements = (out / "requirements.txt").read_text().splitlines()
    assert f"loopml=={installed('loopml')}" in requirements
    assert not any(line.startswith(WHEEL_LINE) for line in requirements)
    assert "wheels" not in (out / "Dockerfile").read_text()
    info = json.loads((out / "bundle.json").read_text())
    assert info["loopml"] == installed("loopml")
    assert info["loopml_install"]["provided_by"] == "index"
    assert info["loopml_install"]["wheel"] is None


@pytest.mark.parametrize(
    ("direct_url", "origin"),
    [
        ({"url": "file:///src/loopml", "dir_info": {"editable": True}}, "/src/loopml"),
        ({"url": "file:///src/my%20loopml", "dir_info": {}}, "/src/my loopml"),
        (
            {"url": "file:///dist/loopml-0.1.0-py3-none-any.whl", "archive_info": {}},
            "/dist/loopml-0.1.0-py3-none-any.whl",
        ),
        (None, None),
        ({"url": "https://example.com/loopml-0.1.0.tar.gz", "archive_info": {}}, None),
        ({"url": "https://github.com/x/loopml", "vcs_info": {"vcs": "git"}}, None),
        ({"url": "file:///src/loopml", "vcs_info": {"vcs": "git"}}, None),
    ],
)
def test_where_loopml_was_installed_from(
    monkeypatch: pytest.MonkeyPatch, direct_url: dict[str, Any] | None, origin: str | None
) -> None:
    monkeypatch.setattr(_bundle_files, "_direct_url", lambda: direct_url)
    found = _bundle_files.installed_origin()
    assert (str(found) if found is not None else None) == origin


def test_a_failed_wheel_build_is_one_clear_error(
    iris: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_project = tmp_path / "not-a-project"
    not_a_project.mkdir()
    out = tmp_path / "bundle"
    for source, message in [
        (not_a_project, "could not build a wheel of loopml"),
        (tmp_path / "gone", "no longer exists"),
    ]:
        direct_url = {"url": source.as_uri(), "dir_info": {"editable": True}}
        monkeypatch.setattr(_bundle_files, "_direct_url", lambda d=direct_url: d)
        result = _invoke(["build", "iris@champion", str(out)])
        assert result.exit_code == 2, result.output
        assert message in result.stderr and "--loopml-wheel" in result.stderr, result.stderr
        assert "Traceback" not in result.output
        assert not out.exists()
        assert not list(tmp_path.glob(".bundle.*"))


def test_a_tampered_model_file_is_refused(iris: pd.DataFrame, tmp_path: Path) -> None:
    version = lm.registry.resolve("iris@champion")
    manifest = read_manifest(lm.get_service(), version.run_id, version.artifact_path)
    # Artifacts are stored by content hash: find the blob of model.skops and change it.
    sha = manifest["files"]["model.skops"]
    stored = Path(os.environ["LOOPML_HOME"]) / "artifacts" / "blobs" / sha[:2] / sha[2:]
    stored.write_bytes(stored.read_bytes() + b"\0")
    out = tmp_path / "bundle"
    with pytest.raises(InvalidInput, match="model.skops .*changed since it was logged"):
        build_bundle("iris@champion", out)
    assert not out.exists()
    assert not list(tmp_path.glob(".bundle.*"))


def test_existing_output_needs_force(iris: pd.DataFrame, tmp_path: Path, from_index: None) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    build_bundle("iris@champion", out)  # an empty folder is fine
    (out / "stale.txt").write_text("old")
    with pytest.raises(InvalidInput, match="not empty") as caught:
        build_bundle("iris@champion", out, port=9000)
    assert caught.value.field == "output"
    assert (out / "stale.txt").exists()
    result = build_bundle("iris@champion", out, port=9000, force=True)
    assert not (out / "stale.txt").exists()
    assert "k8s/hpa.yaml" in result.files
    assert "EXPOSE 9000" in (out / "Dockerfile").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_errors_exit_2_without_a_traceback(iris: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    not_a_zip = tmp_path / "loopml-0.1.0-py3-none-any.whl"
    not_a_zip.write_text("not a zip")
    (tmp_path / "other").mkdir()
    empty_wheel = tmp_path / "other" / "loopml-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(empty_wheel, "w") as archive:
        archive.writestr("other/__init__.py", "")
    misnamed = tmp_path / "other" / "loopml.zip"
    misnamed.write_bytes(empty_wheel.read_bytes())
    for args, message in [
        (["build", "nosuch@champion", str(out)], "nosuch"),
        (["build", "iris@nosuch", str(out)], "nosuch"),
        (["build", "iris/7", str(out)], "7"),
        (["build", "iris@champion", str(tmp_path / "full")], "--force"),
        (["build", "iris@champion", str(out), "--image", "bad image"], "image"),
        (["build", "iris@champion", str(out), "--max-replicas", "1"], "max_replicas"),
        (["build", "iris@champion", str(out), "--loopml-wheel", "nosuch.whl"], "nosuch.whl"),
        (["build", "iris@champion", str(out), "--loopml-wheel", str(not_a_zip)], "not a wheel"),
        (["build", "iris@champion", str(out), "--loopml-wheel", str(empty_wheel)], "holds no"),
        (["build", "iris@champion", str(out), "--loopml-wheel", str(misnamed)], "not named"),
    ]:
        result = _invoke(args)
        assert result.exit_code == 2, result.output
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.output
    assert not out.exists()


def test_a_damaged_bundle_does_not_load(
    iris: pd.DataFrame, tmp_path: Path, from_index: None
) -> None:
    out = tmp_path / "bundle"
    build_bundle("iris@champion", out)
    model = load_model_folder(out / "model", "iris", 1)
    assert model.registered == ("iris", 1)
    (out / "model" / "model.skops").write_bytes(b"not a model")
    with pytest.raises(InvalidInput, match="changed since the bundle was built"):
        load_model_folder(out / "model", "iris", 1)


def test_flavor_requirements() -> None:
    torch = requirements_text("torch")
    assert f"torch=={installed('torch')}" in torch.splitlines()
    if "+" in installed("torch"):
        local = installed("torch").split("+", 1)[1]
        assert f"--extra-index-url https://download.pytorch.org/whl/{local}" in torch
    assert "scikit-learn" not in torch
    xgboost = requirements_text("xgboost").splitlines()
    assert any(line.startswith(("xgboost==", "xgboost-cpu==")) for line in xgboost)
    assert f"scikit-learn=={sklearn.__version__}" in xgboost
    assert any(line.startswith("lightgbm==") for line in requirements_text("lightgbm").split())
    assert bundle.BASE_PACKAGES[0] in requirements_text("python")
