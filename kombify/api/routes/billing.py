"""Buying a plan through Stripe: Checkout, the billing portal and the invoices (docs/billing.md).

Owners open Checkout and the portal; members (not viewers) read the invoices. With billing off
every route answers 409. A client may send ``Idempotency-Key``: a retry with the same key
reaches the same Stripe Checkout or portal session instead of making another.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import stripe
from fastapi import APIRouter, Header, Query, Request, status
from pydantic import AfterValidator, BaseModel, Field

from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import PrincipalDep
from kombify.billing.stripe_client import (
    StripeBilling,
    request_nonce,
    require_billing,
    stripe_client,
)
from kombify.names import OrgSlug
from kombify.settings import Settings

router = APIRouter(prefix="/v1/orgs/{org}/billing", tags=["billing"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Your role does not allow it", **_PROBLEM},
    404: {"description": "No such organisation", **_PROBLEM},
    409: {
        "description": "Billing is not configured, the plan has no price here, or the "
        "organisation already has a subscription",
        **_PROBLEM,
    },
    422: {"description": "Invalid input, naming the field", **_PROBLEM},
    502: {"description": "Stripe refused or could not be reached", **_PROBLEM},
}
IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Optional: a retry with the same key reaches the same Stripe session.",
    ),
]


def _billing(request: Request, settings: Settings) -> StripeBilling:
    """kombify's Stripe operations, over one SDK client per app (it keeps its connections)."""
    client: stripe.StripeClient | None = getattr(request.app.state, "stripe_client", None)
    if client is None:
        client = request.app.state.stripe_client = stripe_client(settings)
    return StripeBilling(settings, client=client)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        # The problem's `path` names the field; the message says what it expected.
        raise ValueError("expected an http(s) URL")
    return value


# Where Stripe sends the owner back: an http(s) URL (a query such as ?checkout=done is fine).
ReturnUrl = Annotated[str, Field(max_length=2000), AfterValidator(_http_url)]


class CheckoutCreate(BaseModel):
    """The plan to buy and where Stripe sends the owner back."""

    plan: str = Field(max_length=32, description="pro, team or enterprise.")
    success_url: ReturnUrl | None = Field(
        default=None,
        description="After paying; default: the dashboard's billing page (?checkout=done).",
    )
    cancel_url: ReturnUrl | None = Field(
        default=None,
        description="After leaving Checkout; default: the billing page (?checkout=cancelled).",
    )


class CheckoutPublic(BaseModel):
    """The Stripe Checkout page to send the owner to."""

    url: str
    session_id: str


class PortalCreate(BaseModel):
    """Where the portal's "return" link leads."""

    return_url: ReturnUrl | None = Field(
        default=None, description="Default: the dashboard's billing page."
    )


class PortalPublic(BaseModel):
    """The Stripe billing portal session to send the owner to."""

    url: str


class InvoicePublic(BaseModel):
    """One invoice; amounts in the currency's smallest unit (cents)."""

    id: str
    number: str | None
    status: str | None = Field(description="open, paid, void or uncollectible.")
    amount_due: int
    amount_paid: int
    currency: str
    created: datetime
    period_start: datetime
    period_end: datetime
    pdf: str | None = Field(description="The invoice as a PDF (Stripe's link).")
    hosted_url: str | None = Field(description="Stripe's page of the invoice.")


class InvoicesPublic(BaseModel):
    """The organisation's invoices, newest first."""

    data: list[InvoicePublic]


@router.post(
    "/checkout",
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    response_model=CheckoutPublic,
)
def create_checkout(
    org: OrgSlug,
    body: CheckoutCreate,
    principal: PrincipalDep,
    db: SessionDep,
    settings: SettingsDep,
    request: Request,
    idempotency_key: IdempotencyHeader = None,
) -> CheckoutPublic:
    """Open a Stripe Checkout for a plan (owners); the plan changes once Stripe confirms."""
    del org  # the principal acts in the organisation the path names
    principal.require("owner", "buying a plan")
    require_billing(settings)
    link = _billing(request, settings).checkout(
        db,
        principal.organisation,
        body.plan,
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        nonce=request_nonce(idempotency_key),
    )
    return CheckoutPublic(url=link.url, session_id=link.session_id)


@router.post(
    "/portal",
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    response_model=PortalPublic,
)
def create_portal(
    org: OrgSlug,
    principal: PrincipalDep,
    db: SessionDep,
    settings: SettingsDep,
    request: Request,
    body: PortalCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> PortalPublic:
    """Open Stripe's billing portal: payment method, plan, cancellation, invoices (owners)."""
    del org
    principal.require("owner", "managing billing")
    require_billing(settings)
    url = _billing(request, settings).portal(
        db,
        principal.organisation,
        return_url=body.return_url if body else None,
        nonce=request_nonce(idempotency_key),
    )
    return PortalPublic(url=url)


@router.get("/invoices", responses=_ERRORS, response_model=InvoicesPublic)
def list_invoices(
    org: OrgSlug,
    principal: PrincipalDep,
    db: SessionDep,
    settings: SettingsDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many.")] = 24,
) -> InvoicesPublic:
    """The organisation's invoices, newest first (members)."""
    del org
    principal.require("member", "reading invoices")
    require_billing(settings)
    found = _billing(request, settings).invoices(db, principal.organisation, limit=limit)
    return InvoicesPublic(data=[InvoicePublic(**vars(item)) for item in found])
