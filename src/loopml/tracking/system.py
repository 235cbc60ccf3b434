"""What a run records about where it ran: git, Python, packages, host, user, command line."""

from __future__ import annotations

import functools
import getpass
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: Tags loopml sets itself; users can read them like any other tag.
SYSTEM_TAG_PREFIX = "loopml."
_KEY_PACKAGES = (
    "loopml",
    "numpy",
    "pandas",
    "scikit-learn",
    "pyarrow",
    "torch",
    "xgboost",
    "lightgbm",
)


def current_user() -> str:
    """The login name of the current user, or ``unknown``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def git_info(cwd: Path | None = None) -> dict[str, str]:
    """Commit, dirty flag and branch of the git repository around ``cwd``, if any."""
    where = cwd or Path.cwd()
    commit = _git(["rev-parse", "HEAD"], where)
    if not commit:
        return {}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    info = {"git.commit": commit, "git.dirty": "true" if status else "false"}
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], where)
    if branch:
        info["git.branch"] = branch
    return info


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of the key packages that are installed (read once per process)."""
    versions = {}
    for name in _KEY_PACKAGES:
        try:
            versions[f"package.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def system_tags() -> dict[str, str]:
    """The tags every run records at start (all prefixed ``loopml.``)."""
    source = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "<interactive>"
    tags = {
        "host": socket.gethostname(),
        "user": current_user(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "pid": str(os.getpid()),
        "source": source,
        "command": " ".join(sys.argv)[:2000] if sys.argv else "",
        **git_info(),
        **package_versions(),
    }
    return {f"{SYSTEM_TAG_PREFIX}{k}": v for k, v in tags.items()}
