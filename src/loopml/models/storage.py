"""Logging models into runs and loading them back, with every file's sha256 verified.

A logged model is a folder of run artifacts: the flavor's files, an optional
``input_example.json``, an optional ``background.parquet`` (the sample explanations integrate
over), and ``loopml_model.json``, the manifest listing every file with its sha256, the flavor,
the signature and the versions it was saved with. The manifest is written last, so a
half-logged model cannot be loaded; on load, each file is checked against it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput
from loopml.models import signature as signatures
from loopml.models.flavors import FLAVORS, choose_flavor

if TYPE_CHECKING:
    import pandas as pd

    from loopml.tracking.service import TrackingService

MANIFEST = "loopml_model.json"
INPUT_EXAMPLE = "input_example.json"
BACKGROUND = "background.parquet"
#: At most this many background rows are stored; explanations cost grows with the sample.
MAX_BACKGROUND_ROWS = 200
_RUNS_URI = re.compile(r"^runs:/(?P<run>[0-9a-f]{32})/(?P<path>.+)$")


@dataclass(frozen=True)
class ModelInfo:
    """Where a logged model is and what it is."""

    run_id: str
    artifact_path: str
    flavor: str
    signature: dict[str, Any] | None
    files: dict[str, str]

    @property
    def uri(self) -> str:
        """``runs:/<run_id>/<artifact_path>``."""
        return f"runs:/{self.run_id}/{self.artifact_path}"


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, as model manifests record it.

    Parameters
    ----------
    path : Path
        The file, read in 1 MiB chunks.

    Returns
    -------
    str
        The lowercase hex digest.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def private_directory() -> Iterator[Path]:
    """A temporary folder only this user can read (0700), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="loopml-model-"))
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def save_model_files(
    model: Any,
    directory: Path,
    *,
    flavor: str | None = None,
    signature: dict[str, Any] | None = None,
    input_example: Any = None,
    background: Any = None,
) -> dict[str, Any]:
    """Write a model's files and manifest into ``directory``; return the manifest.

    ``background`` (a DataFrame or records) is stored as ``background.parquet``, at most
    :data:`MAX_BACKGROUND_ROWS` rows drawn with a fixed seed; without it the input example
    is stored in its place.
    """
    chosen = choose_flavor(model, flavor)
    example_frame = None
    if input_example is not None:
        example_frame = signatures.as_frame(input_example, field="input_example")
        if signature is None:
            output = None
            predict = getattr(chosen, "predict_example", None)
            if predict is not None or hasattr(model, "predict"):
                try:
                    output = (
                        predict(model, example_frame)
                        if predict is not None
                        else model.predict(example_frame)
                    )
                except Exception as exc:  # noqa: BLE001 - the user's model, any error
                    raise InvalidInput(
                        f"the model cannot predict on the input example: {exc}",
                        field="input_example",
                    ) from exc
            signature = signatures.infer_signature(example_frame, output)
        (directory / INPUT_EXAMPLE).write_text(
            example_frame.to_json(orient="split", index=False, date_format="iso")
        )
    background_info = _save_background(background, example_frame, signature, directory)
    details = chosen.save(model, directory)
    files = {p.name: file_sha256(p) for p in sorted(directory.iterdir()) if p.name != MANIFEST}
    manifest = {
        "format": 1,
        "flavor": chosen.name,
        "flavor_details": details,
        "files": files,
        "signature": signature,
        "has_predict_proba": hasattr(model, "predict_proba"),
        "background": background_info,
        "python": platform.python_version(),
        "loopml": _version(),
        "created_time": int(time.time() * 1000),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def _save_background(
    background: Any,
    example: pd.DataFrame | None,
    signature: dict[str, Any] | None,
    directory: Path,
) -> dict[str, Any] | None:
    """Write ``background.parquet``; return its manifest entry (None when there is none)."""
    explicit = background is not None
    if explicit:
        frame = signatures.as_frame(background, field="background")
        if frame.empty:
            raise InvalidInput("the background sample has no rows", field="background")
        if signature:
            try:
                frame = signatures.enforce(frame, signature)
            except InvalidInput as exc:
                raise InvalidInput(
                    f"the background sample does not match the signature: {exc.message}",
                    field="background",
                ) from exc
    elif example is not None and not example.empty:
        frame = example
    else:
        return None
    if len(frame) > MAX_BACKGROUND_ROWS:
        frame = frame.sample(n=MAX_BACKGROUND_ROWS, random_state=0)
    try:
        frame.reset_index(drop=True).to_parquet(directory / BACKGROUND, index=False)
    except (ValueError, TypeError, NotImplementedError, ArithmeticError) as exc:
        (directory / BACKGROUND).unlink(missing_ok=True)
        if not explicit:
            # An example Parquet cannot hold (mixed-type columns...) logged fine before
            # background samples existed: the model is still logged, just without one.
            return None
        raise InvalidInput(
            f"the background sample cannot be stored as Parquet: {exc}", field="background"
        ) from exc
    source = "background" if explicit else "input_example"
    return {"file": BACKGROUND, "rows": len(frame), "source": source}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("loopml")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def log_model(
    tracking: TrackingService,
    run_id: str,
    model: Any,
    artifact_path: str = "model",
    *,
    flavor: str | None = None,
    signature: dict[str, Any] | None = None,
    input_example: Any = None,
    background: Any = None,
) -> ModelInfo:
    """Store a model in a run's artifacts (files first, manifest last)."""
    with private_directory() as directory:
        manifest = save_model_files(
            model,
            directory,
            flavor=flavor,
            signature=signature,
            input_example=input_example,
            background=background,
        )
        for name in manifest["files"]:
            with (directory / name).open("rb") as stream:
                tracking.log_artifact_stream(run_id, f"{artifact_path}/{name}", stream)
        with (directory / MANIFEST).open("rb") as stream:
            tracking.log_artifact_stream(run_id, f"{artifact_path}/{MANIFEST}", stream)
    return ModelInfo(
        run_id, artifact_path, manifest["flavor"], manifest["signature"], manifest["files"]
    )


class LoadedModel:
    """A loaded model whose ``predict`` checks its input against the signature.

    ``background`` is the stored background sample (None for models logged without one).
    """

    def __init__(
        self,
        model: Any,
        manifest: dict[str, Any],
        source: str,
        input_example: pd.DataFrame | None,
        background: pd.DataFrame | None = None,
    ) -> None:
        self.model = model
        self.manifest = manifest
        self.source = source
        self.input_example = input_example
        self.background = background
        #: ``(name, version)`` when loaded from the registry; evaluations are stored there.
        self.registered: tuple[str, int] | None = None

    @property
    def classes_(self) -> Any:
        """The class labels of a classifier (as scikit-learn names them)."""
        if not hasattr(self.model, "classes_"):
            raise AttributeError("classes_")
        return self.model.classes_

    @property
    def flavor(self) -> str:
        """The flavor the model was saved with."""
        return str(self.manifest["flavor"])

    @property
    def signature(self) -> dict[str, Any] | None:
        """The input (and output) signature, when one was recorded."""
        return self.manifest.get("signature")

    def predict(self, data: Any) -> Any:
        """Predict after checking and aligning the input (a DataFrame or records)."""
        return self.model.predict(signatures.enforce(data, self.signature))

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities, for flavors whose model has them."""
        if not hasattr(self.model, "predict_proba"):
            raise InvalidInput(
                f"this {self.flavor} model has no predict_proba", field="predict_proba"
            )
        return self.model.predict_proba(signatures.enforce(data, self.signature))

    def __repr__(self) -> str:
        return f"<LoadedModel {self.flavor} from {self.source}>"


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """Split ``runs:/<run_id>/<path>``."""
    match = _RUNS_URI.match(uri)
    if match is None:
        raise InvalidInput(f"{uri!r} is not a runs:/<run_id>/<path> URI", field="model_uri")
    return match.group("run"), match.group("path").strip("/")


def read_manifest(tracking: TrackingService, run_id: str, artifact_path: str) -> dict[str, Any]:
    """The manifest of a logged model."""
    raw = b"".join(tracking.read_artifact(run_id, f"{artifact_path}/{MANIFEST}"))
    manifest: dict[str, Any] = json.loads(raw)
    return manifest


def load_logged_model(
    tracking: TrackingService,
    run_id: str,
    artifact_path: str,
    *,
    trusted: bool = False,
    trusted_types: list[str] | None = None,
) -> LoadedModel:
    """Download, verify every file's sha256 against the manifest, and load."""
    manifest = read_manifest(tracking, run_id, artifact_path)
    flavor = FLAVORS.get(manifest.get("flavor", ""))
    if flavor is None:
        raise InvalidInput(f"unknown model flavor {manifest.get('flavor')!r}", field="flavor")
    with private_directory() as directory:
        for name, expected in manifest["files"].items():
            if "/" in name or name in ("", ".", ".."):
                raise InvalidInput(f"the manifest names an invalid file {name!r}", field="model")
            target = directory / name
            with target.open("wb") as out:
                for chunk in tracking.read_artifact(run_id, f"{artifact_path}/{name}"):
                    out.write(chunk)
            actual = file_sha256(target)
            if actual != expected:
                raise InvalidInput(
                    f"model file {name} of runs:/{run_id}/{artifact_path} changed since it was "
                    f"logged (sha256 {actual[:12]}… != {expected[:12]}…); refusing to load it",
                    field="model",
                )
        model = flavor.load(
            directory,
            manifest.get("flavor_details", {}),
            trusted=trusted,
            trusted_types=list(trusted_types or []),
        )
        example = None
        if (directory / INPUT_EXAMPLE).is_file():
            import pandas as pd

            example = pd.read_json(
                io.StringIO((directory / INPUT_EXAMPLE).read_text()), orient="split"
            )
        background = None
        # Only a file the manifest lists (and so was verified above) is read.
        if BACKGROUND in manifest["files"]:
            import pandas as pd

            background = pd.read_parquet(directory / BACKGROUND)
    return LoadedModel(model, manifest, f"runs:/{run_id}/{artifact_path}", example, background)
