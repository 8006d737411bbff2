"""An organisation's metered usage this month: deploy minutes and API calls (docs/billing.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PrincipalDep
from kombify.api.usage_meter import UsageFlusher
from kombify.billing.stripe_client import require_billing
from kombify.billing.usage import month_usage
from kombify.db.models import utcnow
from kombify.names import OrgSlug

router = APIRouter(prefix="/v1/orgs/{org}/billing", tags=["billing"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such organisation", **_PROBLEM},
    409: {"description": "Billing is not configured on this installation", **_PROBLEM},
}


class UsagePublic(BaseModel):
    """Metered usage since the first of this month (UTC)."""

    deploy_minutes: int = Field(
        description="Minutes of deploy and destroy runs, each hour's total rounded up."
    )
    api_calls: int = Field(description="Authenticated API requests.")
    reported_through: datetime | None = Field(
        description="End of the newest hour of usage reported to Stripe (null: none yet)."
    )


@router.get("/usage", responses=_ERRORS)
def billing_usage(
    org: OrgSlug, principal: PrincipalDep, db: SessionDep, settings: SettingsDep, request: Request
) -> UsagePublic:
    """This month's deploy minutes and API calls of the organisation, as Stripe is told them."""
    del org  # the principal acts in the organisation the path names
    require_billing(settings)
    flusher: UsageFlusher | None = getattr(request.app.state, "usage_flusher", None)
    organisation_id = principal.organisation.id
    usage = month_usage(
        db,
        organisation_id=organisation_id,
        now=utcnow(),
        unflushed_calls=flusher.counter.pending(organisation_id) if flusher else 0,
    )
    return UsagePublic(
        deploy_minutes=usage.deploy_minutes,
        api_calls=usage.api_calls,
        reported_through=usage.reported_through,
    )
