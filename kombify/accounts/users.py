"""Users and their credentials: creating, finding by email, checking a password."""

from __future__ import annotations

import re

from sqlmodel import Session, select

from kombify.accounts.passwords import check_new_password, hash_password
from kombify.db.account_tables import Credential, Membership
from kombify.db.models import Organisation, User, utcnow
from kombify.errors import ConflictError, SpecError

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}$")


def normal_email(value: str, *, field: str = "email") -> str:
    """``value`` trimmed and lowercased, if it looks like an email address."""
    email = value.strip().lower()
    if not _EMAIL.fullmatch(email) or len(email) > 320:
        raise SpecError(f"{field}: expected an email address like `you@example.org`")
    return email


def by_email(db: Session, email: str) -> User | None:
    """The user with this email (already normalised), if any."""
    return db.exec(select(User).where(User.email == email)).first()


def credential(db: Session, user_id: str) -> Credential:
    """The user's credential row (made empty when missing: an OIDC-only user)."""
    row = db.get(Credential, user_id)
    if row is None:
        row = Credential(user_id=user_id)
        db.add(row)
        db.flush()
    return row


def create(
    db: Session,
    *,
    email: str,
    organisation: Organisation,
    role: str,
    password: str | None = None,
    name: str = "",
    email_verified: bool = False,
) -> User:
    """A new user, member of ``organisation`` with ``role`` (committed)."""
    email = normal_email(email)
    if by_email(db, email) is not None:
        raise ConflictError(f"email: an account with `{email}` exists; sign in instead")
    if password is not None:
        check_new_password(password, email=email)
    user = User(organisation_id=organisation.id, email=email, name=name[:200])
    db.add(user)
    db.flush()
    db.add(
        Credential(
            user_id=user.id,
            password_hash=hash_password(password) if password is not None else None,
            password_changed_at=utcnow() if password is not None else None,
            email_verified=email_verified,
        )
    )
    db.add(Membership(organisation_id=organisation.id, user_id=user.id, role=role))
    db.commit()
    db.refresh(user)
    return user
