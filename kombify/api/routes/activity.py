"""The organisation's activity log: every change, who made it, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from kombify.accounts import activity
from kombify.api.deps import SessionDep
from kombify.api.principal import PrincipalDep
from kombify.db.account_tables import Activity
from kombify.names import OrgSlug

router = APIRouter(prefix="/v1/orgs/{org}/activity", tags=["accounts"])


def activity_public(row: Activity) -> dict[str, Any]:
    """An activity entry as the API shows it."""
    return {
        "id": row.id,
        "at": row.created_at.isoformat(),
        "actor": row.actor,
        "user_id": row.user_id,
        "via": row.via,
        "on_behalf_of": row.on_behalf_of,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "outcome": row.outcome,
        "address": row.address,
        "client": row.client,
        "organisation_id": row.organisation_id,
    }


@router.get("")
def org_activity(
    org: OrgSlug,
    principal: PrincipalDep,
    db: SessionDep,
    user: str | None = Query(default=None, max_length=64, description="Only this user's (id)."),
    before: datetime | None = Query(default=None, description="Entries older than this."),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    """Every change in the organisation, newest first (admins and owners)."""
    principal.require("admin", "the activity log")
    rows = activity.query(
        db, org_id=principal.organisation.id, user_id=user, before=before, limit=limit
    )
    return {"data": [activity_public(r) for r in rows], "count": len(rows)}
