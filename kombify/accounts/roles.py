"""Roles in an organisation and what an API key's scope allows."""

from __future__ import annotations

from kombify.db.account_tables import ROLES
from kombify.errors import SpecError

SCOPES = ("read", "deploy", "admin")
# The highest role a key of each scope acts with (never above its owner's own role).
SCOPE_CAP = {"read": "viewer", "deploy": "member", "admin": "admin"}


def rank(role: str) -> int:
    """Position of ``role`` from viewer (0) to owner (3)."""
    return ROLES.index(role)


def at_least(role: str, minimum: str) -> bool:
    """Whether ``role`` may do what ``minimum`` may."""
    return rank(role) >= rank(minimum)


def lesser(a: str, b: str) -> str:
    """The weaker of two roles."""
    return a if rank(a) <= rank(b) else b


def check_role(value: str, *, field: str = "role") -> str:
    """``value`` if it names a role, else a SpecError naming the field and the choices."""
    if value not in ROLES:
        raise SpecError(f"{field}: expected one of {', '.join(ROLES)}, got `{value[:40]}`")
    return value


def check_scope(value: str, *, field: str = "scope") -> str:
    """``value`` if it names an API key scope."""
    if value not in SCOPES:
        raise SpecError(f"{field}: expected one of {', '.join(SCOPES)}, got `{value[:40]}`")
    return value
