"""Organisations, memberships and invitations."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlmodel import Session, select

from kombify.accounts.roles import check_role
from kombify.accounts.tokens import digest, new_secret
from kombify.db.account_tables import Invitation, Membership, OrganisationSettings
from kombify.db.models import Organisation, User, utcnow
from kombify.db.stacks import LOCAL_ORG
from kombify.errors import ConflictError, NotFoundError, SpecError
from kombify.names import check_name

INVITATION_LIFETIME = timedelta(days=7)


def by_slug(db: Session, slug: str) -> Organisation | None:
    """The organisation called ``slug``, if any."""
    return db.exec(select(Organisation).where(Organisation.slug == slug)).first()


def create(db: Session, *, slug: str, name: str = "") -> Organisation:
    """A new organisation (committed); its slug is a DNS label, unique on the installation."""
    slug = check_name(slug, what="slug")
    if by_slug(db, slug) is not None:
        raise ConflictError(f"slug: an organisation `{slug}` exists; choose another")
    org = Organisation(slug=slug, name=(name or slug)[:200])
    db.add(org)
    db.commit()
    db.refresh(org)
    return org


def personal_slug(db: Session, email: str) -> str:
    """A free slug for a new user's own organisation, from their email's local part."""
    base = "".join(c if c.isalnum() else "-" for c in email.split("@")[0].lower()).strip("-")
    base = (base or "org")[:40].strip("-") or "org"
    while True:
        slug = f"{base}-{secrets.token_hex(3)}"
        if slug != LOCAL_ORG and by_slug(db, slug) is None:
            return slug


def membership(db: Session, org_id: str, user_id: str) -> Membership | None:
    """The user's membership of the organisation, if any."""
    return db.exec(
        select(Membership).where(
            Membership.organisation_id == org_id, Membership.user_id == user_id
        )
    ).first()


def memberships(db: Session, user_id: str) -> list[tuple[Organisation, str]]:
    """Every organisation the user belongs to, with the role, by slug."""
    rows = db.exec(
        select(Organisation, Membership.role)
        .join(Membership, Membership.organisation_id == Organisation.id)  # type: ignore[arg-type]
        .where(Membership.user_id == user_id)
        .order_by(Organisation.slug)
    ).all()
    return [(org, role) for org, role in rows]


def members(db: Session, org_id: str) -> list[tuple[User, str]]:
    """The organisation's members with their roles, by email."""
    rows = db.exec(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)  # type: ignore[arg-type]
        .where(Membership.organisation_id == org_id)
        .order_by(User.email)
    ).all()
    return [(user, role) for user, role in rows]


def owners(db: Session, org_id: str) -> int:
    """How many owners the organisation has."""
    return sum(1 for _, role in members(db, org_id) if role == "owner")


def set_role(db: Session, org_id: str, user_id: str, role: str) -> Membership:
    """Change a member's role; the last owner cannot stop being one."""
    check_role(role)
    row = membership(db, org_id, user_id)
    if row is None:
        raise NotFoundError("no such member")
    if row.role == "owner" and role != "owner" and owners(db, org_id) <= 1:
        raise ConflictError("role: the organisation's last owner stays owner; make another first")
    row.role = role
    db.add(row)
    db.commit()
    db.refresh(row)
    return row


def remove_member(db: Session, org_id: str, user_id: str) -> None:
    """Remove a member (never the last owner)."""
    row = membership(db, org_id, user_id)
    if row is None:
        raise NotFoundError("no such member")
    if row.role == "owner" and owners(db, org_id) <= 1:
        raise ConflictError("the organisation's last owner cannot leave it; make another first")
    db.delete(row)
    db.commit()


def mfa_required(db: Session, org_id: str) -> bool:
    """Whether the organisation's owners require a second factor of every member."""
    row = db.get(OrganisationSettings, org_id)
    return bool(row and row.mfa_required)


def set_mfa_required(db: Session, org_id: str, required: bool) -> None:
    """Owners' switch: every member needs a second factor (sessions without one must enrol)."""
    row = db.get(OrganisationSettings, org_id) or OrganisationSettings(organisation_id=org_id)
    row.mfa_required = required
    db.add(row)
    db.commit()


def invite(
    db: Session, *, org_id: str, email: str, role: str, invited_by: str
) -> tuple[Invitation, str]:
    """A new invitation and its token (shown once)."""
    check_role(role)
    if role == "owner":
        raise SpecError("role: invite as admin, member or viewer; make owners among members")
    token = "kfi_" + new_secret()
    now = utcnow()
    row = Invitation(
        organisation_id=org_id,
        email=email,
        role=role,
        token_hash=digest(token),
        invited_by=invited_by,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    db.add(row)
    db.commit()
    db.refresh(row)
    return row, token


def open_invitation(db: Session, token: str) -> Invitation:
    """The usable invitation of ``token``; NotFoundError for unknown, used, revoked, expired."""

    row = db.exec(select(Invitation).where(Invitation.token_hash == digest(token))).first()
    if (
        row is None
        or row.accepted_at is not None
        or row.revoked_at is not None
        or row.expires_at <= utcnow()
    ):
        raise NotFoundError("invitation: unknown, used, revoked or expired; ask for a new one")
    return row


def accept(db: Session, invitation: Invitation, user: User) -> Membership:
    """Make ``user`` a member as invited (the invitation is used up)."""
    if user.email != invitation.email:
        raise ConflictError(
            "invitation: it was sent to another email address; sign in with that account"
        )
    invitation.accepted_at = utcnow()
    db.add(invitation)
    row = membership(db, invitation.organisation_id, user.id)
    if row is None:
        row = Membership(
            organisation_id=invitation.organisation_id, user_id=user.id, role=invitation.role
        )
        db.add(row)
    db.commit()
    db.refresh(row)
    return row
