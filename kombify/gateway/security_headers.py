"""Security headers on every response: what a browser may load, frame, sniff and refer.

The API answers JSON, so the default policy lets a page load nothing but its own origin's
resources and be framed by nobody. The docs pages (Swagger UI, ReDoc; packaged assets) set
their own policy with :func:`page_policy`, which allows their one inline script by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HSTS = "max-age=31536000"
HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def page_policy(html: str) -> str:
    """A Content-Security-Policy for an HTML page served from this origin.

    Its inline scripts are allowed by their SHA-256 hashes (no ``'unsafe-inline'`` for
    scripts); styles may be inline (ReDoc and Swagger UI inject theirs), images may be
    ``data:`` URIs (Swagger UI's icons) and workers ``blob:`` (ReDoc's search).
    """
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    scripts = f"'self' {hashes}".strip()
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP response (HSTS only over TLS)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    headers[name] = value
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = DEFAULT_POLICY
                if tls:
                    # Only over TLS: over plain HTTP the header is ignored by browsers, and
                    # a homelab reached by address must not be pinned to https by mistake.
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
