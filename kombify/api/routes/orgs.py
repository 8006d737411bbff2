"""Organisations, their members and invitations.

Routes under ``/v1/orgs/{org}`` act in the organisation their path names (one the caller
belongs to; any other is answered as missing). Viewers read; admins manage members and
invitations; only owners make or unmake owners.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field
from sqlmodel import select

from kombify.accounts import orgs, outbox, totp
from kombify.accounts.principal import Principal
from kombify.accounts.roles import check_role
from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PersonOnly, PrincipalDep, UserDep
from kombify.api.routes.auth import org_public
from kombify.billing import entitlements
from kombify.db.account_tables import Credential, Invitation, Membership, UserSession
from kombify.db.models import User, utcnow
from kombify.errors import ConflictError, ForbiddenError, NotFoundError
from kombify.names import Name, OrgSlug, RecordId

router = APIRouter(prefix="/v1/orgs", tags=["organisations"])
# Routes a signed-in user calls for themself, whatever their role anywhere.
self_router = APIRouter(tags=["organisations"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Your role does not allow it", **_PROBLEM},
    404: {"description": "No such organisation, member or invitation", **_PROBLEM},
    402: {
        "description": "The plan has no team collaboration (members beyond the owner)",
        **_PROBLEM,
    },
    409: {"description": "Conflicts with what exists (the last owner …)", **_PROBLEM},
    422: {"description": "Invalid input, naming the field", **_PROBLEM},
}


class OrgCreate(BaseModel):
    """A new organisation; the caller becomes its owner."""

    slug: Name = Field(description="DNS label naming it in paths and on the command line.")
    name: str = Field(default="", max_length=200)


class OrgUpdate(BaseModel):
    """What an organisation's admins may change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)


class MemberUpdate(BaseModel):
    """A member's new role."""

    role: str = Field(description="owner, admin, member or viewer.")


class InvitationCreate(BaseModel):
    """Who to invite, as what (admin, member or viewer)."""

    email: str = Field(max_length=320)
    role: str = Field(default="member")


class InvitationAccept(BaseModel):
    """The token from the invitation mail."""

    token: str = Field(max_length=200)


def _member_public(user: User, role: str) -> dict[str, Any]:
    return {"user_id": user.id, "email": user.email, "name": user.name, "role": role}


def _invitation_public(row: Invitation) -> dict[str, Any]:
    if row.accepted_at:
        state = "accepted"
    elif row.revoked_at:
        state = "revoked"
    else:
        state = "open" if row.expires_at > utcnow() else "expired"
    return {
        "id": row.id,
        "email": row.email,
        "role": row.role,
        "state": state,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
    }


