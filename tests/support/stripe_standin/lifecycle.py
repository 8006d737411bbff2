"""What a customer or time does to subscriptions at Stripe, and the API's own changes to them.

Each step changes the objects first and then emits its events in a fixed order, the order
docs/billing.md ("Stripe stand-in") lists.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.support.stripe_standin.errors import StripeApiError, invalid, missing
from tests.support.stripe_standin.store import (
    Obj,
    Store,
    _plan_of,
    as_bool,
    metadata_update,
    now,
    period_end,
)

Request = tuple[str | None, str | None]


def _conflict(message: str) -> StripeApiError:
    return StripeApiError(409, message, code="state_conflict")


def _changed(before: Obj, after: Obj) -> Obj:
    """Stripe's ``previous_attributes``: the old values of the top-level fields that changed."""
    return {k: v for k, v in before.items() if after.get(k) != v}


def complete_checkout(store: Store, session_id: str) -> dict[str, Any]:
    """The customer paid (or started a trial): subscription, first invoice, events."""
    session = store.get("checkout.session", session_id, noun="checkout session")
    if session["status"] != "open":
        raise _conflict(f"checkout session `{session_id}` is {session['status']}, not open")
    if session["mode"] != "subscription":
        raise _conflict(f"checkout session `{session_id}` is in {session['mode']} mode")
    extra = store.objects["_session_extra"][session_id]
    customer_id = session["customer"]
    if customer_id is None:
        customer_id = store.create_customer({"email": session["customer_email"]})["id"]
    sub = store.create_subscription(
        customer_id=customer_id,
        lines=extra["lines"],
        metadata=extra["subscription_metadata"],
        trial_days=extra["trial_period_days"],
    )
    invoice = None
    if sub["status"] != "trialing":
        invoice = store.create_invoice(sub, paid=True, billing_reason="subscription_create")
    customer = store.objects["customer"][customer_id]
    session.update(
        status="complete",
        payment_status="paid" if invoice else "no_payment_required",
        customer=customer_id,
        subscription=sub["id"],
        invoice=invoice["id"] if invoice else None,
        customer_details={
            "address": None,
            "email": customer["email"],
            "name": customer["name"],
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
            "business_name": None,
            "individual_name": None,
        },  # fmt: skip
    )
    events = [store.emit("customer.subscription.created", sub)]
    if invoice:
        events.append(store.emit("invoice.paid", invoice))
    events.append(store.emit("checkout.session.completed", session))
    return {
        "session": session,
        "subscription": sub,
        "invoice": invoice,
        "events": [e["id"] for e in events],
    }


