"""Passwords: argon2id hashes (argon2-cffi's RFC 9106 defaults) and the rules a password meets.

The rules follow OWASP ASVS level 2 (V2.1): at least 12 characters, at most 128, any
characters (spaces and Unicode too), no composition rules; a password equal to the email
address or one of a few well-known ones is refused.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kombify.errors import SpecError

MIN_LENGTH = 12
MAX_LENGTH = 128
_HASHER = PasswordHasher()
_COMMON = {
    "password1234",
    "123456789012",
    "qwertyuiopas",
    "passwordpassword",
    "correcthorsebatterystaple",
    "kombifykombify",
}
# Verified against when an email has no account, so that the answer takes as long as for one
# that has (no account enumeration by timing).
_DUMMY_HASH = _HASHER.hash("kombify-dummy-password-for-timing")


class WeakPassword(SpecError):
    """A new password does not meet the rules; nothing changed."""

    code = "weak-password"
    status = 422


def check_new_password(password: str, *, email: str = "") -> None:
    """Refuse a password that breaks the rules, saying which."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password: at least {MIN_LENGTH} characters, got {len(password)}")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password: at most {MAX_LENGTH} characters")
    folded = password.casefold()
    if folded in _COMMON or (email and folded == email.casefold()):
        raise WeakPassword("password: too easy to guess (a well-known one or your email)")


def hash_password(password: str) -> str:
    """The argon2id hash to store."""
    return _HASHER.hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; False (after the same work) when there is none."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's (rehash at login)."""
    return _HASHER.check_needs_rehash(stored)
