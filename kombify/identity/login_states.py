"""Logins in progress: ``state``, ``nonce`` and PKCE verifier kept server-side, used once.

The ``state`` a provider sends back finds the row by its digest; taking it is one conditional
UPDATE, so two requests with the same callback URL cannot both win (a replayed code is refused
before it reaches the provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from kombify.accounts.tokens import digest, new_secret
from kombify.db.models import utcnow
from kombify.db.oidc_tables import OidcLoginState
from kombify.identity.oidc_errors import LoginRefused

LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class Started:
    """A login just begun: the values sent to the provider."""

    state: str
    nonce: str
    code_verifier: str


def begin(db: Session, *, provider: str, cli_redirect: str = "") -> Started:
    """Store a new login for ``provider`` (expired ones are swept at the same time)."""
    now = utcnow()
    db.execute(
        OidcLoginState.__table__.delete().where(  # type: ignore[attr-defined]
            col(OidcLoginState.expires_at) < now
        )
    )
    started = Started(state=new_secret(), nonce=new_secret(), code_verifier=new_secret(48))
    db.add(
        OidcLoginState(
            state_hash=digest(started.state),
            provider=provider,
            nonce=started.nonce,
            code_verifier=started.code_verifier,
            cli_redirect=cli_redirect,
            created_at=now,
            expires_at=now + LIFETIME,
        )
    )
    db.commit()
    return started


def take(db: Session, *, provider: str, state: str) -> OidcLoginState:
    """The login ``state`` names, used up now.

    Raises:
        LoginRefused: Unknown, already used, expired, or begun at another provider.
    """
    refused = LoginRefused(
        "state: unknown, already used or expired login; start again at "
        f"/v1/auth/oidc/{provider}/login"
    )
    if not state or len(state) > 200:
        raise refused
    wanted = digest(state)
    now = utcnow()
    taken = db.execute(
        update(OidcLoginState)
        .where(
            col(OidcLoginState.state_hash) == wanted,
            col(OidcLoginState.used_at).is_(None),
            col(OidcLoginState.provider) == provider,
        )
        .values(used_at=now)
    )
    db.commit()
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise refused
    row = db.exec(select(OidcLoginState).where(OidcLoginState.state_hash == wanted)).one()
    if row.expires_at <= now:
        raise refused
    return row
