"""Cross-origin access from ``KOMBIFY_CORS_ORIGINS``: none unless origins are listed."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

# What a browser page of a listed origin may send and read.
ALLOW_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOW_HEADERS = ("Authorization", "Content-Type", "X-CSRF-Token", "X-Kombify-Org", "X-Request-ID")
EXPOSE_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
)


# A DNS name or an IPv4 address (letters, digits, dots, dashes), or an IPv6 address.
_HOST = re.compile(r"^[a-z0-9.-]+$|^[0-9a-f:.]+$")


def _port_ok(parts: SplitResult) -> bool:
    try:
        _ = parts.port  # reading it checks it: a number from 0 to 65535
    except ValueError:
        return False
    return True


def parse_origins(text: str) -> list[str]:
    """The origins of ``text`` (comma separated), each ``scheme://host[:port]``.

    Raises:
        ValueError: An entry is ``*`` or not an http(s) origin (the message names it).
    """
    origins: list[str] = []
    for raw in text.split(","):
        entry = raw.strip().rstrip("/")
        if not entry:
            continue
        if entry == "*":
            raise ValueError(
                "KOMBIFY_CORS_ORIGINS: `*` is not accepted (credentials are allowed): "
                "list the origins, e.g. `https://portal.example.org`"
            )
        parts = urlsplit(entry)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not _HOST.fullmatch(parts.hostname)
            or not _port_ok(parts)
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username
            or parts.password
        ):
            raise ValueError(
                f"KOMBIFY_CORS_ORIGINS: `{entry[:80]}` is not an origin; expected "
                "scheme://host[:port] such as `https://portal.example.org`"
            )
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return origins


def install(app: FastAPI, origins: list[str]) -> None:
    """Answer CORS for ``origins`` only; with none, add nothing (browsers then refuse)."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=ALLOW_METHODS,
        allow_headers=ALLOW_HEADERS,
        allow_credentials=True,
        expose_headers=EXPOSE_HEADERS,
    )
