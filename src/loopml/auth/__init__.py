"""Bearer tokens for the tracking server: :class:`AuthService` and the role model."""

from loopml.auth.service import ROLES, AuthService, check_role, hash_secret, role_allows

__all__ = ["ROLES", "AuthService", "check_role", "hash_secret", "role_allows"]
