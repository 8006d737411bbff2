"""One structured JSON line per request on the ``kombify.requests`` logger, with a request id.

A line holds the request id, method, route template (never the raw path, which may carry a
token), status, latency, client address, and the user id and organisation slug when the
request had a principal (``request.state.actor``, plain facts of ``request.state.principal``).
No header value, token, query string or body is ever logged. The request id is the client's
``X-Request-ID`` when it is sane, else a new one; it is echoed on the response and kept on
``request.state.request_id``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kombify.accounts.principal import Actor
from kombify.api.problems import internal_error

log = logging.getLogger("kombify.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(scope: Scope) -> str:
    """The client's request id when it is 1-128 of ``A-Za-z0-9._:-``, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given: str = value.decode("latin-1").strip()
            if _SANE_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


def _route(scope: Scope) -> str | None:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path is not None else None


def line(scope: Scope, rid: str, status: int, started: float) -> dict[str, Any]:
    """The log record of one finished request."""
    client = scope.get("client")
    record: dict[str, Any] = {
        "request_id": rid,
        "method": scope["method"],
        "route": _route(scope),
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "client": client[0] if client else None,
    }
    actor: Actor | None = scope.get("state", {}).get("actor")
    if actor is not None:
        record["user_id"] = actor.user_id
        record["org"] = actor.organisation_slug
        record["via"] = actor.via
    return record


class RequestLog:
    """ASGI middleware: request id in and out, one JSON line out per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The app's own 500 handler answers outside every middleware; answer here instead,
            # so the 500 too carries the request id and the security headers. The exception
            # goes on up: the server error handler still logs it (and answers nothing twice).
            if not response_started:
                await internal_error(scope["path"])(scope, receive, send_with_id)
            raise
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(json.dumps(line(scope, rid, status, started)))


def log_to_stderr() -> None:
    """Write ``kombify.requests`` and ``kombify.security`` lines to stderr, as bare JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("kombify.requests", "kombify.security"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
