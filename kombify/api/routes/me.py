"""Who am I: the caller, the organisation the request acts in, and the user's activity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from kombify.accounts import activity, orgs
from kombify.api.deps import SessionDep
from kombify.api.principal import PrincipalDep, UserDep
from kombify.api.routes.activity import activity_public
from kombify.api.routes.auth import org_public, user_public

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
