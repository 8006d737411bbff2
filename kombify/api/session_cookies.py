"""The session and CSRF cookies a login sets (password or OIDC) and logout clears.

``__Host-`` cookies: Secure, Path=/ and no Domain, so no other host or path can set or read
them. The session cookie is HttpOnly (scripts cannot read it); the CSRF cookie is not (the
dashboard reads it and echoes it as ``X-CSRF-Token`` on changes). SameSite=Lax keeps the
session off cross-site subrequests while a link from elsewhere still opens the dashboard.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import Response

from kombify.accounts.sessions import NewSession, aware
from kombify.api.principal import CSRF_COOKIE, SESSION_COOKIE
from kombify.db.models import utcnow


def set_session_cookies(response: Response, session: NewSession) -> None:
    """Attach the new session's cookies, expiring with the session's absolute timeout."""
    max_age = max(0, int((session.row.expires_at - utcnow()).total_seconds()))
    common = {"secure": True, "samesite": "lax", "path": "/", "max_age": max_age}
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, **common)  # type: ignore[arg-type]
    response.set_cookie(CSRF_COOKIE, session.csrf, httponly=False, **common)  # type: ignore[arg-type]


def clear_session_cookies(response: Response) -> None:
    """Tell the browser to forget both cookies."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=True, samesite="lax")


def expires_iso(when: datetime) -> str:
    """A timestamp as ISO 8601 UTC."""
    return aware(when).isoformat()
