"""Limits every request body meets before any route sees it: a size, and valid Unicode.

JSON may spell a lone UTF-16 surrogate (``"\\ud800"``), which decodes to a Python string that
no UTF-8 encoder, YAML parser or database accepts: without this check such a string reaches
the first of them and becomes a 500. Checking here, once, covers every route.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kombify.api.problems import problem

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body: a kombination or template file is a few kilobytes."""

# A JSON escape of a UTF-16 surrogate; only bodies holding one are decoded here.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _first_invalid(value: Any, path: str = "") -> tuple[str, str] | None:
    """The field path and text of the first string that is not valid Unicode, if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, value
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_invalid(key, path) or _first_invalid(
                item, f"{path}.{key}" if path else str(key)
            )
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_invalid(item, f"{path}[{index}]")
            if found:
                return found
    return None


def invalid_unicode(body: bytes) -> tuple[str, int] | None:
    """Where a JSON body spells text that is not valid Unicode: (field path, character)."""
    if not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not JSON at all: the route answers that, as for any malformed body
    found = _first_invalid(document)
    if found is None:
        return None
    path, text = found
    position = next(i for i, ch in enumerate(text) if 0xD800 <= ord(ch) <= 0xDFFF)
    return path, position


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    code = "body-too-large" if status == 413 else "malformed-request"
    title = "Request too large" if status == 413 else "Malformed request"
    response = problem(status, title, detail, code=code, instance=scope.get("path"))
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the buffered body once, then the client's own messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class RequestLimits:
    """ASGI middleware: 413 for a body over the limit, 400 for text that is not Unicode."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = (
            f"the body is too large: request bodies are limited to {self.max_body // 1024} KiB"
        )
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body:
            await _refuse(scope, receive, send, 413, too_large)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            body += message.get("body", b"")
            if len(body) > self.max_body:  # a chunked body that grew past the limit
                await _refuse(scope, receive, send, 413, too_large)
                return
            if not message.get("more_body", False):
                break
        bad = invalid_unicode(bytes(body))
        if bad is not None:
            path, position = bad
            where = f"{path}: " if path else ""
            detail = (
                f"{where}the text is not valid Unicode "
                f"(a lone UTF-16 surrogate escape at character {position})"
            )
            await _refuse(scope, receive, send, 400, detail)
            return
        await self.app(scope, _replay(bytes(body), receive), send)
