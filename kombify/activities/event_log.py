"""Deployment output lines, stored by a writer thread in batches.

Activities run on the worker's event loop, and OpenTofu alone prints dozens of lines per run.
Committing each line from the loop stalled every other activity of the worker (an SSH copy,
a health probe) for a few milliseconds a line. Lines are queued instead, in the order they
come, and one thread writes whatever has gathered in a single transaction. On PostgreSQL the
transaction also notifies the API instances that stream the lines (:mod:`kombify.db.line_notify`).

Lines are best effort: a worker killed outright loses the lines of its last batch (at most
``LINGER`` seconds' worth), never the deployment's state, which goes through ``record``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlmodel import Session

from kombify.db.line_notify import notify_lines
from kombify.db.models import Event

log = logging.getLogger(__name__)

LINGER = 0.05
"""Seconds the writer waits for more lines before it commits a batch."""
_BATCH = 500


class EventLog:
    """Queue of events written to the database off the event loop.

    Args:
        session: Makes a database session (called on the writer thread).
    """

    def __init__(self, session: Callable[[], Session]) -> None:
        self._session = session
        self._queue: queue.Queue[Event] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def add(self, event: Event) -> None:
        """Queue ``event``; it is stored within about ``LINGER`` seconds."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._write_forever, name="kombify-event-log", daemon=True
                    )
                    self._thread.start()
        self._queue.put(event)

    def flush(self) -> None:
        """Block until every event queued so far is stored (or was dropped after an error)."""
        self._queue.join()

    def _take_batch(self) -> list[Event]:
        """The next line and whatever follows it within ``LINGER`` seconds."""
        batch = [self._queue.get()]
        deadline = time.monotonic() + LINGER
        try:
            while len(batch) < _BATCH and (left := deadline - time.monotonic()) > 0:
                batch.append(self._queue.get(timeout=left))
        except queue.Empty:
            pass
        return batch

    def _write_forever(self) -> None:
        while True:
            batch = self._take_batch()
            try:
                with self._session() as session:
                    session.add_all(batch)
                    # Live readers on other processes learn of the batch when it commits.
                    notify_lines(session, (event.subject for event in batch))
                    session.commit()
            except Exception:  # a log line must never take the worker down
                log.exception("could not store %d deployment log line(s)", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
