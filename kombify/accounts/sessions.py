"""Sessions: created at login with a new id, found by their token's digest, ended by idle or
absolute timeout, by revocation, and when the password or second factor changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from kombify.accounts.tokens import SESSION_PREFIX, digest, new_secret
from kombify.db.account_tables import UserSession
from kombify.db.models import utcnow

# A session's last-seen time is written at most this often (not on every request).
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Timeouts:
    """How long a session lives unused, and at most."""

    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True)
class NewSession:
    """A session just made: its row and the two secrets, shown to the client once."""

    row: UserSession
    token: str
    csrf: str


def aware(value: datetime) -> datetime:
    """``value`` as timezone-aware UTC (SQLite gives naive datetimes back)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def start(
    db: Session,
    *,
    user_id: str,
    timeouts: Timeouts,
    address: str = "",
    client: str = "",
    mfa_satisfied: bool = True,
) -> NewSession:
    """A new session (a new id and token every login: no fixation)."""
    token = SESSION_PREFIX + new_secret()
    csrf = new_secret()
    now = utcnow()
    row = UserSession(
        user_id=user_id,
        token_hash=digest(token),
        csrf_hash=digest(csrf),
        created_at=now,
        last_seen_at=now,
        reauthenticated_at=now,
        expires_at=now + timeouts.absolute,
        mfa_satisfied=mfa_satisfied,
        address=address[:64],
        client=client[:200],
    )
    db.add(row)
    db.commit()
    db.refresh(row)
    return NewSession(row=row, token=token, csrf=csrf)


def live(row: UserSession, timeouts: Timeouts, now: datetime | None = None) -> bool:
    """Whether ``row`` may still be used: not revoked, not idle too long, not too old."""
    now = now or utcnow()
    if row.revoked_at is not None:
        return False
    if row.expires_at <= now:
        return False
    return row.last_seen_at + timeouts.idle > now


def find(db: Session, token: str, timeouts: Timeouts) -> UserSession | None:
    """The live session of ``token``, touched; None when unknown, revoked or timed out."""
    if not token.startswith(SESSION_PREFIX):
        return None
    row = db.exec(select(UserSession).where(UserSession.token_hash == digest(token))).first()
    if row is None or not live(row, timeouts):
        return None
    now = utcnow()
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
        db.add(row)
        db.commit()
        db.refresh(row)
    return row


def revoke(db: Session, row: UserSession) -> None:
    """End one session now."""
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.add(row)
        db.commit()


def revoke_all(db: Session, user_id: str, *, keep: str | None = None) -> int:
    """End every live session of a user but ``keep``; how many were ended."""
    rows = db.exec(
        select(UserSession).where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    ).all()
    now = utcnow()
    ended = 0
    for row in rows:
        if row.id == keep:
            continue
        row.revoked_at = now
        db.add(row)
        ended += 1
    db.commit()
    return ended


def listed(db: Session, user_id: str, timeouts: Timeouts) -> list[UserSession]:
    """The user's live sessions, newest first."""
    rows = db.exec(
        select(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))  # type: ignore[union-attr]
        .order_by(UserSession.created_at.desc())  # type: ignore[attr-defined]
    ).all()
    return [r for r in rows if live(r, timeouts)]
