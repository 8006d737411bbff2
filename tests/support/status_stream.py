"""Reading a stack's live status stream (``GET /v1/stacks/NAME/status`` as SSE) in tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

from kombify.cli.sse import SseEvent, SseParser


@dataclass
class StatusReader:
    """The events one subscriber received so far, and a way to wait for more."""

    response: httpx.Response | None = None
    events: list[SseEvent] = field(default_factory=list)
    _more: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(
        self, found: Callable[[SseEvent], bool], *, timeout: float = 120
    ) -> SseEvent:
        """The first event received that ``found`` accepts, waiting for it (a generous
        bound: a loaded machine is slow, the bound only keeps a broken stream from hanging)."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if found(event):
                        return event
                self._more.clear()
                await self._more.wait()

    async def wait_event(self, name: str, *, after: int = 0) -> SseEvent:
        """The first ``name`` event with an id above ``after``."""
        return await self.wait_for(lambda e: e.event == name and int(e.id or 0) > after)


@contextlib.asynccontextmanager
async def status_stream(base: str, key: str, stack: str) -> AsyncIterator[StatusReader]:
    """Subscribe to ``stack``'s status as the holder of ``key``; hang up when the block ends."""
    reader = StatusReader()
    ready = asyncio.Event()

    async def read() -> None:
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        async with (
            httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=120)) as http,
            http.stream("GET", f"/v1/stacks/{stack}/status", headers=headers) as response,
        ):
            reader.response = response
            if not response.is_success:
                await response.aread()
                ready.set()
                return
            ready.set()
            parser = SseParser()
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is not None:
                    reader.events.append(event)
                    reader._more.set()

    task = asyncio.create_task(read())
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        yield reader
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
