"""Rate limits: fixed windows counted per key (an account, an API key, a client address).

:class:`MemoryLimiter` counts in this process; a shared backend (Redis, for several API
instances) implements the same :class:`Limiter` protocol.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol


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
