"""Minimal authentication until accounts arrive: one local admin token.

The token is ``KOMBIFY_ADMIN_TOKEN`` if set, else a random one kombify writes to
``$KOMBIFY_HOME/admin-token`` (mode 0600) on first start; the CLI reads the same file, so a
user on the machine never types it. Every ``/v1`` route requires ``Authorization: Bearer``.
A blank token is never accepted: a blank file is replaced by a new random token, and a blank
``KOMBIFY_ADMIN_TOKEN`` stops the API from starting.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kombify.admin_token import Unauthorized, admin_token, token_path

__all__ = ["RequireToken", "Unauthorized", "admin_token", "bearer", "require_token", "token_path"]

# Declared as a security scheme (not a header parameter) so the OpenAPI document says how to
# authenticate and the docs page's Authorize button sends the token.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="The admin token: `KOMBIFY_ADMIN_TOKEN`, else the file $KOMBIFY_HOME/admin-token.",
)


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Refuse requests without the admin token (compared in constant time)."""
    expected: str = request.app.state.admin_token
    given = credentials.credentials.strip() if credentials else ""
    # An empty expected token must not match an empty given one (defence in depth: the app
    # never starts with one). Bytes, since compare_digest refuses non-ASCII text (a 500).
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(
            "missing or wrong token: send `Authorization: Bearer <token>` "
            "(the token is in $KOMBIFY_HOME/admin-token)"
        )


RequireToken = Depends(require_token)
