"""Brute-force limits on the routes that check a secret (login, MFA, password reset, sign-up).

Each try counts twice, against the account and against the client address, so neither many
guesses at one account nor one guesser across many accounts gets far (the ``tries`` rule of
``KOMBIFY_RATE_LIMITS``, 10 a minute each by default). A route calls :func:`check_request`
(or :func:`check`) before it looks at the secret; past the rule it answers 429 with
``Retry-After`` until the window ends. Each refusal is logged as one JSON line on
``kombify.security``, never with the secret tried.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from kombify.accounts.tokens import digest
from kombify.errors import RateLimitedError
from kombify.gateway.ratelimit import Limiter
from kombify.gateway.rules import DEFAULT_RULES

if TYPE_CHECKING:
    from fastapi import Request

TRIES = DEFAULT_RULES["tries"].limit
WINDOW_S = DEFAULT_RULES["tries"].window_s
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
    """Count one try against ``account`` and against ``address``.

    Args:
        limiter: The app's limiter (``app.state.limiter``).
        route_class: What the try is at (``login``, ``mfa``, ``password-reset`` …); each has
            budgets of its own.
        account: Whom the try is for (an email as typed, a user id); compared trimmed and
            lowercased.
        address: The client address the try came from.
        tries: Tries allowed to each per window.
        window_s: The window, in seconds.

    Raises:
        RateLimitedError: The account or the address made too many tries this window.
    """
    account = account.strip().lower()[:320]
    address = address or "unknown"
    # Emails are not secrets, but a shared store (Redis) need not hold them: hashed in the key.
    decisions = {
        "account": limiter.hit(f"bf:{route_class}:account:{digest(account)[:32]}", tries, window_s),
        "address": limiter.hit(f"bf:{route_class}:address:{address}", tries, window_s),
    }
    tripped = [scope for scope, decision in decisions.items() if not decision.allowed]
    if not tripped:
        return
    retry_after = max(decisions[scope].reset_s for scope in tripped)
    log.warning(
        json.dumps(
            {
                "event": "brute-force-limited",
                "route_class": route_class,
                "account": account,
                "address": address,
                "limited_by": tripped,
                "retry_after_s": retry_after,
            }
        )
    )
    whose = " and ".join("this account" if s == "account" else "your address" for s in tripped)
    raise RateLimitedError(
        f"too many {route_class} attempts for {whose}: {tries} per {window_s} s allowed; "
        f"try again in {retry_after} s",
        retry_after=retry_after,
    )


def check_request(request: Request, route_class: str, account: str) -> None:
    """:func:`check` with the app's limiter, the configured ``tries`` rule and the request's
    client address."""
    from kombify.api.principal import client_address

    rule = request.app.state.settings.rate_limit_rules["tries"]
    check(
        request.app.state.limiter,
        route_class,
        account,
        client_address(request),
        tries=rule.limit,
        window_s=rule.window_s,
    )
