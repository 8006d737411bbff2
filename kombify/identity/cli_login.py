"""The CLI's browser login (as ``gh`` and ``gcloud`` do it): the CLI listens on a loopback port,
the provider's callback ends with a redirect there carrying a one-time code, and the CLI trades
the code for a session token (``POST /v1/auth/oidc/cli-exchange``).

Only a loopback address is accepted as the CLI's redirect (RFC 8252 section 7.3), so the code
never leaves the machine the browser runs on; it is single use and lives two minutes, and the
session token itself never appears in a URL.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from sqlalchemy import update
from sqlmodel import Session, col, select

from kombify.accounts.tokens import digest, new_secret
from kombify.db.account_tables import OneTimeToken
from kombify.db.models import utcnow
from kombify.identity.oidc_errors import LoginRefused, LoginRequestError

PURPOSE = "cli-login"
LIFETIME = timedelta(minutes=2)
CODE_PREFIX = "kfc_"


def check_redirect(value: str) -> str:
    """``value`` if it is ``http://127.0.0.1:PORT/…`` or ``http://[::1]:PORT/…``.

    Raises:
        LoginRequestError: Any other address (a name, even ``localhost``, could resolve
            elsewhere; https is pointless on loopback).
    """
    refused = LoginRequestError(
        "cli_redirect: expected http://127.0.0.1:PORT/… or http://[::1]:PORT/… (the CLI's "
        f"loopback listener), got `{value[:200]}`"
    )
    try:
        parts = urlsplit(value)
        port = parts.port
        host = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        raise refused from None
    if (
        len(value) > 500
        or parts.scheme != "http"
        or not host.is_loopback
        or port is None
        or parts.username is not None
        or parts.password is not None
        or parts.fragment
    ):
        raise refused
    return value


def issue_code(db: Session, user_id: str) -> str:
    """A new one-time code for ``user_id`` (stored as its digest)."""
    code = CODE_PREFIX + new_secret()
    now = utcnow()
    db.add(
        OneTimeToken(
            user_id=user_id,
            purpose=PURPOSE,
            token_hash=digest(code),
            created_at=now,
            expires_at=now + LIFETIME,
        )
    )
    db.commit()
    return code


def with_params(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query."""
    return str(add_params_to_uri(url, list(params.items())))


def redeem(db: Session, code: str) -> str:
    """The user id ``code`` was issued to; the code is used up.

    Raises:
        LoginRefused: Unknown, already used or expired.
    """
    refused = LoginRefused("code: unknown, already used or expired; run `kombify login` again")
    if not code.startswith(CODE_PREFIX) or len(code) > 100:
        raise refused
    wanted = digest(code)
    now = utcnow()
    taken = db.execute(
        update(OneTimeToken)
        .where(
            col(OneTimeToken.token_hash) == wanted,
            col(OneTimeToken.purpose) == PURPOSE,
            col(OneTimeToken.used_at).is_(None),
        )
        .values(used_at=now)
    )
    db.commit()
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise refused
    row = db.exec(select(OneTimeToken).where(OneTimeToken.token_hash == wanted)).one()
    if row.expires_at <= now:
        raise refused
    return row.user_id
