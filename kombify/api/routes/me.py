"""Who am I: the caller, the organisation the request acts in, and the user's activity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from kombify.accounts import activity, orgs, recovery
from kombify.accounts.users import by_email, credential, normal_email
from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PersonOnly, PrincipalDep, UserDep
from kombify.api.routes.activity import activity_public
from kombify.api.routes.auth import org_public, require_recent_reauth, user_public
from kombify.errors import ConflictError, ForbiddenError

router = APIRouter(prefix="/v1/me", tags=["accounts"])


@router.get("")
def whoami(principal: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    """The caller: user (none for the admin token), organisation, role, how they signed in."""
    user = principal.user
    memberships = (
        [{**org_public(o), "role": role} for o, role in orgs.memberships(db, user.id)]
        if user
        else [{**org_public(principal.organisation), "role": principal.role}]
    )
    return {
        "user": user_public(user, db) if user else None,
        "organisation": org_public(principal.organisation),
        "role": principal.role,
        "via": principal.via,
        "on_behalf_of": principal.on_behalf_of,
        "mfa_enrolment_required": principal.mfa_pending,
        "organisations": memberships,
    }


@router.get("/activity")
def my_activity(
    user: UserDep,
    db: SessionDep,
    before: datetime | None = Query(default=None, description="Entries older than this."),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    """What you did, in every organisation, newest first."""
    rows = activity.query(db, user_id=user.id, before=before, limit=limit)
    return {"data": [activity_public(r) for r in rows], "count": len(rows)}


class ProfileUpdate(BaseModel):
    """What you may change about yourself; a new email address needs a recent sign-in."""

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)


# Changing oneself is not a change in an organisation: any signed-in person may (viewers too),
# never an API key.
self_router = APIRouter(tags=["accounts"])


@self_router.patch("/v1/me", dependencies=[PersonOnly])
def update_me(
    body: ProfileUpdate,
    request: Request,
    principal: PrincipalDep,
    user: UserDep,
    db: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Change your name or email address. A new address is unverified until you confirm the
    token mailed to it (linking OIDC logins waits for that), and needs a recent sign-in."""
    if principal.via != "session":
        raise ForbiddenError("sign in to change your profile (not with a token)")
    if body.name is not None:
        user.name = body.name
    if body.email is not None:
        email = normal_email(body.email)
        if email != user.email:
            require_recent_reauth(db, principal, settings)
            if by_email(db, email) is not None:
                raise ConflictError("email: another account uses this address")
            user.email = email
            cred = credential(db, user.id)
            cred.email_verified = False
            db.add(cred)
    db.add(user)
    db.commit()
    db.refresh(user)
    if body.email is not None:
        recovery.send_verification(db, settings, user)  # retires tokens mailed to the old one
    record_event(
        db, request, action="profile-update", principal=principal,
        object_type="user", object_id=user.id,
    )  # fmt: skip
    return user_public(user, db)
