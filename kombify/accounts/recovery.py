"""Password reset and email verification by one-time tokens sent in a mail.

A token is random (256 bits), single use and short-lived (a reset 30 minutes, a verification
2 days); only its digest is stored, and asking for a new one retires the user's earlier ones of
the same kind. Asking for a reset answers the same whether or not the address has an account
(no enumeration); a completed reset ends every session of the user.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from kombify.accounts import outbox, sessions
from kombify.accounts.passwords import check_new_password, hash_password
from kombify.accounts.tokens import digest, new_secret
from kombify.accounts.users import by_email, credential, normal_email
from kombify.db.account_tables import OneTimeToken
from kombify.db.models import User, utcnow
from kombify.errors import SpecError
from kombify.settings import Settings

PASSWORD_RESET = "password-reset"
VERIFY_EMAIL = "verify-email"
LIFETIMES = {PASSWORD_RESET: timedelta(minutes=30), VERIFY_EMAIL: timedelta(days=2)}
_PREFIXES = {PASSWORD_RESET: "kfr_", VERIFY_EMAIL: "kfv_"}


class InvalidToken(SpecError):
    """A one-time token is unknown, used, retired or expired."""

    code = "invalid-token"
    status = 400


def _issue(db: Session, user_id: str, purpose: str) -> str:
    """A new token of ``purpose`` for the user (committed); earlier unused ones are retired."""
    now = utcnow()
    for old in db.exec(
        select(OneTimeToken).where(
            OneTimeToken.user_id == user_id,
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),  # type: ignore[union-attr]
        )
    ).all():
        old.used_at = now
        db.add(old)
    token = _PREFIXES[purpose] + new_secret()
    db.add(
        OneTimeToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=digest(token),
            created_at=now,
            expires_at=now + LIFETIMES[purpose],
        )
    )
    db.commit()
    return token


def find(db: Session, token: str, purpose: str) -> OneTimeToken | None:
    """The usable token row of ``token`` for ``purpose`` (not used up by looking)."""
    if not token.startswith(_PREFIXES[purpose]):
        return None
    row = db.exec(
        select(OneTimeToken).where(
            OneTimeToken.token_hash == digest(token), OneTimeToken.purpose == purpose
        )
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    return row


def _usable(db: Session, token: str, purpose: str) -> tuple[OneTimeToken, User]:
    row = find(db, token, purpose)
    user = db.get(User, row.user_id) if row else None
    if row is None or user is None:
        what = "reset" if purpose == PASSWORD_RESET else "verification"
        raise InvalidToken(
            f"token: unknown, already used, replaced by a newer one or expired; "
            f"ask for a new {what} mail"
        )
    return row, user


def request_reset(db: Session, settings: Settings, email: str) -> None:
    """Mail a reset token to ``email`` if it has an enabled account; nothing otherwise.

    The caller answers the same either way, so nobody learns which addresses have accounts.
    """
    user = by_email(db, normal_email(email))
    if user is None or credential(db, user.id).disabled:
        db.rollback()
        return
    token = _issue(db, user.id, PASSWORD_RESET)
    minutes = int(LIFETIMES[PASSWORD_RESET].total_seconds() // 60)
    outbox.send(
        db,
        settings,
        to=user.email,
        subject="Reset your kombify password",
        body=(
            f"Someone (hopefully you) asked to reset the password of {user.email} at "
            f"{settings.resolved_public_url}.\n\n"
            f"Your reset token, valid for {minutes} minutes and once:\n\n    {token}\n\n"
            "Choose a new password with it:\n\n"
            f"    curl -X POST {settings.resolved_public_url}/v1/auth/password-reset/confirm \\\n"
            '      -H "content-type: application/json" \\\n'
            f'      -d \'{{"token": "{token}", "password": "<your new password>"}}\'\n\n'
            "Every session of the account ends when the password changes. If you did not ask "
            "for this, ignore this mail: your password stays as it is.\n"
        ),
    )


def confirm_reset(db: Session, token: str, password: str) -> User:
    """Set a new password with a reset token (used up); every session of the user ends.

    Raises:
        InvalidToken: The token cannot be used.
        WeakPassword: The password breaks the rules (the token stays usable).
    """
    row, user = _usable(db, token, PASSWORD_RESET)
    check_new_password(password, email=user.email)
    cred = credential(db, user.id)
    now = utcnow()
    cred.password_hash = hash_password(password)
    cred.password_changed_at = now
    cred.email_verified = True  # the token came through this mailbox
    row.used_at = now
    db.add_all([cred, row])
    db.commit()
    sessions.revoke_all(db, user.id)
    return user


def send_verification(db: Session, settings: Settings, user: User) -> bool:
    """Mail a verification token to the user's address (at sign-up, or when asked again).

    Returns:
        False, and nothing is sent, when the address is verified already.
    """
    if credential(db, user.id).email_verified:
        db.rollback()
        return False
    token = _issue(db, user.id, VERIFY_EMAIL)
    outbox.send(
        db,
        settings,
        to=user.email,
        subject="Verify your email address for kombify",
        body=(
            f"Confirm that {user.email} is yours at {settings.resolved_public_url}.\n\n"
            f"Your verification token, valid for 2 days and once:\n\n    {token}\n\n"
            f"    curl -X POST {settings.resolved_public_url}/v1/auth/verify-email \\\n"
            '      -H "content-type: application/json" \\\n'
            f'      -d \'{{"token": "{token}"}}\'\n\n'
            "If you did not sign up, ignore this mail.\n"
        ),
    )
    return True


def confirm_verification(db: Session, token: str) -> User:
    """Mark the token's user's email verified (the token is used up)."""
    row, user = _usable(db, token, VERIFY_EMAIL)
    cred = credential(db, user.id)
    cred.email_verified = True
    row.used_at = utcnow()
    db.add_all([cred, row])
    db.commit()
    return user
