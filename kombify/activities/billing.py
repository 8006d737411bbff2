"""The ProvisionSubscription workflow's activities: read and write ``org_billing``, tell the
owners when their organisation falls back to Free.

Each is idempotent: writing the same row twice leaves it as once, and a notice carries a
reference so a retried activity does not mail the owners twice. Ids and plan names only
cross the boundary; the notification URLs are read from the settings here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select
from temporalio import activity

from kombify.accounts import outbox
from kombify.billing.plans import is_plan_id, plan_by_id
from kombify.billing.prices import plan_for_price
from kombify.contracts.billing import BillingRecord, DowngradeNotice, NoticeResult, PlanQuery
from kombify.db.account_tables import Membership, OutboxMail
from kombify.db.billing_tables import OrgBilling
from kombify.db.engine import get_engine
from kombify.db.models import Organisation, User, utcnow
from kombify.notify import send
from kombify.settings import Settings

log = logging.getLogger(__name__)


def _when(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def _seconds(at: datetime | None) -> int | None:
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp())


class BillingActivities:
    """Billing records and notices, bound to kombify's database and settings.

    Args:
        settings: Where the database is, the plans' prices and the notification URLs.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._url = settings.resolved_database_url

    def _session(self) -> Session:
        return Session(get_engine(self._url))

    def all(self) -> list[Callable[..., Any]]:
        """Every billing activity, for the worker's registry."""
        return [self.load, self.plan_for_price, self.write, self.notify_downgrade]

    @activity.defn(name="LoadOrgBilling")
    def load(self, organisation_id: str) -> BillingRecord | None:
        """The organisation's ``org_billing`` row as it is stored; None when it has none."""
        with self._session() as db:
            row = db.get(OrgBilling, organisation_id)
            if row is None:
                return None
            return BillingRecord(
                organisation_id=organisation_id,
                plan=row.plan,
                status=row.status,
                customer=row.stripe_customer_id or "",
                subscription=row.stripe_subscription_id or "",
                current_period_end=_seconds(row.current_period_end),
                trial_end=_seconds(row.trial_end),
                cancel_at_period_end=row.cancel_at_period_end,
                pending_plan=row.pending_plan,
                grace_until=_seconds(row.grace_until),
            )

    @activity.defn(name="PlanForPrice")
    def plan_for_price(self, query: PlanQuery) -> str:
        """The plan a Stripe price id buys this organisation; "" when it is not kombify's."""
        with self._session() as db:
            return plan_for_price(
                db, self.settings, organisation_id=query.organisation_id, price_id=query.price_id
            )

    @activity.defn(name="WriteOrgBilling")
    def write(self, record: BillingRecord) -> None:
        """Store the organisation's plan, status, Stripe ids and timers as given.

        The admin's Enterprise price stays as it is. An organisation deleted meanwhile has
        nothing left to bill: nothing is written.
        """
        with self._session() as db:
            if db.get(Organisation, record.organisation_id) is None:
                log.warning("billing: organisation %s is gone; not written", record.organisation_id)
                return
            row = db.get(OrgBilling, record.organisation_id) or OrgBilling(
                organisation_id=record.organisation_id
            )
            row.plan = record.plan if is_plan_id(record.plan) else "free"
            row.status = record.status
            row.stripe_customer_id = record.customer or row.stripe_customer_id
            row.stripe_subscription_id = record.subscription or row.stripe_subscription_id
            row.current_period_end = _when(record.current_period_end)
            row.trial_end = _when(record.trial_end)
            row.cancel_at_period_end = record.cancel_at_period_end
            row.pending_plan = record.pending_plan
            row.grace_until = _when(record.grace_until)
            row.updated_at = utcnow()
            db.add(row)
            db.commit()

    @activity.defn(name="NotifyBillingDowngrade")
    def notify_downgrade(self, notice: DowngradeNotice) -> NoticeResult:
        """Mail every owner that the organisation is on Free now (once per ``reference``),
        and send the same words to the installation's notification URLs."""
        marker = f"reference: {notice.reference}"
        with self._session() as db:
            org = db.get(Organisation, notice.organisation_id)
            if org is None:
                return NoticeResult(mailed=0)
            owners = db.exec(
                select(User.email)
                .join(Membership, Membership.user_id == User.id)  # type: ignore[arg-type]
                .where(Membership.organisation_id == org.id, Membership.role == "owner")
            ).all()
            was = plan_by_id(notice.from_plan).name if is_plan_id(notice.from_plan) else "paid"
            subject = f"kombify: {org.name} is on the Free plan now"
            body = (
                f"The organisation `{org.slug}` moved from the {was} plan to Free: "
                f"{notice.reason}.\n\n"
                "Nothing was deleted. Stacks beyond the Free plan's limit are frozen: they keep "
                "running but take no new deploys until the organisation subscribes again "
                f"(`kombify plan`, or the dashboard's billing page).\n\n{marker}\n"
            )
            mailed = 0
            for email in sorted(set(owners)):
                sent = db.exec(
                    select(OutboxMail.id).where(
                        OutboxMail.to == email,
                        OutboxMail.body.contains(marker),  # type: ignore[attr-defined]
                    )
                ).first()
                if sent is not None:
                    continue  # a retry: this owner has the mail already
                outbox.send(db, self.settings, to=email, subject=subject, body=body)
                mailed += 1
        failures: list[str] = []
        if mailed and self.settings.notify_url_list:
            failures = send(self.settings.notify_url_list, subject, body, kind="warning")
        return NoticeResult(mailed=mailed, failures=failures)
