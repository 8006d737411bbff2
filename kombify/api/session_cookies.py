"""The session cookies a browser login sets (password login and OIDC login alike).

``__Host-`` names oblige ``Secure``, ``Path=/`` and no ``Domain``: the cookie is this host's
only. The session cookie is ``HttpOnly``; the CSRF cookie is not, since the dashboard reads it
to send ``X-CSRF-Token`` on changes (a cross-site page can neither read it nor set a
``__Host-`` cookie).
"""

from __future__ import annotations

from fastapi import Response

from kombify.accounts.sessions import NewSession, Timeouts
from kombify.api.principal import CSRF_COOKIE, SESSION_COOKIE


def set_session_cookies(response: Response, new: NewSession, timeouts: Timeouts) -> None:
    """Put the session and CSRF cookies of ``new`` on ``response``."""
    max_age = int(timeouts.absolute.total_seconds())
    for name, value, http_only in (
        (SESSION_COOKIE, new.token, True),
        (CSRF_COOKIE, new.csrf, False),
    ):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=True,
            httponly=http_only,
            samesite="lax",
        )
