from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from loopml.auth import ROLES, AuthService, hash_secret, role_allows
from loopml.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from loopml.store.sql import SqlTrackingStore


@pytest.fixture
def auth(tmp_path: Path) -> AuthService:
    return AuthService(SqlTrackingStore(f"sqlite:///{tmp_path / 'auth.db'}"))


def test_secret_is_returned_once_and_only_its_hash_is_stored(auth: AuthService) -> None:
    secret = auth.create_token("ci", role="writer")
    assert len(secret) >= 40
    (stored,) = auth.list_tokens()
    assert (stored.name, stored.role) == ("ci", "writer")
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest() == hash_secret(secret)
    assert secret not in repr(stored)
    assert auth.verify(secret) == stored


def test_issue_token_returns_the_stored_token(auth: AuthService) -> None:
    secret, info = auth.issue_token("bot", "admin")
    assert auth.verify(secret) == info


@pytest.mark.parametrize("secret", [None, "", "x" * 43, "y" * 5000])
def test_unknown_or_missing_secret_is_unauthenticated(
    auth: AuthService, secret: str | None
) -> None:
    auth.create_token("someone")
    with pytest.raises(Unauthenticated):
        auth.verify(secret)


def test_revoked_token_stops_working(auth: AuthService) -> None:
    secret = auth.create_token("temp")
    auth.revoke("temp")
    with pytest.raises(Unauthenticated):
        auth.verify(secret)
    with pytest.raises(NotFound):
        auth.revoke("temp")


def test_duplicate_name_conflicts(auth: AuthService) -> None:
    auth.create_token("dup")
    with pytest.raises(Conflict):
        auth.create_token("dup")


@pytest.mark.parametrize("name", ["", " lead", "a" * 101, "semi;colon", "new\nline", 7])
def test_bad_names_are_refused(auth: AuthService, name: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        auth.create_token(name, "reader")  # type: ignore[arg-type]
    assert caught.value.field == "name"
    assert auth.list_tokens() == []


def test_unknown_role_is_refused(auth: AuthService) -> None:
    with pytest.raises(InvalidInput) as caught:
        auth.create_token("x", "root")
    assert caught.value.field == "role"


def test_roles_are_ordered() -> None:
    assert ROLES == ("reader", "writer", "admin")
    assert role_allows("admin", "writer") and role_allows("writer", "reader")
    assert role_allows("reader", "reader")
    assert not role_allows("reader", "writer") and not role_allows("writer", "admin")
    assert not role_allows("superuser", "reader")


def test_authorize_checks_the_role(auth: AuthService) -> None:
    reader = auth.create_token("r", "reader")
    assert auth.authorize(reader, "reader").name == "r"
    with pytest.raises(PermissionDenied):
        auth.authorize(reader, "writer")
    with pytest.raises(Unauthenticated):
        auth.authorize("nope", "reader")
