"""Rate limits: fixed windows counted per key (an account, an API key, a client address).

:class:`MemoryLimiter` counts in this process; :class:`RedisLimiter` counts in Redis, so
several API instances share one budget (``KOMBIFY_REDIS_URL``). Both implement
:class:`Limiter`.
"""

from __future__ import annotations

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
    """Per-process fixed-window counters (the default: one API process)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_s: int) -> Decision:
        now = time.time()
        window = int(now // window_s)
        reset = int((window + 1) * window_s - now) + 1
        with self._lock:
            if len(self._counts) > 100_000:  # old windows are dropped as they pile up
                self._counts = {k: v for k, v in self._counts.items() if k[2] >= window}
            count = self._counts.get((key, window_s, window), 0) + 1
            self._counts[(key, window_s, window)] = count
        return Decision(
            allowed=count <= limit, limit=limit, remaining=max(0, limit - count), reset_s=reset
        )


# One round trip, atomic: count the hit in the window of Redis's own clock (API instances
# with skewed clocks still agree on the window) and let the key expire with the window.
_HIT_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
local window_s = tonumber(ARGV[1])
local window = math.floor(now / window_s)
local key = KEYS[1] .. ':' .. window_s .. ':' .. window
local count = redis.call('INCR', key)
if count == 1 then redis.call('EXPIRE', key, window_s + 1) end
return {count, (window + 1) * window_s - now}
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
            count, reset = self._hit(keys=[_KEY_PREFIX + key], args=[window_s])
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
            reset_s=max(1, int(reset)),
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
