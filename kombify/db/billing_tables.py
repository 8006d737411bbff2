"""Billing state: each organisation's plan as Stripe last told it, the webhook ledger, usage.

``OrgBilling`` is written only by the ``ProvisionSubscription`` workflow's activities (and an
admin's Enterprise price); every entitlement check reads it. No row: the Free plan.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from kombify.db.models import UtcDateTime, _ts, new_id


def _optional_ts() -> datetime | None:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))  # type: ignore[no-any-return]


class OrgBilling(SQLModel, table=True):
    """One organisation's subscription: plan, Stripe ids, period and grace timers."""

    __tablename__ = "org_billing"

    organisation_id: str = Field(
        foreign_key="organisation.id", primary_key=True, ondelete="CASCADE"
    )
    plan: str = Field(default="free", max_length=32)
    # none | checkout | trialing | active | past_due | unpaid (grace ran out: Free) | canceled
    status: str = Field(default="none", max_length=32)
    stripe_customer_id: str | None = Field(default=None, max_length=255, index=True)
    stripe_subscription_id: str | None = Field(default=None, max_length=255, index=True)
    current_period_end: datetime | None = _optional_ts()
    trial_end: datetime | None = _optional_ts()
    cancel_at_period_end: bool = False
    # A downgrade chosen by the owner, applied when the period ends.
    pending_plan: str | None = Field(default=None, max_length=32)
    # Set while a payment failed: the plan is kept until then, then the organisation is Free.
    grace_until: datetime | None = _optional_ts()
    # The Stripe price of this organisation's Enterprise plan, set by an admin.
    enterprise_price_id: str | None = Field(default=None, max_length=255)
    updated_at: datetime = _ts(nullable=False)


class BillingEvent(SQLModel, table=True):
    """The webhook ledger: every Stripe event id once, so a redelivery is not processed again."""

    __tablename__ = "billing_event"

    event_id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    organisation_id: str | None = Field(default=None, max_length=64, index=True)
    received_at: datetime = _ts(nullable=False)


class UsageRecord(SQLModel, table=True):
    """Metered usage of one organisation in one hour; reported to Stripe once it is closed."""

    __tablename__ = "usage_record"
    __table_args__ = (UniqueConstraint("organisation_id", "meter", "hour"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    organisation_id: str = Field(foreign_key="organisation.id", index=True, ondelete="CASCADE")
    # deploy_minutes | api_calls
    meter: str = Field(max_length=32)
    hour: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    quantity: int = 0
    reported_at: datetime | None = _optional_ts()
