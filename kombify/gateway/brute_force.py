"""Brute-force limits on the routes that check a secret (login, MFA, password reset).

Each try counts twice, against the account and against the client address, so neither many
guesses at one account nor one guesser across many accounts gets far. Refusals are logged as
structured events, never with the secret tried.
"""

from __future__ import annotations

import hashlib
import logging

from kombify.errors import RateLimitedError
from kombify.gateway.ratelimit import Limiter

TRIES = 10
WINDOW_S = 60
log = logging.getLogger("kombify.security")


def check(
    limiter: Limiter,
    route_class: str,
    account: str,
    address: str,
    *,
    tries: int = TRIES,
    window_s: int = WINDOW_S,
) -> None:
    """Count one try; RateLimitedError (429, Retry-After) when either budget is spent."""
    # The account is hashed in the key: a shared store (Redis) never holds email addresses.
    account_key = hashlib.sha256(account.encode()).hexdigest()[:32]
    for scope, key in (("account", account_key), ("address", address or "unknown")):
        decision = limiter.hit(f"bf:{route_class}:{scope}:{key}", tries, window_s)
        if not decision.allowed:
            log.warning(
                "brute-force limit: route=%s scope=%s address=%s retry_after=%ds",
                route_class,
                scope,
                address,
                decision.reset_s,
            )
            raise RateLimitedError(
                f"too many {route_class} attempts for this {scope}: "
                f"try again in {decision.reset_s}s",
                retry_after=decision.reset_s,
            )
