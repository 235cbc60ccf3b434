"""How a serving bundle installs loopml itself: a release from the package index, or a wheel.

A loopml installed from a package index is pinned (``loopml==0.4.1``) like every other
library. A loopml installed from a source checkout or a local file (``pip install -e .``,
``pip install ./loopml``) may be published nowhere, so the bundle carries a wheel of it under
``wheels/`` and ``requirements.txt`` names that file instead. pip records where a distribution
came from in its ``direct_url.json`` (PEP 610); that is how the two cases are told apart.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loopml.errors import InvalidInput

#: The bundle folder holding the loopml wheel.
WHEELS_DIR = "wheels"
#: Seconds ``pip wheel`` may take: a build backend may first be fetched from the index.
WHEEL_TIMEOUT = 600
# {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl, for the distribution "loopml".
_WHEEL_NAME = re.compile(
    r"^loopml-(?P<version>[^-]+)(-[0-9][^-]*)?-[^-]+-[^-]+-[^-]+\.whl$", re.IGNORECASE
)
_PACKAGE_FILE = "loopml/__init__.py"


@dataclass(frozen=True)
class LoopmlInstall:
    """How a bundle installs loopml (recorded as ``loopml_install`` in ``bundle.json``).

    Attributes
    ----------
    provided_by : str
        ``"index"`` (a pinned release from the package index), ``"source"`` (a wheel built
        from the folder loopml is installed from) or ``"wheel"`` (a wheel given with
        ``--loopml-wheel``).
    requirement : str or None
        The ``requirements.txt`` line; None when loopml is not installed as a distribution.
    version : str or None
        The loopml version the bundle installs.
    wheel : str or None
        The wheel, relative to the bundle folder.
    sha256 : str or None
        The wheel's sha256.
    origin : str or None
        The folder or file the wheel was built or copied from.
    """

    provided_by: str
    requirement: str | None
    version: str | None
    wheel: str | None = None
    sha256: str | None = None
    origin: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The install as a JSON-ready dict."""
        return asdict(self)

    def describe(self) -> str:
        """One line for people: what ``requirements.txt`` installs loopml from."""
        if self.wheel is None:
            return f"{self.requirement or 'loopml (not pinned)'} from the package index"
        how = "built from" if self.provided_by == "source" else "copied from"
        return f"{self.wheel} ({how} {self.origin})"


def installed_origin() -> Path | None:
    """The local folder or file the installed loopml came from, if it came from one.

    Returns
    -------
    Path or None
        The path of a ``file://`` URL in loopml's ``direct_url.json`` (a source folder,
        editable or not, or a local wheel or sdist); None for a release installed from a
        package index (no ``direct_url.json``), a remote URL or a VCS checkout.
    """
    from urllib.parse import unquote, urlparse
    from urllib.request import url2pathname

    info = _direct_url()
    if info is None or not ("dir_info" in info or "archive_info" in info):
        return None
    url = info.get("url")
    if not isinstance(url, str) or not url.startswith("file:"):
        return None
    return Path(url2pathname(unquote(urlparse(url).path)))


def _direct_url() -> dict[str, Any] | None:
    """The ``direct_url.json`` (PEP 610) of the installed loopml, or None."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        raw = distribution("loopml").read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    try:
        info = json.loads(raw) if raw else None
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def provide_loopml(bundle: Path, wheel: str | Path | None = None) -> LoopmlInstall:
    """Decide how the bundle installs loopml; put a wheel under ``wheels/`` if it needs one.

    Parameters
    ----------
    bundle : Path
        The bundle folder being written.
    wheel : str or Path, optional
        A loopml wheel to bundle as is; otherwise one is built when loopml was installed
        from a local folder or file, and the installed release is pinned when it was not.

    Returns
    -------
    LoopmlInstall
        The ``requirements.txt`` line and what was bundled.

    Raises
    ------
    InvalidInput
        For a given file that is not a loopml wheel, or when building the wheel fails.
    """
    if wheel is not None:
        given = check_wheel(wheel)
        (bundle / WHEELS_DIR).mkdir()
        shutil.copyfile(given, bundle / WHEELS_DIR / given.name)
        return _wheel_install(bundle / WHEELS_DIR / given.name, "wheel", given)
    origin = installed_origin()
    if origin is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            release: str | None = version("loopml")
        except PackageNotFoundError:
            release = None
        return LoopmlInstall("index", f"loopml=={release}" if release else None, release)
    built = build_wheel(origin, bundle / WHEELS_DIR)
    return _wheel_install(built, "source", origin)


def _wheel_install(path: Path, kind: str, origin: Path) -> LoopmlInstall:
    match = _WHEEL_NAME.match(path.name)
    relative = f"{WHEELS_DIR}/{path.name}"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    # pip reads a requirement that is a path relative to the folder it runs in (the bundle).
    return LoopmlInstall(
        kind,
        f"./{relative}",
        match.group("version") if match else None,
        relative,
        digest,
        str(origin),
    )


def check_wheel(path: str | Path, field: str = "loopml_wheel") -> Path:
    """Check that ``path`` is a loopml wheel: a zip named ``loopml-<version>-...whl``.

    Parameters
    ----------
    path : str or Path
        The wheel file.
    field : str, default "loopml_wheel"
        The field named by the error.

    Returns
    -------
    Path
        The wheel, resolved.

    Raises
    ------
    InvalidInput
        When the file is missing, misnamed, not a zip or holds no ``loopml`` package.
    """
    wheel = Path(path).expanduser().resolve()
    if not wheel.is_file():
        raise InvalidInput(f"{path} is not a file", field=field)
    if not _WHEEL_NAME.match(wheel.name):
        raise InvalidInput(
            f"{wheel.name} is not named like a loopml wheel (loopml-<version>-py3-none-any.whl)",
            field=field,
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"{path} is not a wheel: {exc}", field=field) from exc
    if _PACKAGE_FILE not in names:
        raise InvalidInput(f"{path} holds no {_PACKAGE_FILE}", field=field)
    return wheel


def build_wheel(source: Path, folder: Path) -> Path:
    """Build a wheel of loopml from ``source`` into the new ``folder`` with ``pip wheel``.

    Parameters
    ----------
    source : Path
        A source folder (or a local sdist or wheel) of loopml.
    folder : Path
        Where the wheel is written; it must not exist.

    Returns
    -------
    Path
        The wheel.

    Raises
    ------
    InvalidInput
        When ``source`` is gone or pip fails; the message suggests ``--loopml-wheel``.
    """
    advice = "build one yourself and pass it with --loopml-wheel PATH"
    if not source.exists():
        raise InvalidInput(
            f"loopml was installed from {source}, which no longer exists; {advice}",
            field="loopml_wheel",
        )
    folder.mkdir()
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
    command += ["--wheel-dir", str(folder), str(source)]
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=WHEEL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InvalidInput(
            f"could not build a wheel of loopml from {source} ({exc}); {advice}",
            field="loopml_wheel",
        ) from exc
    wheels = sorted(p for p in folder.iterdir() if _WHEEL_NAME.match(p.name))
    if done.returncode != 0 or len(wheels) != 1:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines()]
        detail = " ".join(line for line in lines if line)[-400:] or "no wheel was written"
        raise InvalidInput(
            f"could not build a wheel of loopml from {source} (pip wheel exited with "
            f"{done.returncode}: {detail}); {advice}",
            field="loopml_wheel",
        )
    return check_wheel(wheels[0])
