"""Login, MFA and password-reset attempts: limited per account and per address, and logged."""

from __future__ import annotations

import json
import logging

import pytest

from kombify.errors import RateLimitedError
from kombify.gateway import brute_force
from kombify.gateway.ratelimit import MemoryLimiter

RULE = {"tries": 3, "window_s": 60}


def test_an_account_gets_its_tries_then_429_from_any_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = MemoryLimiter()
    for n in range(3):
        brute_force.check(limiter, "login", "Alice@Example.org", f"10.0.0.{n}", **RULE)

    with caplog.at_level(logging.WARNING, logger="kombify.security"):
        with pytest.raises(RateLimitedError) as caught:
            brute_force.check(limiter, "login", " alice@example.org ", "10.0.0.9", **RULE)

    assert caught.value.status == 429
    assert 1 <= caught.value.retry_after <= 61
    assert caught.value.headers == {"Retry-After": str(caught.value.retry_after)}
    assert caught.value.message == (
        f"too many login attempts for this account: 3 per 60 s allowed; "
        f"try again in {caught.value.retry_after} s"
    )
    (record,) = [r for r in caplog.records if r.name == "kombify.security"]
    assert json.loads(record.getMessage()) == {
        "event": "brute-force-limited",
        "route_class": "login",
        "account": "alice@example.org",
        "address": "10.0.0.9",
        "limited_by": ["account"],
        "retry_after_s": caught.value.retry_after,
    }


def test_an_address_trying_many_accounts_is_limited_too() -> None:
    limiter = MemoryLimiter()
    for n in range(3):
        brute_force.check(limiter, "mfa", f"user{n}@example.org", "192.0.2.7", **RULE)

    with pytest.raises(RateLimitedError, match="for your address"):
        brute_force.check(limiter, "mfa", "someone@example.org", "192.0.2.7", **RULE)
    # Another address, another account: unaffected; and login has budgets apart from mfa.
    brute_force.check(limiter, "mfa", "other@example.org", "192.0.2.8", **RULE)
    brute_force.check(limiter, "login", "user0@example.org", "192.0.2.7", **RULE)


def test_the_default_is_ten_tries_a_minute() -> None:
    limiter = MemoryLimiter()
    for _ in range(10):
        brute_force.check(limiter, "password-reset", "a@example.org", "192.0.2.1")
    with pytest.raises(RateLimitedError, match="10 per 60 s allowed"):
        brute_force.check(limiter, "password-reset", "a@example.org", "192.0.2.1")
