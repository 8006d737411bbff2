"""API keys for scripts: bound to the organisation the request acts in, scoped, shown once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from kombify.accounts import api_keys
from kombify.accounts.roles import SCOPE_CAP, at_least, check_scope
from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PrincipalDep, UserDep
from kombify.api.routes.auth import require_recent_reauth
from kombify.db.account_tables import ApiKey
from kombify.db.models import utcnow
from kombify.errors import ForbiddenError, NotFoundError
from kombify.names import RecordId

router = APIRouter(prefix="/v1/api-keys", tags=["accounts"])
_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Your role or session does not allow it", **_PROBLEM},
    404: {"description": "No such key", **_PROBLEM},
    422: {"description": "Invalid input, naming the field", **_PROBLEM},
}


class ApiKeyCreate(BaseModel):
    """A new key: what it is for, what it may do, how long it lives."""

    name: str = Field(max_length=100, description="What the key is for (shown in lists).")
    scope: str = Field(description="read (viewer), deploy (member) or admin.")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def key_public(row: ApiKey) -> dict[str, Any]:
    """A key as lists show it: never its secret."""
    return {
        "id": row.id,
        "name": row.name,
        "scope": row.scope,
        "prefix": row.prefix,
        "user_id": row.user_id,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked": row.revoked_at is not None,
    }


@router.get("", responses=_ERRORS)
def list_keys(principal: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    """The organisation's keys (admins) or your own in it (everyone else)."""
    mine = None if at_least(principal.role, "admin") else principal.user
    rows = api_keys.listed(db, org_id=principal.organisation.id, user_id=mine.id if mine else None)
    return {"data": [key_public(r) for r in rows], "count": len(rows)}


@router.post("", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
def create_key(
    body: ApiKeyCreate,
    request: Request,
    principal: PrincipalDep,
    user: UserDep,
    db: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Create a key; its full text is in this answer only (store it now)."""
    scope = check_scope(body.scope)
    if principal.via != "session":
        raise ForbiddenError("sign in to create API keys (a key cannot make keys)")
    principal.require(SCOPE_CAP[scope], f"a key with scope {scope}")
    if scope == "admin":
        require_recent_reauth(db, principal, settings)
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, text = api_keys.create(
        db,
        org_id=principal.organisation.id,
        user_id=user.id,
        name=body.name,
        scope=scope,
        expires_at=expires,
    )
    record_event(
        db, request, action="api-key-create", principal=principal,
        object_type="api-key", object_id=row.id,
    )  # fmt: skip
    return {**key_public(row), "key": text}


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
def revoke_key(key_id: RecordId, principal: PrincipalDep, db: SessionDep) -> Response:
    """Revoke a key (yours, or any of the organisation's for admins); refused from its next use."""
    row = db.get(ApiKey, key_id)
    if row is None or row.organisation_id != principal.organisation.id:
        raise NotFoundError(f"no API key `{key_id}`")
    if principal.user is None or row.user_id != principal.user.id:
        principal.require("admin", "revoking another member's key")
    api_keys.revoke(db, row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
