"""The installation's first owner, made with the local admin token, which it then turns off."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from kombify.accounts import orgs, users
from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep
from kombify.api.principal import (
    ADMIN_TOKEN_RETIRED,
    PrincipalDep,
    first_owner_exists,
    installation_admin,
)
from kombify.api.routes.auth import org_public, user_public
from kombify.db.account_tables import InstallationFlag
from kombify.db.billing_tables import OrgBilling
from kombify.db.models import utcnow
from kombify.errors import ConflictError, ForbiddenError, NotFoundError
from kombify.names import OrgSlug

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


class EnterprisePrice(BaseModel):
    """The Stripe price an organisation's Enterprise checkout uses (null: none)."""

    enterprise_price_id: str | None = Field(
        max_length=255,
        pattern=r"^price_[A-Za-z0-9_]+$",
        description="A Stripe price id (`price_…`), or null to remove it.",
    )


@router.put(
    "/orgs/{slug}/billing",
    responses={
        403: {"description": "Only owners of the default organisation run the installation"},
        404: {"description": "No such organisation"},
    },
)
def set_enterprise_price(
    slug: OrgSlug,
    body: EnterprisePrice,
    request: Request,
    db: SessionDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Set the price of an organisation's Enterprise plan (installation owners).

    Its owners can then buy Enterprise through checkout at that price; the plan itself
    changes only when Stripe says the subscription is paid.
    """
    # Checked here, after the path was validated: a malformed slug is a 422 for anyone.
    installation_admin(principal)
    org = orgs.by_slug(db, slug)
    if org is None:
        raise NotFoundError(f"no organisation `{slug}`")
    row = db.get(OrgBilling, org.id) or OrgBilling(organisation_id=org.id)
    row.enterprise_price_id = body.enterprise_price_id
    row.updated_at = utcnow()
    db.add(row)
    db.commit()
    record_event(
        db, request, action="org-enterprise-price", principal=principal, org=org,
        object_type="organisation", object_id=org.slug,
    )  # fmt: skip
    return {"organisation": org.slug, "enterprise_price_id": row.enterprise_price_id}
