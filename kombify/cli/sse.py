"""A small Server-Sent Events client for the CLI: kombify's live streams, resumed when cut.

kombify's streams (a deployment's lines, a service's container logs) share one format,
described in docs/logs.md: ``line`` events whose ``id`` is the line's and whose ``data`` is a
JSON object, and a final ``end`` event. :func:`stream_events` reads one with httpx, and when
the connection drops before ``end`` it connects again with ``Last-Event-ID`` set to the last
id it received, so no line is lost or repeated. :class:`SseParser` is the parsing alone, for
other transports (tests read streams with httpx's async client through it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from kombify.cli.api_client import ApiClient
from kombify.errors import ServiceUnavailableError

RETRIES = 5
"""Reconnections in a row without a new event before the stream is given up."""
_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class SseEvent:
    """One event: its ``event`` name (``message`` when unnamed), ``data`` and ``id``."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        """``data`` decoded as JSON."""
        return json.loads(self.data)


@dataclass
class SseParser:
    """Turns the lines of an event stream into events (the WHATWG rules kombify needs)."""

    last_id: str | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        """Take one line (without its end of line); the event it completes, if any."""
        if line == "":
            if not self._data and not self._event:
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
            if self._id is not None:
                self.last_id = self._id
            self._event, self._data, self._id = "", [], None
            return event
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def stream_events(
    client: ApiClient,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    last_event_id: str | None = None,
    read_timeout: float = 60.0,
) -> Iterator[SseEvent]:
    """The events of the stream at ``path`` until its ``end`` event (included) or its close.

    Connections that drop before ``end`` are made again with ``Last-Event-ID``; a stream the
    server closes without ``end`` (it has no end: nothing more to send) ends the iteration.

    Raises:
        KombifyError: The API refused the request (problem+json), or stopped answering for
            :data:`RETRIES` reconnections in a row.
    """
    parser = SseParser(last_id=last_event_id)
    failures = 0
    # The server pings every 15 s; a read that waits much longer means a dead connection.
    timeout = httpx.Timeout(10.0, read=read_timeout)
    while True:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if parser.last_id is not None:
            headers["Last-Event-ID"] = parser.last_id
        try:
            with client.stream("GET", path, params=params, headers=headers, timeout=timeout) as r:
                if not r.is_success:
                    r.read()
                    raise client.error(r)
                for line in r.iter_lines():
                    event = parser.feed(line)
                    if event is None:
                        continue
                    failures = 0
                    yield event
                    if event.event == "end":
                        return
            return  # closed cleanly without `end`: nothing more will come
        except (httpx.TransportError, ServiceUnavailableError) as exc:
            if failures >= RETRIES:
                raise ServiceUnavailableError(
                    f"the stream at {path} broke off and could not be resumed: {exc}"
                ) from exc
            time.sleep(_BACKOFF[min(failures, len(_BACKOFF) - 1)])
            failures += 1
