"""A stack's status as a live stream: one observation loop per stack, shared by subscribers.

:class:`StatusHub` keeps, per organisation and stack, one task that observes the stack every
``KOMBIFY_STATUS_STREAM_SECONDS`` and hands each change to every subscriber: the first
subscriber starts it, the last one to leave stops it. Ten open dashboards of a stack thus
cost one ``ObserveStack`` per interval, not ten. The events are described in docs/deploy.md
("The status, live").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kombify.errors import KombifyError

log = logging.getLogger(__name__)

Observe = Callable[[], Awaitable[dict[str, Any] | None]]
"""One observation: the status body (as the JSON route answers it), or None once the stack
is gone."""
Message = tuple[str, dict[str, Any]]
"""An event's name (``status``, ``error``, ``end``) and its data."""


def change_key(status: dict[str, Any]) -> dict[str, Any]:
    """The parts of a status whose difference is a change worth sending.

    Everything but the moment each node was asked: states, health, containers, reach, node
    answers and their errors, the revisions and the last run all count.
    """
    nodes = [{k: v for k, v in node.items() if k != "observed_at"} for node in status["nodes"]]
    return {**status, "nodes": nodes}


def problem_detail(exc: Exception) -> str:
    """The ``detail`` of an ``error`` event: kombify's own message, or the kind of failure."""
    if isinstance(exc, KombifyError):
        return exc.message
    # A library's text may carry a database URL or worse: only its kind goes out.
    return f"the stack's status could not be read ({type(exc).__name__}); the stream goes on"


@dataclass
class _Loop:
    observe: Observe
    subscribers: set[asyncio.Queue[Message]] = field(default_factory=set)
    latest: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None

    def send(self, message: Message) -> None:
        for queue in self.subscribers:
            queue.put_nowait(message)


class StatusHub:
    """The observation loops of one API process, keyed by organisation id and stack name.

    Args:
        interval: Seconds between the start of one observation and the next.
    """

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self._loops: dict[tuple[str, str], _Loop] = {}

    def running(self) -> int:
        """How many stacks are observed now (one loop each)."""
        return len(self._loops)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, key: tuple[str, str], observe: Observe
    ) -> AsyncIterator[asyncio.Queue[Message]]:
        """A queue of the stack's events while the block runs; the loop's ``observe`` is the
        first subscriber's (any subscriber's would ask the same)."""
        loop = self._loops.get(key)
        if loop is None:
            loop = self._loops[key] = _Loop(observe)
            loop.task = asyncio.create_task(self._run(key, loop), name=f"status/{key[1]}")
        queue: asyncio.Queue[Message] = asyncio.Queue()
        if loop.latest is not None:
            queue.put_nowait(("status", loop.latest))
        loop.subscribers.add(queue)
        try:
            yield queue
        finally:
            loop.subscribers.discard(queue)
            if not loop.subscribers and self._loops.get(key) is loop:
                del self._loops[key]
                if loop.task is not None:
                    loop.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await loop.task

    async def _run(self, key: tuple[str, str], loop: _Loop) -> None:
        last: dict[str, Any] | None = None
        while True:
            started = asyncio.get_running_loop().time()
            try:
                status = await loop.observe()
            except Exception as exc:  # the stream goes on: the next interval may do better
                log.warning("status of %s/%s not observed: %s", *key, type(exc).__name__)
                loop.send(("error", {"detail": problem_detail(exc)}))
            else:
                if status is None:
                    if self._loops.get(key) is loop:
                        del self._loops[key]  # a new subscriber starts afresh (and gets 404)
                    loop.send(("end", {"reason": "deleted"}))
                    return
                if change_key(status) != last:
                    last, loop.latest = change_key(status), status
                    loop.send(("status", status))
            elapsed = asyncio.get_running_loop().time() - started
            await asyncio.sleep(max(self.interval - elapsed, 0.0))


async def status_events(
    hub: StatusHub, key: tuple[str, str], observe: Observe
) -> AsyncIterator[dict[str, str]]:
    """One subscriber's Server-Sent Events (as sse-starlette takes them), ids counted from 1."""
    count = 0
    async with hub.subscribe(key, observe) as queue:
        while True:
            name, data = await queue.get()
            count += 1
            yield {"id": str(count), "event": name, "data": json.dumps(data)}
            if name == "end":
                return
