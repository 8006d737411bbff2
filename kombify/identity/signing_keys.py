"""Ed25519 signing keys for SSO tokens: made, rotated, retired, published and pruned.

The newest unretired key signs. It is replaced (and retired) when it is older than
``KOMBIFY_SSO_KEY_ROTATE_DAYS`` or on demand (:func:`rotate`). A retired key stays published in
the JWKS for ``KOMBIFY_SSO_KEY_GRACE_MINUTES`` (longer than any token it signed lives), so tools
still accept the tokens it signed; then its row, private key included, is deleted.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import OKPKey
from sqlmodel import Session, col, select

from kombify.db.models import utcnow
from kombify.db.sso_tables import SigningKey
from kombify.settings import Settings

ALGORITHM = "Ed25519"
"""The JWS algorithm (RFC 9864's fully specified name for EdDSA over Ed25519)."""


@dataclass(frozen=True)
class KeyPolicy:
    """When keys rotate and how long a retired key stays published."""

    rotate_after: timedelta
    grace: timedelta

    @classmethod
    def of(cls, settings: Settings) -> KeyPolicy:
        """The policy the settings ask for."""
        return cls(
            rotate_after=timedelta(days=settings.sso_key_rotate_days),
            grace=timedelta(minutes=settings.sso_key_grace_minutes),
        )


def _new_key(db: Session, now: datetime) -> SigningKey:
    kid = f"{now:%Y%m%d}-{secrets.token_hex(6)}"
    key = OKPKey.generate_key("Ed25519", parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})
    row = SigningKey(
        kid=kid,
        alg=ALGORITHM,
        private_pem=key.as_pem(private=True).decode(),
        public_jwk=json.dumps(key.as_dict(private=False), sort_keys=True),
        created_at=now,
    )
    db.add(row)
    return row


def _unretired(db: Session) -> list[SigningKey]:
    return list(
        db.exec(
            select(SigningKey)
            .where(col(SigningKey.retired_at).is_(None))
            .order_by(col(SigningKey.created_at).desc())
        ).all()
    )


def prune(db: Session, policy: KeyPolicy, now: datetime | None = None) -> int:
    """Delete retired keys whose grace period is over; how many (not committed)."""
    now = now or utcnow()
    gone = 0
    for row in db.exec(select(SigningKey).where(col(SigningKey.retired_at).is_not(None))).all():
        if row.retired_at is not None and row.retired_at + policy.grace <= now:
            db.delete(row)
            gone += 1
    return gone


def rotate(db: Session, now: datetime | None = None) -> SigningKey:
    """A new active key; every other unretired key is retired now (committed)."""
    now = now or utcnow()
    for row in _unretired(db):
        row.retired_at = now
        db.add(row)
    fresh = _new_key(db, now)
    db.commit()
    db.refresh(fresh)
    return fresh


def active_key(db: Session, policy: KeyPolicy) -> SigningKey:
    """The key that signs now: made on first use, rotated when too old; expired ones pruned."""
    now = utcnow()
    pruned = prune(db, policy, now)
    keys = _unretired(db)
    if not keys or keys[0].created_at + policy.rotate_after <= now:
        return rotate(db, now)
    for extra in keys[1:]:  # two processes rotated at once: the newest wins
        extra.retired_at = now
        db.add(extra)
    if pruned or len(keys) > 1:
        db.commit()
        db.refresh(keys[0])
    return keys[0]


def private_key(row: SigningKey) -> OKPKey:
    """The row's private key, to sign with (never shown)."""
    return OKPKey.import_key(row.private_pem, {"kid": row.kid, "alg": row.alg, "use": "sig"})


def published(db: Session, policy: KeyPolicy) -> dict[str, Any]:
    """The JWKS: the active key and every retired key still in its grace period."""
    active_key(db, policy)
    rows = db.exec(select(SigningKey).order_by(col(SigningKey.created_at).desc())).all()
    return {"keys": [json.loads(row.public_jwk) for row in rows]}


@dataclass(frozen=True)
class KeyInfo:
    """What an administrator may see of a key (never its private half)."""

    kid: str
    alg: str
    state: str  # active or retired
    created_at: datetime
    retired_at: datetime | None
    removed_at: datetime | None  # when a retired key stops being published and accepted


def listed(db: Session, policy: KeyPolicy) -> list[KeyInfo]:
    """Every key still kept, newest first."""
    active_key(db, policy)
    rows = db.exec(select(SigningKey).order_by(col(SigningKey.created_at).desc())).all()
    return [
        KeyInfo(
            kid=row.kid,
            alg=row.alg,
            state="active" if row.retired_at is None else "retired",
            created_at=row.created_at,
            retired_at=row.retired_at if row.retired_at else None,
            removed_at=row.retired_at + policy.grace if row.retired_at else None,
        )
        for row in rows
    ]
