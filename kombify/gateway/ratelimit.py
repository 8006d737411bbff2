"""Rate limits: windows counted per key (an account, an API key, a client address).

A key's window opens at its first hit and lasts ``window_s`` seconds; when it has passed, the
next hit opens a new one. So "10 a minute" means at most 10 in the minute after the first,
however the hits fall on the clock (a window aligned to the clock would let 20 through
across a minute boundary).

:class:`MemoryLimiter` counts in this process; :class:`RedisLimiter` counts in Redis, so
several API instances share one budget (``KOMBIFY_REDIS_URL``). Both implement
:class:`Limiter`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kombify.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from redis import Redis

    from kombify.settings import Settings


@dataclass(frozen=True)
class Decision:
    """One counted request: allowed or not, and what the RateLimit headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the window ends


class Limiter(Protocol):
    """Counts hits of ``key`` in windows of ``window_s`` seconds, ``limit`` allowed per window."""

    def hit(self, key: str, limit: int, window_s: int) -> Decision:
        """Count one request; whether it is allowed."""
        ...


class MemoryLimiter:
    """Per-process counters (the default: one API process)."""

    def __init__(self) -> None:
        # (key, window_s) -> (count, monotonic time the window ends)
        self._counts: dict[tuple[str, int], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_s: int) -> Decision:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 100_000:  # ended windows are dropped as they pile up
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count, ends = self._counts.get((key, window_s), (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window_s
            count += 1
            self._counts[(key, window_s)] = (count, ends)
        return Decision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(0, limit - count),
            reset_s=max(1, math.ceil(ends - now)),
        )


# One round trip, atomic: count the hit, open the window (the key's expiry, by Redis's own
# clock, so API instances with skewed clocks agree) on the first, say when it ends.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

_KEY_PREFIX = "kombify:rl:"
# A rate limit check must not hold a request up for long when Redis is slow or gone.
_REDIS_TIMEOUT_S = 1.0


class RedisLimiter:
    """Fixed-window counters in Redis, shared by every API instance that uses the same one.

    When Redis does not answer, requests are refused (503) rather than let through
    uncounted: a configured limit is never silently off.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._hit = client.register_script(_HIT_SCRIPT)

    @classmethod
    def from_url(cls, url: str) -> RedisLimiter:
        """A limiter on the Redis at ``url`` (connected on first use)."""
        from redis import Redis

        return cls(
            Redis.from_url(
                url,
                socket_timeout=_REDIS_TIMEOUT_S,
                socket_connect_timeout=_REDIS_TIMEOUT_S,
                health_check_interval=30,
            )
        )

    def hit(self, key: str, limit: int, window_s: int) -> Decision:
        from redis.exceptions import RedisError

        try:
            count, ttl_ms = self._hit(
                keys=[f"{_KEY_PREFIX}{key}:{window_s}"], args=[window_s * 1000]
            )
        except RedisError as exc:
            # The URL may hold a password: only the error's kind is shown.
            raise ServiceUnavailableError(
                f"the rate limit store (KOMBIFY_REDIS_URL) does not answer: {type(exc).__name__}"
            ) from exc
        count = int(count)
        return Decision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(0, limit - count),
            reset_s=max(1, math.ceil(int(ttl_ms) / 1000)),
        )

    def problem(self) -> str | None:
        """Why Redis does not answer a PING, or None when it does (for ``/readyz``)."""
        from redis.exceptions import RedisError

        try:
            self._client.ping()
        except RedisError as exc:
            return f"{type(exc).__name__}: no answer from KOMBIFY_REDIS_URL"
        return None

    def close(self) -> None:
        """Close the connections to Redis."""
        self._client.close()


def limiter_for(settings: Settings) -> Limiter:
    """Redis when ``KOMBIFY_REDIS_URL`` is set, else counters in this process."""
    if settings.redis_url is not None:
        return RedisLimiter.from_url(settings.redis_url.get_secret_value())
    return MemoryLimiter()
