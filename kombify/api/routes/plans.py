"""The plans kombify sells (public) and an organisation's plan, limits and usage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PrincipalDep
from kombify.billing import entitlements
from kombify.billing.plans import PLANS
from kombify.names import OrgSlug

# Anyone may read the price list (the pricing page is public): no sign-in.
public_router = APIRouter(tags=["billing"])
router = APIRouter(prefix="/v1/orgs", tags=["billing"])


@public_router.get("/v1/plans")
def list_plans(settings: SettingsDep) -> dict[str, Any]:
    """Every plan with its price and entitlements; ``billing`` says whether this installation
    sells them (false: every organisation has every entitlement)."""
    data = [
        {
            "id": plan.id,
            "name": plan.name,
            "summary": plan.summary,
            "monthly_cents": plan.monthly_cents,
            "self_serve": plan.self_serve,
            "entitlements": entitlements.entitlements_public(plan.entitlements),
        }
        for plan in PLANS
    ]
    return {"billing": settings.billing_enabled, "currency": "usd", "data": data}


@router.get("/{org}/entitlements")
def get_entitlements(
    org: OrgSlug, principal: PrincipalDep, db: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """The organisation's plan, its limits, what it uses of them and its frozen stacks."""
    del org  # the principal dependency acts in the organisation the path names
    return entitlements.org_entitlements(db, principal.organisation, settings)
