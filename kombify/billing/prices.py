"""Which plan a Stripe price id stands for: the settings' Pro and Team prices, and each
organisation's own Enterprise price (set by an admin on its ``org_billing`` row)."""

from __future__ import annotations

from sqlmodel import Session

from kombify.db.billing_tables import OrgBilling
from kombify.settings import Settings


def price_plans(settings: Settings, *, enterprise_price_id: str | None = None) -> dict[str, str]:
    """Price id → plan id, for one organisation."""
    plans: dict[str, str] = {}
    if settings.stripe_price_pro:
        plans[settings.stripe_price_pro] = "pro"
    if settings.stripe_price_team:
        plans[settings.stripe_price_team] = "team"
    if enterprise_price_id:
        plans[enterprise_price_id] = "enterprise"
    return plans


def plan_for_price(db: Session, settings: Settings, *, organisation_id: str, price_id: str) -> str:
    """The plan ``price_id`` buys for that organisation; "" when it is none of kombify's."""
    row = db.get(OrgBilling, organisation_id)
    table = price_plans(settings, enterprise_price_id=row.enterprise_price_id if row else None)
    return table.get(price_id, "")