def _live(store: Store, subscription_id: str) -> Obj:
    sub = store.get("subscription", subscription_id, noun="subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise _conflict(f"subscription `{subscription_id}` is {sub['status']}")
    return sub


def _bill(store: Store, sub: Obj, before: Obj, *, paid: bool, reason: str) -> dict[str, Any]:
    invoice = store.create_invoice(sub, paid=paid, billing_reason=reason)
    sub["status"] = "active" if paid else "past_due"
    first = store.emit("invoice.paid" if paid else "invoice.payment_failed", invoice)
    second = store.emit("customer.subscription.updated", sub, previous=_changed(before, sub))
    return {"subscription": sub, "invoice": invoice, "events": [first["id"], second["id"]]}


def end_period(store: Store, subscription_id: str, *, paid: bool = True) -> dict[str, Any]:
    """The current period ends: cancel when asked to at period end, else renew and bill."""
    sub = _live(store, subscription_id)
    before = copy.deepcopy(sub)
    if sub["cancel_at_period_end"]:
        ended = sub["current_period_end"]
        sub.update(status="canceled", ended_at=ended, cancel_at=ended)
        if sub["canceled_at"] is None:
            sub["canceled_at"] = ended
        event = store.emit("customer.subscription.deleted", sub)
        return {"subscription": sub, "invoice": None, "events": [event["id"]]}
    start = sub["current_period_end"]
    price = sub["items"]["data"][0]["price"]
    store._set_period(sub, start, period_end(start, price))
    return _bill(store, sub, before, paid=paid, reason="subscription_cycle")


def end_trial(store: Store, subscription_id: str, *, paid: bool = True) -> dict[str, Any]:
    """The trial ends now: a new period starts and is billed."""
    sub = _live(store, subscription_id)
    if sub["status"] != "trialing":
        raise _conflict(f"subscription `{subscription_id}` is {sub['status']}, not trialing")
    before = copy.deepcopy(sub)
    start = now()
    price = sub["items"]["data"][0]["price"]
    sub.update(trial_end=start, billing_cycle_anchor=start)
    store._set_period(sub, start, period_end(start, price))
    return _bill(store, sub, before, paid=paid, reason="subscription_cycle")


def pay_invoice(store: Store, invoice_id: str, *, paid: bool = True) -> dict[str, Any]:
    """A retried payment of an open invoice: paid (subscription active again) or failed again."""
    invoice = store.get("invoice", invoice_id, noun="invoice")
    if invoice["status"] != "open":
        raise _conflict(f"invoice `{invoice_id}` is {invoice['status']}, not open")
    events: list[Obj] = []
    sub = store.objects.get("subscription", {}).get(invoice["subscription"] or "")
    if not paid:
        store.mark_failed(invoice)
        events.append(store.emit("invoice.payment_failed", invoice))
        return {"invoice": invoice, "subscription": sub, "events": [e["id"] for e in events]}
    store.mark_paid(invoice)
    events.append(store.emit("invoice.paid", invoice))
    if sub is not None and sub["status"] in ("past_due", "unpaid", "incomplete"):
        before = copy.deepcopy(sub)
        sub["status"] = "active"
        events.append(
            store.emit("customer.subscription.updated", sub, previous=_changed(before, sub))
        )
    return {"invoice": invoice, "subscription": sub, "events": [e["id"] for e in events]}


def update_subscription(store: Store, sub: Obj, params: Obj, request: Request) -> Obj:
    """``POST /v1/subscriptions/{id}``: items (price, quantity), cancel at period end, metadata."""
    if sub["status"] == "canceled" and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise invalid(
            next(iter(sorted(set(params) - {"metadata", "cancellation_details", "expand"}))),
            "A canceled subscription can only update its cancellation_details and metadata.",
        )
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in ("create_prorations", "none", "always_invoice"):
        raise invalid(
            "proration_behavior",
            "Invalid proration_behavior: must be one of create_prorations, none, or always_invoice",
        )
    before = copy.deepcopy(sub)
    old_amount = _amount(sub)
    items = params.get("items")
    if items is not None:
        if not isinstance(items, list):
            raise invalid("items", "Invalid array for items")
        _update_items(store, sub, items)
    cancel = as_bool(params, "cancel_at_period_end")
    if cancel is not None:
        sub["cancel_at_period_end"] = cancel
        sub["cancel_at"] = sub["current_period_end"] if cancel else None
        sub["canceled_at"] = now() if cancel else None
        sub["cancellation_details"] = {
            "comment": None, "feedback": None,
            "reason": "cancellation_requested" if cancel else None,
        }  # fmt: skip
    if "metadata" in params:
        sub["metadata"] = metadata_update(sub["metadata"], params["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if params.get("trial_end") == "now" and sub["status"] == "trialing":
        start = now()
        sub.update(trial_end=start, billing_cycle_anchor=start, status="active")
        store._set_period(sub, start, period_end(start, sub["items"]["data"][0]["price"]))
    previous = _changed(before, sub)
    if previous:
        store.emit("customer.subscription.updated", sub, previous=previous, request=request)
    difference = _amount(sub) - old_amount
    if behavior == "always_invoice" and items is not None and difference > 0:
        span = max(1, sub["current_period_end"] - sub["current_period_start"])
        left = max(0, sub["current_period_end"] - now())
        invoice = store.create_invoice(
            sub,
            paid=True,
            billing_reason="subscription_update",
            amount=difference * left // span,
            period=(now(), sub["current_period_end"]),
        )
        store.emit("invoice.paid", invoice, request=request)
    return sub


def _amount(sub: Obj) -> int:
    return sum(
        int(item["price"]["unit_amount"] or 0) * int(item["quantity"])
        for item in sub["items"]["data"]
    )


def _update_items(store: Store, sub: Obj, items: list[Any]) -> None:
    start, end = sub["current_period_start"], sub["current_period_end"]
    for i, change in enumerate(items):
        if not isinstance(change, dict):
            raise invalid(f"items[{i}]", f"Invalid hash for items[{i}]")
        price = None
        if change.get("price"):
            price = store.get(
                "price", str(change["price"]), noun="price", param=f"items[{i}][price]"
            )
        quantity = change.get("quantity")
        if change.get("id"):
            found = [it for it in sub["items"]["data"] if it["id"] == change["id"]]
            if not found:
                raise missing("subscription_item", str(change["id"]), f"items[{i}][id]")
            item = found[0]
            if as_bool(change, "deleted"):
                sub["items"]["data"].remove(item)
                continue
            if price is not None:
                item["price"] = copy.deepcopy(price)
                item["plan"] = _plan_of(price)
            if quantity not in (None, ""):
                item["quantity"] = int(str(quantity))
        else:
            if price is None:
                raise invalid(f"items[{i}][price]", f"Missing required param: items[{i}][price].")
            qty = int(str(quantity)) if quantity not in (None, "") else 1
            sub["items"]["data"].append(store._subscription_item(sub["id"], price, qty, start, end))
    if not sub["items"]["data"]:
        raise invalid("items", "A subscription needs at least one item.")
    sub["items"]["total_count"] = len(sub["items"]["data"])


def cancel_subscription(store: Store, sub: Obj, request: Request) -> Obj:
    """``DELETE /v1/subscriptions/{id}``: canceled now."""
    if sub["status"] == "canceled":
        raise StripeApiError(
            400,
            f"A canceled subscription cannot be canceled again: {sub['id']}",
            param="subscription",
        )
    moment = now()
    sub.update(
        status="canceled",
        canceled_at=moment,
        ended_at=moment,
        cancel_at_period_end=False,
        cancellation_details={
            "comment": None, "feedback": None, "reason": "cancellation_requested",
        },
    )  # fmt: skip
    store.emit("customer.subscription.deleted", sub, request=request)
    return sub
