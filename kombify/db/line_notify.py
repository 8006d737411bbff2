"""Wake-ups for live log readers: PostgreSQL ``NOTIFY`` sent with each batch of stored lines.

The API instance that streams a deployment's lines is rarely the process that writes them
(a worker's :class:`~kombify.activities.event_log.EventLog`). On PostgreSQL the writer's
transaction notifies :data:`CHANNEL` with the lines' subject; PostgreSQL delivers it to every
listening API instance when, and only when, the transaction commits. SQLite has no such thing:
readers there poll (see :mod:`kombify.logstream.bus`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlmodel import Session

CHANNEL = "kombify_lines"
"""The PostgreSQL notification channel; the payload is an event's subject."""


def notify_lines(session: Session, subjects: Iterable[str]) -> None:
    """Queue one notification per subject in ``session``'s transaction (PostgreSQL only).

    Sent on commit; a rolled-back batch wakes nobody.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for subject in sorted(set(subjects)):
        session.execute(
            text("SELECT pg_notify(:channel, :subject)"),
            {"channel": CHANNEL, "subject": subject},
        )
