"""The installation's first owner, made with the local admin token, which it then turns off."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from kombify.accounts import users
from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep
from kombify.api.principal import ADMIN_TOKEN_RETIRED, PrincipalDep, first_owner_exists
from kombify.api.routes.auth import org_public, user_public
from kombify.db.account_tables import InstallationFlag
from kombify.errors import ConflictError, ForbiddenError

router = APIRouter(prefix="/v1/admin", tags=["accounts"])


class OwnerCreate(BaseModel):
    """The first owner's account."""

    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(default="", max_length=200)


@router.post("/owner", status_code=status.HTTP_201_CREATED)
def create_first_owner(
    body: OwnerCreate, request: Request, principal: PrincipalDep, db: SessionDep
) -> dict[str, Any]:
    """Make the first owner of the default organisation (where every existing stack is).

    Only the local admin token may, and only once: from then on the token is refused and
    people sign in (`kombify login`) or use API keys.
    """
    if principal.via != "admin-token":
        raise ForbiddenError("only the local admin token makes the first owner")
    if first_owner_exists(db):
        raise ConflictError("the first owner exists already: sign in and invite people")
    user = users.create(
        db,
        email=body.email,
        organisation=principal.organisation,
        role="owner",
        password=body.password,
        name=body.name,
        email_verified=True,  # vouched for by whoever holds the machine's admin token
    )
    db.add(InstallationFlag(name=ADMIN_TOKEN_RETIRED))
    db.commit()
    request.app.state.admin_token_retired = True
    record_event(
        db, request, action="first-owner", principal=principal, user=user,
        object_type="user", object_id=user.id,
    )  # fmt: skip
    return {
        "user": user_public(user, db),
        "organisation": org_public(principal.organisation),
        "admin_token": "retired",
    }
