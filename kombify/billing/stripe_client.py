"""kombify's calls to Stripe: the organisation's customer, Checkout, the portal, invoices and
meter events (docs/billing.md, "Checkout, portal, invoices").

Built from the settings (``KOMBIFY_STRIPE_API_KEY``, ``KOMBIFY_STRIPE_API_BASE``); with billing
off every entry point refuses with a ``ConflictError`` (409). Every create call carries an
idempotency key derived from what it creates, so a retry (the SDK's own, or the caller's with
the same nonce) never makes a second object. Stripe's errors cross into kombify here, as
``BillingError`` (or ``ConflictError`` for a reused idempotency key), without secrets.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import stripe
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from kombify.billing.plans import is_plan_id, plan_by_id
from kombify.db.billing_tables import OrgBilling
from kombify.db.models import Organisation
from kombify.errors import BillingError, ConflictError, InvalidRequestError
from kombify.settings import Settings

BILLING_OFF = "billing is not configured on this installation"
# Subscription states in which a second Checkout would make a second subscription.
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
ORG_METADATA_KEY = "kombify_org"
_SECRET = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_\w+|\bwhsec_\w+")


def require_billing(settings: Settings) -> None:
    """Refuse (409) on an installation without billing."""
    if not settings.billing_enabled:
        raise ConflictError(BILLING_OFF)


def stripe_client(settings: Settings) -> stripe.StripeClient:
    """The SDK's client for the settings' key and API base (409 with billing off)."""
    require_billing(settings)
    assert settings.stripe_api_key is not None
    key = settings.stripe_api_key.get_secret_value()
    # The SDK's own retries reuse a call's idempotency key.
    if settings.stripe_api_base:
        api = settings.stripe_api_base.rstrip("/")
        return stripe.StripeClient(key, base_addresses={"api": api}, max_network_retries=2)
    return stripe.StripeClient(key, max_network_retries=2)


def request_nonce(client_key: str | None) -> str:
    """The nonce of one API request: from the client's ``Idempotency-Key`` header when it sent
    one (its retries then reach the same Stripe object), else fresh."""
    if client_key:
        return hashlib.sha256(client_key.encode()).hexdigest()[:32]
    return uuid.uuid4().hex


def _redacted(text: str) -> str:
    return _SECRET.sub("[redacted]", text)[:300]


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Stripe's errors while doing ``what`` as kombify errors (``raise … from``)."""
    try:
        yield
    except stripe.IdempotencyError as exc:
        raise ConflictError(
            f"{what}: this Idempotency-Key was used with other parameters; send a new one"
        ) from exc
    except stripe.AuthenticationError as exc:
        raise BillingError(f"{what}: Stripe refused the API key (KOMBIFY_STRIPE_API_KEY)") from exc
    except stripe.APIConnectionError as exc:
        raise BillingError(f"{what}: Stripe could not be reached") from exc
    except stripe.StripeError as exc:
        detail = _redacted(str(exc.user_message or "no message"))
        code = f" {exc.code}" if exc.code else ""
        raise BillingError(f"{what}: Stripe answered {exc.http_status}{code}: {detail}") from exc


@dataclass(frozen=True)
class CheckoutLink:
    """Where to send the owner to pay, and the Checkout Session's id."""

    url: str
    session_id: str


@dataclass(frozen=True)
class Invoice:
    """One invoice as the API shows it (amounts in cents)."""

    id: str
    number: str | None
    status: str | None
    amount_due: int
    amount_paid: int
    currency: str
    created: datetime
    period_start: datetime
    period_end: datetime
    pdf: str | None
    hosted_url: str | None