@router.get("", responses=_ERRORS)
def list_orgs(principal: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    """The organisations you belong to, with your role in each."""
    if principal.user is None:
        data = [{**org_public(principal.organisation), "role": principal.role}]
    else:
        data = [{**org_public(o), "role": r} for o, r in orgs.memberships(db, principal.user.id)]
    return {"data": data, "count": len(data)}


@self_router.post("/v1/orgs", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
def create_org(
    body: OrgCreate, request: Request, principal: PrincipalDep, user: UserDep, db: SessionDep
) -> dict[str, Any]:
    """Create an organisation; you are its owner."""
    if principal.via == "api-key":
        raise ForbiddenError("sign in to create organisations: an API key belongs to one")
    org = orgs.create(db, slug=body.slug, name=body.name)
    db.add(Membership(organisation_id=org.id, user_id=user.id, role="owner"))
    db.commit()
    record_event(
        db, request, action="org-create", principal=principal, org=org,
        object_type="organisation", object_id=org.slug,
    )  # fmt: skip
    return {**org_public(org), "role": "owner"}


@router.get("/{org}", responses=_ERRORS)
def get_org(org: OrgSlug, principal: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    """One of your organisations, with your role and its security settings."""
    found = principal.organisation
    return {
        **org_public(found),
        "role": principal.role,
        "mfa_required": orgs.mfa_required(db, found.id),
    }


@router.patch("/{org}", responses=_ERRORS)
def update_org(
    org: OrgSlug, body: OrgUpdate, principal: PrincipalDep, db: SessionDep
) -> dict[str, Any]:
    """Rename the organisation (admins)."""
    principal.require("admin", "changing the organisation")
    found = principal.organisation
    if body.name is not None:
        found.name = body.name
        db.add(found)
        db.commit()
        db.refresh(found)
    return {**org_public(found), "role": principal.role}


@router.get("/{org}/members", responses=_ERRORS)
def list_members(org: OrgSlug, principal: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    """The members and their roles."""
    data = [_member_public(u, r) for u, r in orgs.members(db, principal.organisation.id)]
    return {"data": data, "count": len(data)}


def _owner_change(principal: Principal, old: str, new: str | None) -> None:
    if "owner" in (old, new):
        principal.require("owner", "making or unmaking an owner")


@router.patch("/{org}/members/{user_id}", responses=_ERRORS)
def update_member(
    org: OrgSlug, user_id: RecordId, body: MemberUpdate, principal: PrincipalDep, db: SessionDep
) -> dict[str, Any]:
    """Change a member's role (admins; owners for the owner role)."""
    principal.require("admin", "changing roles")
    role = check_role(body.role)
    current = orgs.membership(db, principal.organisation.id, user_id)
    if current is None:
        raise NotFoundError(f"no member `{user_id}`")
    _owner_change(principal, current.role, role)
    orgs.set_role(db, principal.organisation.id, user_id, role)
    user = db.get(User, user_id)
    assert user is not None
    return _member_public(user, role)


@router.delete(
    "/{org}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS
)
def remove_member(
    org: OrgSlug, user_id: RecordId, principal: PrincipalDep, db: SessionDep
) -> Response:
    """Remove a member (admins; owners for an owner). To leave, POST /v1/orgs/{org}/leave."""
    principal.require("admin", "removing members")
    current = orgs.membership(db, principal.organisation.id, user_id)
    if current is None:
        raise NotFoundError(f"no member `{user_id}`")
    _owner_change(principal, current.role, None)
    orgs.remove_member(db, principal.organisation.id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@self_router.post(
    "/v1/orgs/{org}/leave",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    dependencies=[PersonOnly],
)
def leave_org(org: OrgSlug, user: UserDep, principal: PrincipalDep, db: SessionDep) -> Response:
    """Leave the organisation, whatever your role (its last owner cannot: make another first)."""
    orgs.remove_member(db, principal.organisation.id, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{org}/invitations", responses=_ERRORS)
def list_invitations(org: OrgSlug, principal: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    """Invitations sent, newest first (admins)."""
    principal.require("admin", "seeing invitations")
    rows = db.exec(
        select(Invitation)
        .where(Invitation.organisation_id == principal.organisation.id)
        .order_by(Invitation.created_at.desc())  # type: ignore[attr-defined]
    ).all()
    data = [_invitation_public(r) for r in rows]
    return {"data": data, "count": len(data)}


@router.post("/{org}/invitations", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
def invite(
    org: OrgSlug,
    body: InvitationCreate,
    principal: PrincipalDep,
    db: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Invite someone by email (admins). The token is in the mail and in this answer, once."""
    from kombify.accounts.users import by_email, normal_email

    principal.require("admin", "inviting")
    entitlements.check_team(db, principal.organisation, settings, action="inviting")
    email = normal_email(body.email)
    existing = by_email(db, email)
    if existing is not None and orgs.membership(db, principal.organisation.id, existing.id):
        raise ConflictError(f"email: `{email}` is a member already")
    row, token = orgs.invite(
        db,
        org_id=principal.organisation.id,
        email=email,
        role=body.role,
        invited_by=principal.user.id if principal.user else "admin-token",
    )
    link = f"{settings.resolved_public_url}/invitations?token={token}"
    outbox.send(
        db,
        settings,
        to=email,
        subject=f"You are invited to {principal.organisation.name} on kombify",
        body=(
            f"{principal.actor} invites you to `{principal.organisation.slug}` as {row.role}.\n\n"
            f"Accept: {link}\n(or `kombify invitations accept {token}`)\n\n"
            "The invitation works once and expires in 7 days."
        ),
    )
    return {**_invitation_public(row), "token": token}


@router.delete(
    "/{org}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
)
def revoke_invitation(
    org: OrgSlug, invitation_id: RecordId, principal: PrincipalDep, db: SessionDep
) -> Response:
    """Withdraw an invitation (admins); its token stops working."""
    principal.require("admin", "withdrawing invitations")
    row = db.get(Invitation, invitation_id)
    if row is None or row.organisation_id != principal.organisation.id:
        raise NotFoundError(f"no invitation `{invitation_id}`")
    if row.revoked_at is None and row.accepted_at is None:
        row.revoked_at = utcnow()
        db.add(row)
        db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@self_router.post("/v1/invitations/accept", responses=_ERRORS, dependencies=[PersonOnly])
def accept_invitation(
    body: InvitationAccept,
    request: Request,
    principal: PrincipalDep,
    user: UserDep,
    db: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Join the organisation an invitation (to your email address) is for (402 when its plan
    lost team collaboration since; the invitation stays open)."""
    from kombify.db.models import Organisation

    row = orgs.open_invitation(db, body.token)
    org = db.get(Organisation, row.organisation_id)
    assert org is not None
    if orgs.membership(db, org.id, user.id) is None:
        entitlements.check_team(db, org, settings, action="joining by invitation")
    membership = orgs.accept(db, row, user)
    if orgs.mfa_required(db, org.id) and not totp.enabled(db.get(Credential, user.id)):
        # As at login: an organisation that requires a second factor holds this session to
        # enrolling one before anything else.
        session_row = db.get(UserSession, principal.session_id) if principal.session_id else None
        if session_row is not None:
            session_row.mfa_satisfied = False
            db.add(session_row)
            db.commit()
    record_event(
        db, request, action="invitation-accept", principal=principal, org=org,
        object_type="invitation", object_id=row.id,
    )  # fmt: skip
    return {**org_public(org), "role": membership.role}
