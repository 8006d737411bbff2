"""Brute-force limits of the MFA and password-reset routes: each try counts against the account
and against the client address (10 a minute each), 429 with ``Retry-After`` past either.

A stand-in until ``kombify.gateway.brute_force.check`` lands on main (same signature and key
layout, so the routes switch by changing one import). It counts on ``app.state.limiter`` when
the app has one (shared with the gateway's limits, e.g. on Redis), else on a process-local
:class:`~kombify.gateway.ratelimit.MemoryLimiter` kept on ``app.state``.
"""

from __future__ import annotations

import hashlib
import logging

from fastapi import Request

from kombify.api.principal import client_address
from kombify.errors import RateLimitedError
from kombify.gateway.ratelimit import Limiter, MemoryLimiter

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
    # Hashed: a shared store never holds an email address.
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


def limiter_of(request: Request) -> Limiter:
    """The app's limiter (made once, in memory, when the app has none)."""
    state = request.app.state
    found: Limiter | None = getattr(state, "limiter", None)
    if found is None:
        found = MemoryLimiter()
        state.limiter = found
    return found


def count_try(request: Request, route_class: str, account: str) -> None:
    """Count one try of ``route_class`` by ``account`` from the caller's address."""
    check(limiter_of(request), route_class, account, client_address(request))
