"""Billing tests: an organisation with owners and stacks, Stripe-shaped events, signatures.

Events follow the shapes of Stripe's published fixtures (../shared/stripe/fixtures3.json):
``event`` wrapping a ``checkout.session``, a ``subscription`` (period on its items) or an
``invoice`` (subscription under ``parent.subscription_details``).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import stripe
from sqlmodel import Session, select

from kombify.db.account_tables import Membership, OutboxMail
from kombify.db.billing_tables import BillingEvent, OrgBilling
from kombify.db.engine import get_engine
from kombify.db.models import Organisation, Stack, User

PRICE_PRO = "price_test_pro"
PRICE_TEAM = "price_test_team"
WEBHOOK_SECRET = "whsec_test_" + "s3cr3t" * 4
BILLING_SETTINGS: dict[str, Any] = {
    "stripe_api_key": "sk_test_kombify",
    "stripe_webhook_secret": WEBHOOK_SECRET,
    "stripe_price_pro": PRICE_PRO,
    "stripe_price_team": PRICE_TEAM,
}


@dataclass(frozen=True)
class Org:
    """A seeded organisation: its id, its owners' and its admin's addresses."""

    id: str
    slug: str
    owners: tuple[str, ...]
    admin: str
    customer: str
    subscription: str


def seed_org(database_url: str, *, stacks: int = 0) -> Org:
    """An organisation with two owners, one admin and ``stacks`` stacks."""
    tag = secrets.token_hex(4)
    with Session(get_engine(database_url)) as db:
        org = Organisation(slug=f"bill-{tag}", name=f"Billing {tag}")
        db.add(org)
        db.flush()
        owners = (f"owner1-{tag}@example.org", f"owner2-{tag}@example.org")
        admin = f"admin-{tag}@example.org"
        for email, role in [*((o, "owner") for o in owners), (admin, "admin")]:
            user = User(organisation_id=org.id, email=email)
            db.add(user)
            db.flush()
            db.add(Membership(organisation_id=org.id, user_id=user.id, role=role))
        for n in range(stacks):
            db.add(Stack(organisation_id=org.id, name=f"lab{n}", stackkit="base-homelab"))
        db.commit()
        return Org(org.id, org.slug, owners, admin, f"cus_{tag}", f"sub_{tag}")


def billing_row(database_url: str, org_id: str) -> OrgBilling | None:
    with Session(get_engine(database_url)) as db:
        return db.get(OrgBilling, org_id)


def outbox_to(database_url: str, emails: tuple[str, ...] | list[str]) -> list[OutboxMail]:
    with Session(get_engine(database_url)) as db:
        return list(db.exec(select(OutboxMail).where(OutboxMail.to.in_(emails))).all())  # type: ignore[attr-defined]


def stack_names(database_url: str, org_id: str) -> list[str]:
    with Session(get_engine(database_url)) as db:
        return sorted(db.exec(select(Stack.name).where(Stack.organisation_id == org_id)).all())


def ledger(database_url: str, event_id: str) -> list[BillingEvent]:
    with Session(get_engine(database_url)) as db:
        return list(db.exec(select(BillingEvent).where(BillingEvent.event_id == event_id)).all())


def event(
    kind: str, obj: dict[str, Any], *, created: int, event_id: str | None = None
) -> dict[str, Any]:
    """A Stripe event wrapping ``obj``."""
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
    }


def checkout_completed(
    org: Org, *, created: int, plan: str = "pro", **extra: Any
) -> dict[str, Any]:
    session = {
        "id": f"cs_test_{secrets.token_hex(8)}",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid",
        "client_reference_id": org.id,
        "customer": org.customer,
        "subscription": org.subscription,
        "metadata": {"kombify_org": org.id, "kombify_plan": plan},
    }
    return event("checkout.session.completed", session, created=created, **extra)


def subscription_event(
    org: Org,
    kind: str,
    *,
    created: int,
    price: str = PRICE_PRO,
    status: str = "active",
    period_end: int,
    trial_end: int | None = None,
    cancel_at_period_end: bool = False,
    metadata: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    subscription = {
        "id": org.subscription,
        "object": "subscription",
        "customer": org.customer,
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "trial_end": trial_end,
        "metadata": {"kombify_org": org.id} if metadata else {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{secrets.token_hex(6)}",
                    "object": "subscription_item",
                    "price": {"id": price, "object": "price", "unit_amount": 2900},
                    "quantity": 1,
                    "current_period_start": period_end - 30 * 86400,
                    "current_period_end": period_end,
                }
            ],
        },
    }
    return event(kind, subscription, created=created, **extra)


def invoice_event(
    org: Org, kind: str, *, created: int, metadata: bool = True, **extra: Any
) -> dict[str, Any]:
    invoice = {
        "id": f"in_{secrets.token_hex(8)}",
        "object": "invoice",
        "customer": org.customer,
        "status": "paid" if kind == "invoice.paid" else "open",
        "amount_due": 2900,
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": {"kombify_org": org.id} if metadata else {},
                "subscription": org.subscription,
            },
        },
    }
    return event(kind, invoice, created=created, **extra)


def signed(
    body: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body as Stripe sends it and its ``Stripe-Signature`` header (Stripe's scheme)."""
    payload = json.dumps(body, separators=(",", ":"))
    header = stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=int(time.time()) if at is None else at
    )
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}
