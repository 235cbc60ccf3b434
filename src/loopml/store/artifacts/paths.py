"""Normalisation and confinement of user-given artifact paths.

Every artifact, dataset and model path a user or a client sends goes through
:func:`normalize_artifact_path` before it names anything, and every path that touches a
local disk goes through :func:`confine` as well. The rules come from the path-traversal
bugs other ML platforms shipped: ``..`` segments, backslashes, absolute and drive paths,
URLs (``file://``), ``#`` and ``?`` (a fragment or query that a later URL parse drops),
and the same tricks hidden behind one or more rounds of percent-encoding.

Percent signs themselves are allowed: ``"100%.txt"`` and ``"a%20b.txt"`` are stored under
exactly that name. A path is refused only when some decoded form of it would be dangerous,
so a component that decodes the path again later cannot be tricked into leaving its root.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from loopml.errors import InvalidInput

MAX_PATH_LENGTH = 1024
"""Longest accepted path, in characters."""

MAX_SEGMENT_BYTES = 255
"""Longest accepted path segment in UTF-8 bytes (``NAME_MAX`` on common filesystems)."""

# Enough for any honest name; a path still changing after this many decodes is an attack.
_MAX_DECODE_ROUNDS = 8

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Bidirectional overrides and isolates let a name display as something it is not.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_SEPARATORS = frozenset("\u2028\u2029")


def normalize_artifact_path(path: str, *, field: str = "path", allow_empty: bool = False) -> str:
    """Check a user-given relative path and return its clean POSIX form.

    ``"./a//b/"`` becomes ``"a/b"``. Anything that could name a file outside the root the
    path is later joined to is refused, including when hidden behind percent-encoding
    (single, double or deeper), NFKC-equivalent look-alike characters, or Windows path
    syntax.

    Parameters
    ----------
    path : str
        The path as the user gave it, relative to some root.
    field : str, default "path"
        Name of the input field, reported in the error.
    allow_empty : bool, default False
        Return ``""`` for an empty path (or one made of ``.`` and ``/`` only) instead of
        refusing it; useful for listing prefixes, where empty means the whole root.

    Returns
    -------
    str
        The path with ``.`` segments, duplicate and trailing slashes removed.

    Raises
    ------
    InvalidInput
        With ``field`` set, and a message naming the problem, when the path is not a
        string, is empty, is longer than 1024 characters, has a segment longer than 255
        bytes, or contains (raw or in any decoded form) a control or bidi character, a
        backslash, a leading ``/``, a ``:`` (URL schemes, drive letters, NTFS streams), a
        ``..`` segment or one made only of dots and spaces, ``#`` or ``?``.
    """
    if not isinstance(path, str):
        raise InvalidInput(f"{field} must be a string, not {type(path).__name__}", field=field)
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidInput(
            f"{field} is {len(path)} characters long; the limit is {MAX_PATH_LENGTH}",
            field=field,
        )
    for form, how in _decoded_forms(path, field):
        problem = _problem(form)
        if problem is not None:
            raise InvalidInput(f"{field} {path!r} {problem}{how}", field=field)

    segments = [s for s in path.split("/") if s not in ("", ".")]
    if not segments:
        if allow_empty:
            return ""
        raise InvalidInput(f"{field} is empty", field=field)
    for segment in segments:
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidInput(
                f"{field} has a segment longer than {MAX_SEGMENT_BYTES} bytes: {segment[:40]!r}...",
                field=field,
            )
    return "/".join(segments)


def confine(
    root: str | Path, relative: str, *, field: str = "path", allow_empty: bool = False
) -> Path:
    """Join a user-given relative path to ``root`` and prove the result stays inside it.

    The joined path is resolved, following every symlink on the way, so a link that
    points outside ``root`` (at any depth, including the last segment) is refused.

    Parameters
    ----------
    root : str or Path
        The folder the path must stay in. It need not exist yet.
    relative : str
        The user-given path; it goes through :func:`normalize_artifact_path` first.
    field : str, default "path"
        Name of the input field, reported in the error.
    allow_empty : bool, default False
        Accept an empty path and return the resolved root itself.

    Returns
    -------
    Path
        The resolved absolute path, strictly inside the resolved ``root`` (or the root
        itself for an allowed empty path).

    Raises
    ------
    InvalidInput
        When the path is malformed or resolves outside ``root``.
    """
    clean = normalize_artifact_path(relative, field=field, allow_empty=allow_empty)
    real_root = Path(root).resolve()
    if not clean:
        return real_root
    target = (real_root / clean).resolve()
    if target == real_root or not target.is_relative_to(real_root):
        raise InvalidInput(
            f"{field} {relative!r} leaves its root (a symlink points outside it)", field=field
        )
    return target


def safe_extract_destination(dest_root: str | Path, relative: str, *, field: str = "path") -> Path:
    """Return where a downloaded artifact may be written, creating its parent folders.

    Use this when copying a run's (or a model's) files into a local folder: the path comes
    from stored metadata, which may have been written by anyone with write access, so it
    is checked again here. The parent folders are created and then checked once more, so
    a symlink planted among them cannot redirect the write.

    Parameters
    ----------
    dest_root : str or Path
        The local folder everything is extracted into.
    relative : str
        The artifact path relative to ``dest_root``.
    field : str, default "path"
        Name of the input field, reported in the error.

    Returns
    -------
    Path
        A resolved path inside ``dest_root`` whose parent folder exists.

    Raises
    ------
    InvalidInput
        When the path is malformed or would leave ``dest_root``, or when it names an
        existing folder.
    """
    root = Path(dest_root)
    target = confine(root, relative, field=field)
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkdir follows symlinks, so check again now that every parent exists.
    target = confine(root, relative, field=field)
    if target.is_dir():
        raise InvalidInput(f"{field} {relative!r} names an existing folder", field=field)
    return target


def _decoded_forms(path: str, field: str) -> list[tuple[str, str]]:
    """Return the path and each successive percent-decoding of it, then their NFKC forms.

    Each form comes with the words that tell the user how it was obtained.
    """
    forms = [(path, "")]
    current = path
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(current)
        if decoded == current:
            break
        forms.append((decoded, " once percent-decoded"))
        current = decoded
    else:
        raise InvalidInput(f"{field} {path!r} is percent-encoded too many times", field=field)
    # Fullwidth dots and slashes fold to ASCII under NFKC; a later normaliser must not
    # be able to turn a harmless-looking name into a traversal.
    seen = {form for form, _ in forms}
    for form, how in list(forms):
        folded = unicodedata.normalize("NFKC", form)
        if folded not in seen:
            seen.add(folded)
            forms.append((folded, f"{how} and NFKC-normalised" if how else " once NFKC-normalised"))
    return forms


def _problem(form: str) -> str | None:
    """Describe what makes one form of a path unacceptable, or return None."""
    for char in form:
        category = unicodedata.category(char)
        if category == "Cc":
            return f"contains a control character ({ord(char):#04x})"
        if category == "Cs":
            return f"contains a lone surrogate (U+{ord(char):04X})"
        if char in _BIDI_CONTROLS or char in _LINE_SEPARATORS:
            return f"contains an invisible formatting character (U+{ord(char):04X})"
    if "\\" in form:
        return "contains a backslash"
    if "#" in form or "?" in form:
        return "contains '#' or '?'"
    if form.startswith("/"):
        return "is absolute"
    if _DRIVE.match(form):
        return "starts with a drive letter"
    if _SCHEME.match(form):
        return "is a URL"
    for segment in form.split("/"):
        if segment == "..":
            return "contains a '..' segment"
        # Windows drops trailing dots and spaces, so "..." and ".. " act as "..".
        if segment not in ("", ".") and not segment.rstrip(". "):
            return "contains a segment made only of dots and spaces"
        if ":" in segment:
            return "contains ':' (URL schemes, drive letters and streams are not allowed)"
    return None


_SHA256 = re.compile(r"[0-9a-f]{64}")


def validate_sha256(sha256: str, *, field: str = "sha256") -> str:
    """Check that a blob name is a sha256 digest: exactly 64 lowercase hex characters.

    Blob names become storage paths, so this is also what stops a crafted name from
    reaching the filesystem or an object key.

    Parameters
    ----------
    sha256 : str
        The digest to check.
    field : str, default "sha256"
        Name of the input field, reported in the error.

    Returns
    -------
    str
        The digest, unchanged.

    Raises
    ------
    InvalidInput
        When it is not a string of 64 lowercase hex characters.
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidInput(
            f"{field} must be 64 lowercase hex characters, got {sha256!r:.80}", field=field
        )
    return sha256


def blob_relpath(sha256: str) -> str:
    """Return where a blob lives relative to its store root: ``blobs/<sha[:2]>/<sha[2:]>``.

    Parameters
    ----------
    sha256 : str
        The blob's digest; validated with :func:`validate_sha256`.

    Returns
    -------
    str
        The relative POSIX path of the blob.
    """
    validate_sha256(sha256)
    return f"blobs/{sha256[:2]}/{sha256[2:]}"
