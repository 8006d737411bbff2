"""SSO tokens: short-lived JWTs for one tool (the audience) and one organisation.

Claims: ``iss`` (this portal's public URL), ``aud`` (the tool), ``sub`` (the user's id),
``email``, ``name``, ``org_id``, ``org_slug``, ``role`` (the caller's role, an API key's scope
cap applied), ``iat``, ``nbf``, ``exp`` and a random ``jti``; signed with the active key
(header ``kid``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from joserfc import jwt
from sqlmodel import Session

from kombify.accounts.principal import Principal
from kombify.db.models import utcnow
from kombify.errors import ForbiddenError, SpecError
from kombify.identity.signing_keys import ALGORITHM, KeyPolicy, active_key, private_key
from kombify.settings import Settings

# Only people (signed in, or through their API key) get tokens: the admin token is nobody.
ISSUING_VIA = frozenset({"session", "api-key"})


@dataclass(frozen=True)
class IssuedToken:
    """A token just signed, for the caller (shown once)."""

    token: str
    audience: str
    expires_at: datetime
    lifetime: timedelta


def check_audience(settings: Settings, audience: str) -> str:
    """``audience`` if this portal issues tokens for it, else a SpecError listing the choices."""
    allowed = settings.sso_audience_names
    if audience not in allowed:
        choices = ", ".join(f"`{name}`" for name in allowed) or "none (set KOMBIFY_SSO_AUDIENCES)"
        raise SpecError(
            f"audience: expected a tool this portal issues tokens for ({choices}), "
            f"got `{audience[:63]}`"
        )
    return audience


def issue(db: Session, *, settings: Settings, principal: Principal, audience: str) -> IssuedToken:
    """A signed token for ``audience`` saying who ``principal`` is and in which organisation."""
    check_audience(settings, audience)
    user = principal.user
    if user is None or principal.via not in ISSUING_VIA:
        raise ForbiddenError(
            "SSO tokens are for people: sign in or use an API key (not the admin token or an "
            "SSO token)"
        )
    row = active_key(db, KeyPolicy.of(settings))
    lifetime = timedelta(minutes=settings.sso_token_minutes)
    now = utcnow().replace(microsecond=0)
    expires = now + lifetime
    claims = {
        "iss": settings.resolved_public_url,
        "aud": audience,
        "sub": user.id,
        "email": user.email,
        "name": user.name,
        "org_id": principal.organisation.id,
        "org_slug": principal.organisation.slug,
        "role": principal.role,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_urlsafe(16),
    }
    header = {"alg": ALGORITHM, "kid": row.kid, "typ": "JWT"}
    token = jwt.encode(header, claims, private_key(row), algorithms=[ALGORITHM])
    return IssuedToken(token=token, audience=audience, expires_at=expires, lifetime=lifetime)
