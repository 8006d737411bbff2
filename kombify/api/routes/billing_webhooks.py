"""``POST /v1/billing/webhooks``: Stripe's events, verified by signature (no sign-in).

The route answers fast and decides nothing itself: it verifies the ``Stripe-Signature``
header with the SDK's own check (and refuses a timestamp too far in the future, which the SDK
does not), records the event id in the ``billing_event`` ledger and, in the same transaction,
hands the event to the organisation's ``ProvisionSubscription`` workflow by signal-with-start.
A failed signal rolls the ledger row back, so Stripe's retry gets through; an id already in
the ledger is acknowledged and ignored. Every refusal is a 400 problem that changes nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio.to_thread
import stripe
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from temporalio.service import RPCError

from kombify.api.deps import SessionDep, get_temporal
from kombify.api.problems import problem
from kombify.billing.stripe_events import EventShapeError, checked, organisation_of, signal_of
from kombify.contracts.billing import (
    EVENT_SIGNAL,
    HANDLED_EVENTS,
    BillingSignal,
    SubscriptionInput,
    subscription_workflow_id,
)
from kombify.db.billing_tables import BillingEvent
from kombify.errors import ServiceUnavailableError
from kombify.settings import Settings
from kombify.workflows.subscription import ProvisionSubscription

PATH = "/v1/billing/webhooks"
SIGNATURE_HEADER = "Stripe-Signature"
log = logging.getLogger(__name__)
router = APIRouter(tags=["billing"])


def _refuse(detail: str, code: str = "bad-webhook") -> JSONResponse:
    return problem(400, "Webhook refused", detail, code=code, instance=PATH)


def _signed_at(header: str) -> int | None:
    """The header's ``t=`` (the SDK reads the first one too); None when there is none."""
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _verify(settings: Settings, payload: bytes, header: str) -> str | None:
    """Why the signature is refused, or None when it holds (never echoing the header)."""
    if not header:
        return f"{SIGNATURE_HEADER}: the header is missing"
    tolerance = settings.stripe_webhook_tolerance_seconds
    signed_at = _signed_at(header)
    if signed_at is None:
        return f"{SIGNATURE_HEADER}: expected t=TIMESTAMP,v1=SIGNATURE"
    if signed_at > time.time() + tolerance:
        return f"{SIGNATURE_HEADER}: the timestamp is more than {tolerance} s in the future"
    assert settings.stripe_webhook_secret is not None  # required with the key (settings)
    try:
        stripe.WebhookSignature.verify_header(
            payload, header, settings.stripe_webhook_secret.get_secret_value(), tolerance
        )
    except stripe.SignatureVerificationError as exc:
        if "tolerance" in str(exc):
            return f"{SIGNATURE_HEADER}: the timestamp is more than {tolerance} s old"
        return f"{SIGNATURE_HEADER}: no signature matches the payload with this endpoint's secret"
    except UnicodeDecodeError:
        return "(body): not UTF-8 text"
    return None


async def _signal(
    request: Request, settings: Settings, organisation_id: str, signal: BillingSignal
) -> None:
    client = await get_temporal(request)
    await client.start_workflow(
        ProvisionSubscription.run,
        SubscriptionInput(organisation_id=organisation_id),
        id=subscription_workflow_id(organisation_id),
        task_queue=settings.task_queue,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[signal],
    )


_RECEIVED = {"received": True}
_DUPLICATE = {"received": True, "duplicate": True}


def _take(
    db: Session, event_id: str, kind: str, obj: dict[str, Any], signal: BillingSignal
) -> str | None:
    """Write the event's ledger row (not committed); its organisation ("" for none), or None
    when the id is in the ledger already."""
    if db.get(BillingEvent, event_id) is not None:
        return None
    org = organisation_of(db, obj, signal)
    db.add(BillingEvent(event_id=event_id, type=kind, organisation_id=org))
    try:
        db.flush()
    except IntegrityError:  # the same event, delivered twice at once
        db.rollback()
        return None
    return org or ""


def _commit(db: Session) -> dict[str, bool] | None:
    """Commit the ledger row; the duplicate answer when another delivery got in first (the
    workflow drops the event's second signal too)."""
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        return _DUPLICATE
    return None


@router.post(
    PATH,
    responses={400: {"description": "Bad signature, stale or future timestamp, not an event"}},
)
async def stripe_webhook(request: Request, db: SessionDep) -> Any:
    """Take one Stripe event: verify it, record its id once, hand it to the workflow."""
    settings: Settings = request.app.state.settings
    if not settings.billing_enabled:
        return problem(
            404,
            "Billing is off",
            "billing is not configured on this installation: there is no webhook endpoint",
            code="billing-off",
            instance=PATH,
        )
    payload = await request.body()
    why = _verify(settings, payload, request.headers.get(SIGNATURE_HEADER, ""))
    if why is not None:
        log.warning("stripe webhook refused: %s", why)
        return _refuse(why, "bad-signature")
    try:
        event_id, kind, created, obj = checked(json.loads(payload))
    except ValueError as exc:  # not JSON, or not shaped as a Stripe event
        if isinstance(exc, EventShapeError):
            path, detail, expected = exc.field, str(exc), exc.expected
        else:
            path, detail, expected = "(body)", "(body): not JSON", "JSON"
        return problem(
            400,
            "Webhook refused",
            detail,
            code="bad-event",
            instance=PATH,
            errors=[{"path": path, "message": f"expected {expected}"}],
        )

    signal = signal_of(event_id, kind, created, obj, grace_days=settings.billing_grace_days)
    # The database work runs in a thread: the ledger's transaction stays open while the
    # signal is sent, and a second delivery of the same event waiting on it must not hold
    # up the event loop that sends the first one's signal.
    taken = await anyio.to_thread.run_sync(_take, db, event_id, kind, obj, signal)
    if taken is None:
        return _DUPLICATE
    org = taken
    if kind not in HANDLED_EVENTS or not org:
        if not org:
            log.warning("stripe event %s (%s) names no known organisation", event_id, kind)
        return await anyio.to_thread.run_sync(_commit, db) or _RECEIVED
    try:
        await _signal(request, settings, org, signal)
    except (RPCError, ServiceUnavailableError) as exc:
        await anyio.to_thread.run_sync(db.rollback)  # no ledger row: Stripe's retry gets in
        log.warning("stripe event %s not handed to the workflow: %s", event_id, exc)
        return problem(
            503,
            "Unavailable",
            "the event could not be handed to the subscription workflow; Stripe retries it",
            code="unavailable",
            instance=PATH,
        )
    answer = await anyio.to_thread.run_sync(_commit, db)
    log.info("stripe event %s (%s) handed to organisation %s", event_id, kind, org)
    return answer or _RECEIVED
