"""What kombify reads of a Stripe event, for the API versions before and after 2025's moves
(period on the subscription's items; an invoice's subscription under ``parent``)."""

from __future__ import annotations

from typing import Any

import pytest

from kombify.billing.stripe_events import EventShapeError, checked, signal_of


def _event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_1", "type": kind, "created": 1_700_000_000, "data": {"object": obj}}


def _signal(kind: str, obj: dict[str, Any]) -> Any:
    return signal_of(*checked(_event(kind, obj)), grace_days=5)


def test_a_subscription_s_period_end_is_read_from_its_items_or_itself() -> None:
    items = {"data": [{"price": {"id": "price_a"}, "current_period_end": 1_700_100_000}]}
    new = _signal(
        "customer.subscription.updated",
        {"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "trialing",
         "items": items, "trial_end": 1_700_050_000, "cancel_at_period_end": True},
    )  # fmt: skip
    assert (new.subscription, new.price_id, new.current_period_end) == (
        "sub_1",
        "price_a",
        1_700_100_000,
    )
    assert (new.status, new.trial_end, new.cancel_at_period_end, new.grace_days) == (
        "trialing",
        1_700_050_000,
        True,
        5,
    )
    old = _signal(
        "customer.subscription.updated",
        {"id": "sub_1", "object": "subscription", "current_period_end": 1_700_200_000,
         "items": {"data": [{"plan": {"id": "price_b"}}]}, "customer": {"id": "cus_2"}},
    )  # fmt: skip
    assert (old.current_period_end, old.price_id, old.customer) == (
        1_700_200_000,
        "price_b",
        "cus_2",
    )
    assert old.cancel_at_period_end is None  # not said: not changed


def test_an_invoice_s_subscription_comes_from_parent_or_the_older_field() -> None:
    new = _signal(
        "invoice.payment_failed",
        {"id": "in_1", "object": "invoice", "customer": "cus_1",
         "parent": {"subscription_details": {"subscription": "sub_9", "metadata": {}}}},
    )  # fmt: skip
    old = _signal("invoice.paid", {"id": "in_2", "object": "invoice", "subscription": "sub_8"})
    assert (new.subscription, old.subscription) == ("sub_9", "sub_8")
    assert new.price_id == "" and new.current_period_end is None


def test_a_checkout_session_names_its_plan_and_subscription() -> None:
    signal = _signal(
        "checkout.session.completed",
        {"id": "cs_1", "object": "checkout.session", "subscription": "sub_1", "customer": "cus_1",
         "metadata": {"kombify_org": "o1", "kombify_plan": "team"}, "status": "complete"},
    )  # fmt: skip
    assert (signal.plan, signal.subscription, signal.object_id) == ("team", "sub_1", "cs_1")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ([], "(body)"),
        ({"type": "x", "created": 1, "data": {"object": {}}}, "id"),
        ({"id": "e", "created": 1, "data": {"object": {}}}, "type"),
        ({"id": "e", "type": "x", "created": True, "data": {"object": {}}}, "created"),
        ({"id": "e", "type": "x", "created": 1, "data": {}}, "data.object"),
    ],
)
def test_what_is_no_event_names_its_field(event: Any, field: str) -> None:
    with pytest.raises(EventShapeError) as refused:
        checked(event)
    assert refused.value.field == field
