"""Accounts, organisations and their credentials as tables (issue 12).

Secrets are never stored as given: passwords as argon2id hashes, session tokens, API keys,
recovery codes and one-time tokens as SHA-256 digests of high-entropy random values (a digest
is enough for those, and cheap on every request). TOTP seeds must be readable to check a code;
they are kept as they are and never leave the database (no response, log or history shows one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from kombify.db.models import UtcDateTime, _ts, new_id

ROLES = ("viewer", "member", "admin", "owner")
"""From least to most: viewer reads; member deploys and simulates; admin manages members and
keys; owner also manages owners and the organisation's security settings."""


def _when(*, nullable: bool = True) -> Any:
    """An optional timestamp column (timezone-aware)."""
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable))


class Credential(SQLModel, table=True):
    """A user's password and second factor (one row per user, absent for OIDC-only users)."""

    user_id: str = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    password_hash: str | None = Field(default=None, max_length=255)
    email_verified: bool = False
    totp_secret: str | None = Field(default=None, max_length=64)
    totp_enabled_at: datetime | None = _when(nullable=True)
    # The last TOTP time step accepted: a code is never accepted twice (replay).
    totp_last_step: int = 0
    password_changed_at: datetime | None = _when(nullable=True)
    disabled: bool = False


class Membership(SQLModel, table=True):
    """A user's role in an organisation."""

    __table_args__ = (UniqueConstraint("organisation_id", "user_id"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    organisation_id: str = Field(foreign_key="organisation.id", index=True, ondelete="CASCADE")
    user_id: str = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=20)
    created_at: datetime = _ts(nullable=False)


class OrganisationSettings(SQLModel, table=True):
    """Per-organisation security settings its owners choose."""

    organisation_id: str = Field(
        foreign_key="organisation.id", primary_key=True, ondelete="CASCADE"
    )
    mfa_required: bool = False


class Invitation(SQLModel, table=True):
    """An invitation to join an organisation: single use, expiring."""

    id: str = Field(default_factory=new_id, primary_key=True)
    organisation_id: str = Field(foreign_key="organisation.id", index=True, ondelete="CASCADE")
    email: str = Field(max_length=320)
    role: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True)
    invited_by: str = Field(max_length=32)
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    accepted_at: datetime | None = _when(nullable=True)
    revoked_at: datetime | None = _when(nullable=True)


class UserSession(SQLModel, table=True):
    """A signed-in browser or CLI: found by the digest of its token."""

    id: str = Field(default_factory=new_id, primary_key=True)
    user_id: str = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    csrf_hash: str = Field(max_length=64)
    created_at: datetime = _ts(nullable=False)
    last_seen_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)  # the absolute timeout
    reauthenticated_at: datetime = _ts(nullable=False)
    # False while the organisation demands MFA the user has not set up: only enrolment works.
    mfa_satisfied: bool = True
    revoked_at: datetime | None = _when(nullable=True)
    address: str = Field(default="", max_length=64)
    client: str = Field(default="", max_length=200)


class ApiKey(SQLModel, table=True):
    """A key for scripts: bound to one organisation, scoped, shown once, stored as a digest."""

    id: str = Field(default_factory=new_id, primary_key=True)
    organisation_id: str = Field(foreign_key="organisation.id", index=True, ondelete="CASCADE")
    user_id: str = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16, unique=True)
    secret_hash: str = Field(max_length=64)
    scope: str = Field(max_length=10)  # read, deploy, admin
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime | None = _when(nullable=True)
    last_used_at: datetime | None = _when(nullable=True)
    revoked_at: datetime | None = _when(nullable=True)


class RecoveryCode(SQLModel, table=True):
    """A one-time MFA recovery code (its digest)."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = _when(nullable=True)


class OneTimeToken(SQLModel, table=True):
    """Password reset and email verification tokens: single use, short-lived."""

    id: str = Field(default_factory=new_id, primary_key=True)
    user_id: str = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    purpose: str = Field(max_length=30)  # password-reset, verify-email, cli-login
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    used_at: datetime | None = _when(nullable=True)


class OutboxMail(SQLModel, table=True):
    """A mail kombify sends (always written here; also sent when SMTP is configured)."""

    id: int | None = Field(default=None, primary_key=True)
    to: str = Field(max_length=320)
    subject: str = Field(max_length=200)
    body: str
    created_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = _when(nullable=True)
    error: str = Field(default="", max_length=500)


class ExternalIdentity(SQLModel, table=True):
    """A login at an OpenID Connect or OAuth 2 provider, linked to a user."""

    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    user_id: str = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    provider: str = Field(max_length=63)
    subject: str = Field(max_length=255)
    email: str = Field(default="", max_length=320)
    created_at: datetime = _ts(nullable=False)


class Activity(SQLModel, table=True):
    """Every change: who, on behalf of whom, what, which object, when, from where."""

    __table_args__ = (
        Index("ix_activity_org_time", "organisation_id", "created_at"),
        Index("ix_activity_user_time", "user_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: str | None = Field(default=None, max_length=32)
    user_id: str | None = Field(default=None, max_length=32)
    actor: str = Field(max_length=320)  # the user's email, or "admin-token"
    via: str = Field(max_length=20)  # session, api-key, admin-token, sso, anonymous
    on_behalf_of: str = Field(default="", max_length=320)  # an API key's owner, a tool
    action: str = Field(max_length=100)  # e.g. "POST /v1/stacks/{name}/deployments"
    object_type: str = Field(default="", max_length=40)
    object_id: str = Field(default="", max_length=255)
    outcome: str = Field(default="ok", max_length=20)
    address: str = Field(default="", max_length=64)
    client: str = Field(default="", max_length=200)
    created_at: datetime = _ts(nullable=False)


class InstallationFlag(SQLModel, table=True):
    """One-way switches of the installation, e.g. ``admin-token-retired``."""

    name: str = Field(primary_key=True, max_length=63)
    set_at: datetime = _ts(nullable=False)
