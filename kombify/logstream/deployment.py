"""A deployment's output lines as a live stream: stored lines first, then new ones, then end.

There is no seam between "stored" and "live": the reader only ever reads the database, from a
:class:`~kombify.logstream.cursor.LineCursor`, and waits for a wake-up
(:mod:`kombify.logstream.bus`) between reads. A line committed while the stored ones are
being sent is simply found by the next read; one committed twice over is impossible, and one
read twice is dropped by id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from kombify.db import deployments as runs
from kombify.db.engine import get_engine
from kombify.db.models import Deployment, Event
from kombify.logstream.bus import LineBus
from kombify.logstream.cursor import LineCursor
from kombify.logstream.timefmt import rfc3339

PAGE = 500
"""Lines read per query; a longer backlog takes several."""
END_GRACE = 1.0
"""Seconds the stream keeps reading after it saw the run end, for lines another worker
process committed just after the run's outcome (its writer lingers ``LINGER`` seconds)."""
LEVELS = ("info", "warning", "error")
PING = 15
"""Seconds between keep-alive comments of an idle stream."""


def line_data(event: Event) -> dict[str, Any]:
    """The ``data`` of a ``line`` event (the contract in docs/logs.md)."""
    return {
        "id": event.id,
        "time": rfc3339(event.created_at),
        "source": event.source,
        "level": event.level if event.level in LEVELS else "info",
        "message": event.message,
    }


@dataclass(frozen=True)
class _Read:
    lines: list[Event]
    state: str
    complete: bool  # the run ended long enough before the read that every line is in it


def _read(url: str, deployment_id: str, after: int) -> _Read:
    """Lines of the run above ``after`` (every page of them) and its state, read together."""
    lines: list[Event] = []
    with Session(get_engine(url)) as session:
        # The state first: lines a finished run stored are all committed before its outcome.
        row = session.get(Deployment, deployment_id)
        state = row.state if row is not None else "deleted"
        complete = row is None or (
            state not in ("running", "pending")
            and (row.finished_at is None or _age(row.finished_at) >= END_GRACE)
        )
        while True:
            page = runs.deployment_events(
                session, deployment_id=deployment_id, after=after, limit=PAGE
            )
            lines.extend(page)
            if len(page) < PAGE:
                break
            after = page[-1].id or after
    return _Read(lines, state, complete)


def _age(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (datetime.now(UTC) - moment).total_seconds()


async def deployment_stream(
    *, url: str, bus: LineBus, deployment_id: str, after: int
) -> AsyncIterator[dict[str, Any]]:
    """Server-sent events (as sse-starlette takes them) of a run's lines above ``after``.

    Ends with an ``end`` event carrying the run's state once the run finished and every line
    it stored was sent.
    """
    cursor = LineCursor(floor=after)
    async with bus.subscribe(f"deployment/{deployment_id}") as wake:
        while True:
            read = await asyncio.to_thread(_read, url, deployment_id, cursor.floor)
            now = time.monotonic()
            for event in cursor.fresh(read.lines, now=now):
                yield {"id": str(event.id), "event": "line", "data": json.dumps(line_data(event))}
            cursor.settle_up(now=now)
            if read.complete:
                yield {"event": "end", "data": json.dumps({"state": read.state})}
                return
            if read.state in ("running", "pending"):
                await wake.wait()
            else:  # just ended: read again until its last lines had time to arrive
                await asyncio.sleep(END_GRACE / 4)
