"""Brute-force limits for login, MFA and password-reset attempts: per account and per address.

The routes call :func:`check` (or :func:`check_request`) before they look at a password or a
code; every attempt counts, and past the ``tries`` rule (10 a minute by default) the route
answers 429 with ``Retry-After`` until the window ends. Each refusal is logged as one JSON line
on ``kombify.security`` (never the password or code).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from kombify.accounts.tokens import digest
from kombify.errors import RateLimitedError
from kombify.gateway.ratelimit import Limiter
from kombify.gateway.rules import DEFAULT_RULES, Rule

if TYPE_CHECKING:
    from fastapi import Request

log = logging.getLogger("kombify.security")

ROUTE_CLASSES = ("login", "mfa", "password-reset", "reauth")
"""What an attempt tries; each has its own budgets."""


def check(
    limiter: Limiter,
    route_class: str,
    account: str,
    address: str,
    *,
    rule: Rule = DEFAULT_RULES["tries"],
) -> None:
    """Count one attempt against ``account`` and against ``address``.

    Args:
        limiter: The app's limiter (``app.state.limiter``).
        route_class: One of :data:`ROUTE_CLASSES`.
        account: Whom the attempt is for (an email as typed, a user id); compared trimmed
            and lowercased.
        address: The client address the attempt came from.
        rule: How many attempts each may make per window.

    Raises:
        RateLimitedError: The account or the address made too many attempts this window.
        ValueError: ``route_class`` is not one of :data:`ROUTE_CLASSES` (a programming error).
    """
    if route_class not in ROUTE_CLASSES:
        raise ValueError(f"unknown brute-force route class {route_class!r}")
    account = account.strip().lower()[:320]
    # Emails are not secrets, but the counter's key need not spell one out in Redis.
    by_account = limiter.hit(
        f"tries:{route_class}:account:{digest(account)[:32]}", rule.limit, rule.window_s
    )
    by_address = limiter.hit(f"tries:{route_class}:addr:{address}", rule.limit, rule.window_s)
    tripped = [
        (what, decision)
        for what, decision in (("account", by_account), ("address", by_address))
        if not decision.allowed
    ]
    if not tripped:
        return
    retry_after = max(decision.reset_s for _, decision in tripped)
    log.warning(
        json.dumps(
            {
                "event": "brute-force-limited",
                "route_class": route_class,
                "account": account,
                "address": address,
                "limited_by": [what for what, _ in tripped],
                "retry_after_s": retry_after,
            }
        )
    )
    whose = " and ".join(
        "this account" if what == "account" else "your address" for what, _ in tripped
    )
    raise RateLimitedError(
        f"too many {route_class} attempts for {whose}: {rule} allowed; "
        f"try again in {retry_after} s",
        retry_after=retry_after,
    )


def check_request(request: Request, route_class: str, account: str) -> None:
    """:func:`check` with the app's limiter and ``tries`` rule and the request's address."""
    from kombify.api.principal import client_address

    check(
        request.app.state.limiter,
        route_class,
        account,
        client_address(request),
        rule=request.app.state.settings.rate_limit_rules["tries"],
    )
