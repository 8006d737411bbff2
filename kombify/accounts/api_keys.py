"""API keys for scripts and service accounts.

A key reads ``kfk_<prefix>_<secret>``: the prefix finds the row, the secret's digest proves it.
It is shown once, bound to one organisation, scoped (read, deploy, admin), may expire, and
records when it was last used (at most once a minute, not on every request).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, select

from kombify.accounts.roles import check_scope
from kombify.accounts.sessions import aware
from kombify.accounts.tokens import API_KEY_PREFIX, digest, new_secret, same
from kombify.db.account_tables import ApiKey
from kombify.db.models import utcnow
from kombify.errors import SpecError

_TOUCH_EVERY = timedelta(seconds=60)


def create(
    db: Session,
    *,
    org_id: str,
    user_id: str,
    name: str,
    scope: str,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its full text (shown once)."""
    check_scope(scope)
    name = name.strip()
    if not name or len(name) > 100:
        raise SpecError("name: expected 1 to 100 characters saying what the key is for")
    if expires_at is not None and aware(expires_at) <= utcnow():
        raise SpecError("expires_at: expected a time in the future")
    prefix = secrets.token_hex(6)
    secret = new_secret()
    row = ApiKey(
        organisation_id=org_id,
        user_id=user_id,
        name=name,
        prefix=prefix,
        secret_hash=digest(secret),
        scope=scope,
        expires_at=expires_at,
    )
    db.add(row)
    db.commit()
    db.refresh(row)
    return row, f"{API_KEY_PREFIX}{prefix}_{secret}"


def find(db: Session, text: str) -> ApiKey | None:
    """The usable key ``text`` names (touched); None if unknown, wrong, revoked or expired."""
    if not text.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = text.removeprefix(API_KEY_PREFIX).partition("_")
    if not prefix or not secret:
        return None
    row = db.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None or not same(secret, row.secret_hash) or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
        row.last_used_at = now
        db.add(row)
        db.commit()
        db.refresh(row)
    return row


def listed(db: Session, *, org_id: str, user_id: str | None = None) -> list[ApiKey]:
    """The organisation's keys (of one user when given), newest first."""
    query = select(ApiKey).where(ApiKey.organisation_id == org_id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list(db.exec(query.order_by(ApiKey.created_at.desc())).all())  # type: ignore[attr-defined]


def revoke(db: Session, row: ApiKey) -> None:
    """Make the key unusable from its next request on."""
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.add(row)
        db.commit()
