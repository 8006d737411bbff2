"""Wakes live log readers when new lines may be stored: PostgreSQL ``LISTEN``, else a timer.

One listening connection per API process, opened by its first reader and closed with its
last. Readers wait on :meth:`Subscription.wait`, which returns on a notification of their
subject or after the poll interval, whichever comes first: a notification only makes lines
arrive sooner, correctness never depends on one (a reader always reads the database itself).
While the listener is down (PostgreSQL restarting) readers poll as on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from kombify.db.line_notify import CHANNEL

log = logging.getLogger(__name__)

POLL = 0.2
"""Seconds between reads without notifications (SQLite, or the listener down)."""
LISTENING_POLL = 2.0
"""Seconds between reads with a working listener: a safety net, not the way lines arrive."""
_RETRY = 1.0


@dataclass(eq=False)  # each is its own: kept in a set by identity
class Subscription:
    """One reader's wake-up: set when its subject was notified."""

    subject: str
    bus: LineBus
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self) -> None:
        """Return when new lines of the subject may be stored."""
        timeout = LISTENING_POLL if self.bus.listening else POLL
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), timeout)
        self.woken.clear()


class LineBus:
    """Notifications of stored lines for the readers of one API process.

    Args:
        database_url: kombify's database (SQLAlchemy form); listening only on PostgreSQL.
    """

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._dsn: str | None = None
        if url.get_backend_name() == "postgresql":
            self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        """Whether notifications arrive now (readers then poll slowly)."""

    @contextlib.asynccontextmanager
    async def subscribe(self, subject: str) -> AsyncIterator[Subscription]:
        """Wake-ups for ``subject`` while the block runs."""
        sub = Subscription(subject, self)
        self._subs.add(sub)
        if self._dsn is not None and self._task is None:
            self._task = asyncio.create_task(self._listen(self._dsn), name="kombify-line-bus")
        try:
            yield sub
        finally:
            self._subs.discard(sub)
            if not self._subs and self._task is not None:
                task, self._task = self._task, None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self.listening = False

    def _wake(self, subject: str) -> None:
        for sub in self._subs:
            if sub.subject == subject:
                sub.woken.set()

    def _wake_all(self) -> None:
        for sub in self._subs:
            sub.woken.set()

    async def _listen(self, dsn: str) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    # Lines committed before LISTEN took effect: every reader reads once more.
                    self._wake_all()
                    async for note in conn.notifies():
                        self._wake(note.payload)
            except psycopg.Error as exc:
                log.warning("live log listener lost its connection (%s); polling meanwhile", exc)
            finally:
                self.listening = False
            await asyncio.sleep(_RETRY)
