"""Heartbeats for an activity whose work runs in a thread and says nothing while it works.

Building the node image or waiting for a node's SSH can take minutes without an event to
report; the worker is alive all the while, and the heartbeat says so, so that the heartbeat
timeout catches a dead worker only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import activity

DEFAULT_EVERY = 5.0


def interval(timeout: timedelta | None, *, most: float = DEFAULT_EVERY) -> float:
    """Seconds between heartbeats: a third of the heartbeat timeout, at most ``most``."""
    if timeout is None or timeout.total_seconds() <= 0:
        return most
    return min(most, timeout.total_seconds() / 3)


@contextlib.asynccontextmanager
async def heartbeating(detail: str = "") -> AsyncIterator[None]:
    """Heartbeat (with ``detail``) from the event loop until the block ends."""
    every = interval(activity.info().heartbeat_timeout)

    async def beat() -> None:
        while True:
            activity.heartbeat(detail)
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
