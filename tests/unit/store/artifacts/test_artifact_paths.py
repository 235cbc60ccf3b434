"""Path normalisation and confinement: the guard every user-given artifact path crosses."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

from loopml.errors import InvalidInput
from loopml.store.artifacts.paths import (
    MAX_PATH_LENGTH,
    blob_relpath,
    confine,
    normalize_artifact_path,
    safe_extract_destination,
    validate_sha256,
)

SHA = "ab" + "0" * 62

REJECTED = [
    # plain traversal
    "../x",
    "..",
    "a/../../x",
    "a/b/../../../x",
    "a/..",
    # backslashes (Windows separators) and their encodings
    "..\\x",
    "\\..\\x",
    "a\\b",
    "%5c..%5cx",
    "..%5cx",
    "%255c..%255cx",
    # single, double and deeper percent-encoding
    "%2e%2e/x",
    "%2E%2E/x",
    "%2e%2e%2fx",
    "%252e%252e%252fx",
    "%25252e%25252e%25252fx",
    "..%2fx",
    "..%252fx",
    "a/%2e%2e/%2e%2e/x",
    "a/%2e%2e",
    ".%2e/x",
    "%2fetc/passwd",
    "%252fetc%252fpasswd",
    # fragment and query tricks (CVE-2024-3848)
    "x#/../../y",
    "x?a=../../y",
    "x%23/../../y",
    "x%3fa=../../y",
    "model#",
    # absolute paths
    "/etc/passwd",
    "//proc/self/environ",
    "///etc/passwd",
    # URLs and drives
    "file:///etc/passwd",
    "FILE:///etc/passwd",
    "s3://bucket/key",
    "http://example.com/x",
    "http:x",
    "file%3a%2f%2f%2fetc%2fpasswd",
    "C:\\Windows",
    "c:/x",
    "C:",
    "a/C:/x",
    "a/b:stream",
    # control and invisible characters
    "a\x00b",
    "a%00b",
    "a%2500b",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x7fb",
    "a\x85b",
    "a\u202etxt.exe",
    "a\u2028b",
    "\ud800",
    # Windows drops trailing dots and spaces, so these act as ".."
    "...",
    ".. ",
    "a/. ./b",
    # NFKC look-alikes of "." and "/"
    "\uff0e\uff0e/x",
    "\uff0e\uff0e\uff0fx",
    "%ef%bc%8e%ef%bc%8e/x",
    # empty and oversized
    "",
    ".",
    "./",
    "/",
    "//",
    "a" * 2000,
    "a" * (MAX_PATH_LENGTH + 1),
    "a/" + "b" * 256,
    # percent-encoded more times than any honest name
    "%" + "25" * 9 + "2e",
]

ACCEPTED = [
    ("model.pkl", "model.pkl"),
    ("a/b/c.txt", "a/b/c.txt"),
    ("./a//b", "a/b"),
    ("a/./b/", "a/b"),
    ("dir/file with space.txt", "dir/file with space.txt"),
    ("métriques/é.json", "métriques/é.json"),
    ("données/模型.bin", "données/模型.bin"),
    (".hidden/x", ".hidden/x"),
    ("a..b", "a..b"),
    ("..a/b..", "..a/b.."),
    ("v1.0/model.tar.gz", "v1.0/model.tar.gz"),
    # A percent sign is an ordinary character unless some decoding of it is dangerous;
    # the name is kept verbatim, never decoded.
    ("100%.txt", "100%.txt"),
    ("accuracy_95%/plot.png", "accuracy_95%/plot.png"),
    ("a%20b.txt", "a%20b.txt"),
    ("50%25.txt", "50%25.txt"),
    ("~/x", "~/x"),
    ("x/" * 511 + "yy", "x/" * 511 + "yy"),
    ("b" * 255, "b" * 255),
]


@pytest.mark.parametrize("path", REJECTED)
def test_dangerous_paths_are_rejected(path: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_artifact_path(path)
    assert info.value.field == "path"
    assert info.value.message


@pytest.mark.parametrize(("path", "expected"), ACCEPTED)
def test_ordinary_paths_are_normalised(path: str, expected: str) -> None:
    assert normalize_artifact_path(path) == expected


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../x", "'..' segment"),
        ("a\\b", "backslash"),
        ("%2e%2e%2fx", "percent-decoded"),
        ("x#y", "'#' or '?'"),
        ("/etc/passwd", "absolute"),
        ("C:/x", "drive letter"),
        ("file:///etc/passwd", "URL"),
        ("a\x00b", "control character"),
        ("a" * 2000, "1024"),
        ("", "empty"),
        ("\uff0e\uff0e/x", "NFKC"),
    ],
)
def test_messages_name_the_problem(path: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_artifact_path(path, field="artifact_path")
    assert words in info.value.message
    assert info.value.field == "artifact_path"
    assert info.value.to_dict()["field"] == "artifact_path"


def test_empty_is_allowed_on_request() -> None:
    assert normalize_artifact_path("", allow_empty=True) == ""
    assert normalize_artifact_path("./", allow_empty=True) == ""
    with pytest.raises(InvalidInput):
        normalize_artifact_path("../", allow_empty=True)


@pytest.mark.parametrize("value", [None, b"a.txt", 3, Path("a")])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        normalize_artifact_path(value)  # type: ignore[arg-type]


def test_random_mixtures_never_escape(tmp_path: Path) -> None:
    """Any mixture of dangerous fragments is either refused or stays under the root."""
    fragments = [
        "..",
        ".",
        "/",
        "\\",
        "%2e",
        "%2f",
        "%25",
        "%5c",
        "a",
        "#",
        "?",
        ":",
        "\x00",
        "\uff0e",
        "%",
        "2e",
        "//",
        " ",
    ]
    rng = random.Random(1234)
    root = tmp_path / "root"
    root.mkdir()
    for _ in range(5000):
        path = "".join(rng.choice(fragments) for _ in range(rng.randint(1, 8)))
        try:
            clean = normalize_artifact_path(path)
        except InvalidInput:
            continue
        assert ".." not in clean.split("/")
        assert not clean.startswith("/")
        assert "\\" not in clean
        assert (root / clean).resolve().is_relative_to(root.resolve())


def can_symlink(tmp_path: Path) -> bool:
    try:
        (tmp_path / "probe-link").symlink_to(tmp_path)
    except (OSError, NotImplementedError):
        return False
    (tmp_path / "probe-link").unlink()
    return True


@pytest.fixture()
def symlinks(tmp_path: Path) -> None:
    if not can_symlink(tmp_path):
        pytest.skip("symlinks are not available here")


def test_confine_returns_a_resolved_path_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert confine(root, "./a//b.txt") == root.resolve() / "a" / "b.txt"
    assert confine(root, "", allow_empty=True) == root.resolve()


@pytest.mark.parametrize("path", ["../x", "%2e%2e%2fx", "/etc/passwd", ""])
def test_confine_rejects_malformed_paths(tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidInput):
        confine(tmp_path, path)


@pytest.mark.usefixtures("symlinks")
def test_confine_refuses_a_symlinked_folder_that_leaves_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="leaves its root") as info:
        confine(root, "escape/secret.txt", field="artifact_path")
    assert info.value.field == "artifact_path"


@pytest.mark.usefixtures("symlinks")
def test_confine_refuses_a_symlinked_file_that_leaves_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    (root / "model.pkl").symlink_to(secret)
    with pytest.raises(InvalidInput, match="leaves its root"):
        confine(root, "model.pkl")


@pytest.mark.usefixtures("symlinks")
def test_confine_refuses_a_symlink_back_to_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "self").symlink_to(root, target_is_directory=True)
    with pytest.raises(InvalidInput):
        confine(root, "self")


@pytest.mark.usefixtures("symlinks")
def test_confine_allows_symlinks_that_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    assert confine(root, "alias/x.txt") == (root / "real" / "x.txt").resolve()


@pytest.mark.usefixtures("symlinks")
def test_confine_works_when_root_itself_is_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    assert confine(link, "a.txt") == real.resolve() / "a.txt"


def test_safe_extract_destination_creates_parents(tmp_path: Path) -> None:
    dest = tmp_path / "download"
    target = safe_extract_destination(dest, "a/b/c.txt")
    assert target == dest.resolve() / "a" / "b" / "c.txt"
    assert target.parent.is_dir()
    assert not target.exists()


@pytest.mark.parametrize("path", ["../evil.txt", "a/../../evil.txt", "%2e%2e/evil.txt", "/tmp/x"])
def test_safe_extract_destination_never_leaves_the_folder(tmp_path: Path, path: str) -> None:
    dest = tmp_path / "download"
    with pytest.raises(InvalidInput):
        safe_extract_destination(dest, path)
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.usefixtures("symlinks")
def test_safe_extract_destination_refuses_a_planted_symlink(tmp_path: Path) -> None:
    dest = tmp_path / "download"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "a").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="leaves its root"):
        safe_extract_destination(dest, "a/b/c.txt")
    assert list(outside.iterdir()) == []


def test_safe_extract_destination_refuses_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    with pytest.raises(InvalidInput, match="existing folder"):
        safe_extract_destination(tmp_path, "a/b")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        SHA[:-1],
        SHA + "0",
        SHA.upper(),
        "g" * 64,
        "../" + "0" * 61,
        "0" * 62 + "/x",
        "0" * 63 + "\n",
        " " + "0" * 63,
        None,
        b"0" * 64,
    ],
)
def test_validate_sha256_rejects_anything_but_64_lowercase_hex(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_sha256(value)  # type: ignore[arg-type]
    assert info.value.field == "sha256"


def test_blob_relpath_shards_by_the_first_two_hex_digits() -> None:
    assert validate_sha256(SHA) == SHA
    assert blob_relpath(SHA) == f"blobs/ab/{SHA[2:]}"
    with pytest.raises(InvalidInput):
        blob_relpath("../../etc/passwd")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX path semantics")
def test_accepted_paths_join_below_root(tmp_path: Path) -> None:
    for raw, _ in ACCEPTED:
        joined = confine(tmp_path, raw)
        assert os.path.commonpath([joined, tmp_path.resolve()]) == str(tmp_path.resolve())
