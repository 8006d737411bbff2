"""A caller's window opens at its first request: never more than the limit within it."""

from __future__ import annotations

import pytest

from kombify.gateway import ratelimit
from kombify.gateway.ratelimit import MemoryLimiter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1000.0 + 59.5)  # half a second before a clock-aligned minute would end
    monkeypatch.setattr(ratelimit.time, "monotonic", fake)
    return fake


def test_the_limit_holds_across_a_minute_of_the_clock(clock: Clock) -> None:
    limiter = MemoryLimiter()
    first = [limiter.hit("login:a", 3, 60) for _ in range(3)]
    assert [d.remaining for d in first] == [2, 1, 0] and first[0].reset_s == 60
    clock.now += 1.0  # past where a clock-aligned window would have ended

    refused = limiter.hit("login:a", 3, 60)
    assert not refused.allowed and refused.reset_s == 59
    assert limiter.hit("login:b", 3, 60).remaining == 2  # another key: its own window


def test_a_new_window_opens_once_the_old_one_ended(clock: Clock) -> None:
    limiter = MemoryLimiter()
    for _ in range(4):
        limiter.hit("read:a", 3, 60)
    clock.now += 60.0

    again = limiter.hit("read:a", 3, 60)
    assert again.allowed and again.remaining == 2 and again.reset_s == 60
