"""Minimal authentication until accounts arrive: one local admin token.

The token is ``KOMBIFY_ADMIN_TOKEN`` if set, else a random one kombify writes to
``$KOMBIFY_HOME/admin-token`` (mode 0600) on first start; the CLI reads the same file, so a
user on the machine never types it. Every ``/v1`` route requires ``Authorization: Bearer``.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, Request

from kombify.errors import KombifyError
from kombify.settings import Settings


class Unauthorized(KombifyError):
    """No or a wrong token."""

    code = "unauthorized"
    status = 401


def token_path(settings: Settings) -> Path:
    """Where the generated admin token lives."""
    return settings.home / "admin-token"


def admin_token(settings: Settings, *, create: bool = False) -> str | None:
    """The admin token; with ``create`` a new one is generated when none exists yet."""
    if settings.admin_token:
        return settings.admin_token.get_secret_value()
    path = token_path(settings)
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Refuse requests without the admin token (compared in constant time)."""
    expected: str = request.app.state.admin_token
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        raise Unauthorized(
            "missing or wrong token: send `Authorization: Bearer <token>` "
            "(the token is in $KOMBIFY_HOME/admin-token)"
        )


RequireToken = Depends(require_token)
