"""TOTP second factor (RFC 6238, pyotp) and one-time recovery codes.

A code is accepted within one 30-second step either side of now (clock drift), and never twice:
the last accepted step is stored and any code of that step or an earlier one is refused, so a
code seen over someone's shoulder cannot be replayed.
"""

from __future__ import annotations

import secrets
import time

import pyotp
from sqlmodel import Session, select

from kombify.accounts.tokens import digest
from kombify.db.account_tables import Credential, RecoveryCode
from kombify.db.models import utcnow

ISSUER = "kombify"
RECOVERY_CODES = 10
_STEP = 30
_DRIFT_STEPS = 1
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud, typed


def new_secret() -> str:
    """A fresh base32 TOTP seed (160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, email: str) -> str:
    """The ``otpauth://`` URI authenticator apps read (as a QR code or typed)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def _matching_step(secret: str, code: str, now: float) -> int | None:
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now) // _STEP
    for step in range(current - _DRIFT_STEPS, current + _DRIFT_STEPS + 1):
        if secrets.compare_digest(totp.at(step * _STEP), code):
            return step
    return None


def check_code(db: Session, cred: Credential, code: str, *, secret: str | None = None) -> bool:
    """Whether ``code`` is a fresh TOTP code of the user's seed (or ``secret`` while enrolling);
    an accepted code's step is recorded (committed) so it never works again."""
    seed = secret or cred.totp_secret
    if not seed:
        return False
    step = _matching_step(seed, code, time.time())
    if step is None or step <= cred.totp_last_step:
        return False
    cred.totp_last_step = step
    db.add(cred)
    db.commit()
    return True


def new_recovery_codes(db: Session, user_id: str) -> list[str]:
    """Replace the user's recovery codes with fresh ones; the codes, shown once."""
    for old in db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user_id)).all():
        db.delete(old)
    codes = [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(3))
        for _ in range(RECOVERY_CODES)
    ]
    for code in codes:
        db.add(RecoveryCode(user_id=user_id, code_hash=digest(code)))
    db.commit()
    return codes


def use_recovery_code(db: Session, user_id: str, code: str) -> bool:
    """Whether ``code`` is one of the user's unused recovery codes (then it is used up)."""
    wanted = digest(code.strip().lower())
    row = db.exec(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == wanted,
            RecoveryCode.used_at.is_(None),  # type: ignore[union-attr]
        )
    ).first()
    if row is None:
        return False
    row.used_at = utcnow()
    db.add(row)
    db.commit()
    return True


def enabled(cred: Credential | None) -> bool:
    """Whether the user signs in with a second factor."""
    return bool(cred and cred.totp_secret and cred.totp_enabled_at)
