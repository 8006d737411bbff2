"""Times as the agent and Docker write them (RFC 3339, nanoseconds)."""

from __future__ import annotations

from datetime import datetime


def parse_time(text: str) -> float:
    """An RFC 3339 time (``Z`` or an offset, any fraction) as Unix time."""
    stamp = text.strip().replace("z", "Z").replace("Z", "+00:00")
    head, dot, rest = stamp.partition(".")
    if dot:  # Docker writes nanoseconds; Python reads microseconds at most
        digits = len(rest) - len(rest.lstrip("0123456789"))
        stamp = f"{head}.{rest[:digits][:6]}{rest[digits:]}"
    when = datetime.fromisoformat(stamp)
    if when.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    return when.timestamp()
