"""Bearer-token use cases: issue, verify, list and revoke tokens, and check roles.

Only the sha256 of a secret is stored. Secrets come from :func:`secrets.token_urlsafe` with
32 bytes of entropy, so a fast unsalted hash is enough: nobody can brute-force 256 random
bits, and a hash lookup avoids comparing secrets byte by byte.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from loopml.errors import InvalidInput, PermissionDenied, Unauthenticated
from loopml.store.base import AuthStore, TokenInfo

#: Roles from least to most powerful; each role may do everything the previous ones may.
ROLES: tuple[str, ...] = ("reader", "writer", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-@]{0,99}$")
# Real secrets are 43 characters; anything far longer is not worth hashing.
_MAX_SECRET_LENGTH = 512


def hash_secret(secret: str) -> str:
    """Return the hex sha256 under which a token secret is stored.

    Parameters
    ----------
    secret : str
        The token secret as the client sends it.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_role(role: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise :class:`InvalidInput`."""
    if role not in _RANK:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")
    return role


def role_allows(role: str, required: str) -> bool:
    """Whether a token with ``role`` may perform an action that needs ``required``.

    Parameters
    ----------
    role : str
        The token's role.
    required : str
        The least role the action needs.

    Returns
    -------
    bool
        False for unknown roles, so a corrupted row never grants anything.
    """
    return role in _RANK and _RANK[role] >= _RANK[check_role(required)]


class AuthService:
    """Issue and verify the tracking server's bearer tokens.

    Parameters
    ----------
    store : AuthStore
        Where token names, roles and secret hashes are kept.

    Examples
    --------
    >>> from loopml.store.sql import SqlTrackingStore  # doctest: +SKIP
    >>> auth = AuthService(SqlTrackingStore("sqlite:///loopml.db"))  # doctest: +SKIP
    >>> secret = auth.create_token("ci", role="writer")  # doctest: +SKIP
    >>> auth.verify(secret).role  # doctest: +SKIP
    'writer'
    """

    def __init__(self, store: AuthStore) -> None:
        self.store = store

    def create_token(self, name: str, role: str = "reader") -> str:
        """Create a token and return its secret (shown once; only its hash is stored).

        Parameters
        ----------
        name : str
            A unique label: letters, digits, ``_``, ``-``, ``.``, ``@``; at most 100 chars.
        role : str, default "reader"
            One of ``reader``, ``writer``, ``admin``.

        Returns
        -------
        str
            The secret to send as ``Authorization: Bearer <secret>``.

        Raises
        ------
        InvalidInput
            When the name or role is not acceptable.
        Conflict
            When a token with this name exists.
        """
        return self.issue_token(name, role)[0]

    def issue_token(self, name: str, role: str = "reader") -> tuple[str, TokenInfo]:
        """Like :meth:`create_token`, but also return the stored :class:`TokenInfo`.

        Returns
        -------
        tuple of (str, TokenInfo)
            The secret, and the token as stored (name, role, hash, creation time).
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(
                "token name must be 1-100 characters: letters, digits, '_', '-', '.', '@', "
                f"starting with a letter or digit; got {name!r:.60}",
                field="name",
            )
        check_role(role)
        secret = secrets.token_urlsafe(32)
        return secret, self.store.create_token(name, role, hash_secret(secret))

    def verify(self, secret: str | None) -> TokenInfo:
        """Return the token a secret belongs to.

        Parameters
        ----------
        secret : str or None
            The bearer secret, or None when the request carried none.

        Returns
        -------
        TokenInfo
            The stored token (name, role, hash, creation time).

        Raises
        ------
        Unauthenticated
            When no secret was given, or it matches no stored token.
        """
        if not secret:
            raise Unauthenticated(
                "this server requires a token: send 'Authorization: Bearer <token>'"
            )
        if len(secret) > _MAX_SECRET_LENGTH:
            raise Unauthenticated("invalid or revoked token")
        token = self.store.get_token_by_hash(hash_secret(secret))
        if token is None:
            raise Unauthenticated("invalid or revoked token")
        return token

    def authorize(self, secret: str | None, required: str) -> TokenInfo:
        """Verify a secret and check that its role allows an action needing ``required``.

        Raises
        ------
        Unauthenticated
            When the secret is missing or unknown.
        PermissionDenied
            When the token's role is below ``required``.
        """
        token = self.verify(secret)
        self.require(token, required)
        return token

    @staticmethod
    def require(token: TokenInfo, required: str) -> None:
        """Raise :class:`PermissionDenied` unless the token's role reaches ``required``."""
        if not role_allows(token.role, required):
            raise PermissionDenied(
                f"token {token.name!r} has role {token.role!r}; this action needs {required!r}"
            )

    def list_tokens(self) -> list[TokenInfo]:
        """Return every token, sorted by name (hashes included, secrets never)."""
        return self.store.list_tokens()

    def revoke(self, name: str) -> None:
        """Delete a token so its secret stops working at once.

        Raises
        ------
        NotFound
            When no token has this name.
        """
        self.store.delete_token(name)
