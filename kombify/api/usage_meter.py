"""Counting the API calls of each organisation, for usage billing.

:class:`UsageMiddleware` counts every ``/v1`` request whose caller was authenticated (the
principal set ``state.actor``) for the caller's organisation, in memory. :class:`UsageFlusher`
adds the counts to ``usage_record`` every ``KOMBIFY_USAGE_FLUSH_SECONDS`` and at shutdown, so
a request never waits for a database write of its own. Only installed with billing on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio
from sqlmodel import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from kombify.accounts.principal import Actor
from kombify.billing.usage import ApiCallCounter, flush_api_calls
from kombify.db.engine import get_engine

log = logging.getLogger(__name__)


class UsageMiddleware:
    """Counts each authenticated ``/v1`` request once it was answered (pure ASGI)."""

    def __init__(self, app: ASGIApp, counter: ApiCallCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        # The route's principal leaves the caller here (kombify.api.principal); made now so
        # every middleware inside shares this one dict.
        state = scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send)
        finally:
            who: Actor | None = state.get("actor")
            if who is not None:
                self.counter.add(who.organisation_id)


class UsageFlusher:
    """Stores a counter's counts now and then, and once more when stopped."""

    def __init__(self, counter: ApiCallCounter, database_url: str, every: float) -> None:
        self.counter = counter
        self.database_url = database_url
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def flush(self) -> int:
        """Store the counts now (blocking); how many records were added to."""
        with Session(get_engine(self.database_url)) as session:
            return flush_api_calls(self.counter, session)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await anyio.to_thread.run_sync(self.flush)
            except Exception:  # kept in the counter: the next flush tries again
                log.exception("could not store the API call counts; trying again later")

    def start(self) -> None:
        """Flush every ``every`` seconds from now on."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop flushing, then store what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await anyio.to_thread.run_sync(self.flush)
        except Exception:
            log.exception("could not store the API call counts at shutdown; they are lost")
