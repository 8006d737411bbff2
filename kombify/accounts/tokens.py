"""Random secrets handed out once (session tokens, API keys, one-time links) and their digests.

Only a digest is stored. These values carry 256 bits of randomness, so a plain SHA-256 is as
safe as a slow hash for them and costs nothing per request (passwords, chosen by people, get
argon2 in :mod:`kombify.accounts.passwords`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SESSION_PREFIX = "kfs_"
API_KEY_PREFIX = "kfk_"


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random string of ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    """The stored form of a secret: SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(value.encode()).hexdigest()


def same(value: str, stored_digest: str) -> bool:
    """Whether ``value`` is the secret whose digest is ``stored_digest`` (constant time)."""
    return hmac.compare_digest(digest(value), stored_digest)
