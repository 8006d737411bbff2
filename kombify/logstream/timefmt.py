"""The time format of log lines on the wire and in piped CLI output (no heavy imports)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime | str) -> str:
    """``moment`` in UTC as RFC 3339 with microseconds and a ``Z`` (naive means UTC)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