def _time(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class StripeBilling:
    """kombify's Stripe operations for organisations.

    Args:
        settings: The installation's settings (billing must be on).
        client: A ready SDK client (tests); default: :func:`stripe_client` of ``settings``.
    """

    def __init__(self, settings: Settings, *, client: stripe.StripeClient | None = None) -> None:
        require_billing(settings)
        self.settings = settings
        self.client = client or stripe_client(settings)

    # --- the organisation's customer -------------------------------------------------------

    def ensure_customer(self, db: Session, org: Organisation) -> str:
        """The organisation's Stripe customer id: made once, stored in ``org_billing``."""
        row = db.get(OrgBilling, org.id)
        if row is not None and row.stripe_customer_id:
            return row.stripe_customer_id
        with translated("creating the Stripe customer"):
            customer = self.client.v1.customers.create(
                params={
                    "name": org.name or org.slug,
                    "metadata": {ORG_METADATA_KEY: org.id, "kombify_org_slug": org.slug},
                },
                # One customer per organisation, whoever asks at the same moment.
                options={"idempotency_key": f"kombify-customer-{org.id}"},
            )
        self._store_customer(db, org.id, customer.id)
        return customer.id

    def _store_customer(self, db: Session, organisation_id: str, customer_id: str) -> None:
        row = db.get(OrgBilling, organisation_id)
        if row is None:
            db.add(OrgBilling(organisation_id=organisation_id, stripe_customer_id=customer_id))
            try:
                db.commit()
                return
            except IntegrityError:  # made by a concurrent request meanwhile
                db.rollback()
                row = db.get(OrgBilling, organisation_id)
                assert row is not None
        if not row.stripe_customer_id:
            row.stripe_customer_id = customer_id
            row.updated_at = datetime.now(UTC)
            db.add(row)
            db.commit()

    # --- Checkout and the portal -----------------------------------------------------------

    def price_for(self, db: Session, org: Organisation, plan: str) -> str:
        """The Stripe price a Checkout for ``plan`` sells to ``org``; refuses what has none."""
        choices = "pro, team or enterprise"
        if not is_plan_id(plan):
            raise InvalidRequestError(
                f"plan: expected {choices}, got `{plan[:40]}`",
                errors=[{"path": "plan", "message": f"expected {choices}"}],
            )
        if not plan_by_id(plan).self_serve and plan != "enterprise":
            raise InvalidRequestError(
                f"plan: `{plan}` needs no checkout; expected {choices}",
                errors=[{"path": "plan", "message": f"expected {choices}"}],
            )
        if plan == "enterprise":
            row = db.get(OrgBilling, org.id)
            if row is None or not row.enterprise_price_id:
                raise ConflictError(
                    f"the Enterprise price of `{org.slug}` is not set: an administrator of this "
                    "installation sets it first"
                )
            return row.enterprise_price_id
        price = self.settings.stripe_price_pro if plan == "pro" else self.settings.stripe_price_team
        if not price:
            variable = f"KOMBIFY_STRIPE_PRICE_{plan.upper()}"
            raise ConflictError(
                f"the {plan_by_id(plan).name} plan has no price here: {variable} is unset"
            )
        return price

    def checkout(
        self,
        db: Session,
        org: Organisation,
        plan: str,
        *,
        success_url: str | None = None,
        cancel_url: str | None = None,
        nonce: str,
    ) -> CheckoutLink:
        """A Checkout Session in subscription mode for ``plan``, for the org's customer."""
        price = self.price_for(db, org, plan)
        row = db.get(OrgBilling, org.id)
        if row is not None and row.status in LIVE_STATUSES and row.stripe_subscription_id:
            raise ConflictError(
                f"`{org.slug}` already has a subscription ({row.plan}, {row.status}): change or "
                "cancel it in the billing portal"
            )
        customer = self.ensure_customer(db, org)
        public = self.settings.resolved_public_url
        metadata = {ORG_METADATA_KEY: org.id, "kombify_plan": plan}
        with translated("creating the Checkout Session"):
            session = self.client.v1.checkout.sessions.create(
                params={
                    "mode": "subscription",
                    "customer": customer,
                    "line_items": [{"price": price, "quantity": 1}],
                    "success_url": success_url or f"{public}/billing?checkout=done",
                    "cancel_url": cancel_url or f"{public}/billing?checkout=cancelled",
                    "client_reference_id": org.id,
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                },
                options={"idempotency_key": f"kombify-checkout-{org.id}-{plan}-{nonce}"},
            )
        if not session.url:
            raise BillingError("creating the Checkout Session: Stripe answered without a URL")
        return CheckoutLink(url=session.url, session_id=session.id)

    def portal(
        self, db: Session, org: Organisation, *, return_url: str | None = None, nonce: str
    ) -> str:
        """The URL of a billing portal session for the organisation's customer."""
        customer = self.ensure_customer(db, org)
        back = return_url or f"{self.settings.resolved_public_url}/billing"
        with translated("creating the billing portal session"):
            session = self.client.v1.billing_portal.sessions.create(
                params={"customer": customer, "return_url": back},
                options={"idempotency_key": f"kombify-portal-{org.id}-{nonce}"},
            )
        return session.url

    # --- invoices and meter events ---------------------------------------------------------

    def invoices(self, db: Session, org: Organisation, *, limit: int = 24) -> list[Invoice]:
        """The organisation's invoices, newest first (drafts left out); none without a customer."""
        row = db.get(OrgBilling, org.id)
        if row is None or not row.stripe_customer_id:
            return []
        with translated("listing invoices"):
            found = self.client.v1.invoices.list(
                params={"customer": row.stripe_customer_id, "limit": limit}
            )
        return [_invoice(item) for item in found.data if item.status != "draft"]

    def report_meter_event(
        self,
        *,
        event_name: str,
        customer_id: str,
        value: int | float,
        identifier: str,
        timestamp: int | datetime,
    ) -> bool:
        """Report usage once: ``True`` when Stripe recorded it now, ``False`` when Stripe
        already has an event with ``identifier`` (reported before)."""
        stamp = int(timestamp.timestamp()) if isinstance(timestamp, datetime) else int(timestamp)
        with translated(f"reporting meter event `{identifier}`"):
            try:
                self.client.v1.billing.meter_events.create(
                    params={
                        "event_name": event_name,
                        "identifier": identifier,
                        "timestamp": stamp,
                        "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                    },
                    options={"idempotency_key": f"kombify-meter-{identifier}-{value}"},
                )
            except stripe.InvalidRequestError as exc:
                # Stripe keeps identifiers (24 hours at least) and refuses one seen before.
                if exc.code == "resource_already_exists" and exc.param == "identifier":
                    return False
                raise
        return True


def _invoice(item: stripe.Invoice) -> Invoice:
    """Stripe's invoice as kombify shows it; the period is the one its lines bill."""
    lines = [line.period for line in (item.lines.data if item.lines else [])]
    start = min((p.start for p in lines), default=item.period_start)
    end = max((p.end for p in lines), default=item.period_end)
    return Invoice(
        id=item.id,
        number=item.number,
        status=item.status,
        amount_due=item.amount_due,
        amount_paid=item.amount_paid,
        currency=item.currency,
        created=_time(item.created),
        period_start=_time(start),
        period_end=_time(end),
        pdf=item.invoice_pdf,
        hosted_url=item.hosted_invoice_url,
    )
