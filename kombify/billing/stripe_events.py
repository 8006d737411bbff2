"""What kombify reads of a verified Stripe event: the workflow's signal and the organisation.

Stripe's shapes (API 2025 and later): a subscription's period lives on its items, an
invoice's subscription under ``parent.subscription_details`` (older versions: on the object
itself and under ``subscription_details``); both are read.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, or_, select

from kombify.contracts.billing import BillingSignal
from kombify.db.billing_tables import OrgBilling
from kombify.db.models import Organisation

ORG_METADATA = "kombify_org"
PLAN_METADATA = "kombify_plan"


class EventShapeError(ValueError):
    """The event is not shaped as Stripe's; ``field`` names the part at fault."""

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(f"{field}: expected {expected}")
        self.field = field
        self.expected = expected


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id(value: Any) -> str:
    """An id, whether Stripe sent it as a string or as the expanded object."""
    if isinstance(value, str):
        return value[:255]
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])[:255]
    return ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def checked(event: Any) -> tuple[str, str, int, dict[str, Any]]:
    """The event's id, type, creation time and object; EventShapeError for anything else."""
    if not isinstance(event, dict):
        raise EventShapeError("(body)", "a JSON object (a Stripe event)")
    event_id, kind, created = event.get("id"), event.get("type"), event.get("created")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        raise EventShapeError("id", "a string of 1 to 255 characters")
    if not isinstance(kind, str) or not 0 < len(kind) <= 100:
        raise EventShapeError("type", "a string of 1 to 100 characters")
    if _int(created) is None:
        raise EventShapeError("created", "an integer (Unix seconds)")
    obj = _dict(event.get("data")).get("object")
    if not isinstance(obj, dict):
        raise EventShapeError("data.object", "an object")
    return event_id, kind, int(created), obj  # type: ignore[arg-type]


def _items(obj: dict[str, Any]) -> list[dict[str, Any]]:
    data = _dict(obj.get("items")).get("data")
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _price(obj: dict[str, Any]) -> str:
    for item in _items(obj):
        price = _id(item.get("price")) or _id(item.get("plan"))
        if price:
            return price
    return _id(obj.get("plan"))


def _period_end(obj: dict[str, Any]) -> int | None:
    own = _int(obj.get("current_period_end"))
    if own is not None:
        return own
    ends = [end for item in _items(obj) if (end := _int(item.get("current_period_end")))]
    return max(ends) if ends else None


def _invoice_subscription(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    details = _dict(_dict(obj.get("parent")).get("subscription_details")) or _dict(
        obj.get("subscription_details")
    )
    subscription = _id(obj.get("subscription")) or _id(details.get("subscription"))
    return subscription, _dict(details.get("metadata"))


def signal_of(
    event_id: str, kind: str, created: int, obj: dict[str, Any], *, grace_days: int
) -> BillingSignal:
    """The workflow's signal for a verified event: ids, status, price, times; nothing else."""
    object_kind = obj.get("object")
    subscription = ""
    price = plan = ""
    period_end = trial_end = None
    cancel: bool | None = None
    if object_kind == "subscription" or kind.startswith("customer.subscription."):
        subscription = _id(obj.get("id"))
        price = _price(obj)
        period_end = _period_end(obj)
        trial_end = _int(obj.get("trial_end"))
        flag = obj.get("cancel_at_period_end")
        cancel = flag if isinstance(flag, bool) else None
    elif object_kind == "invoice" or kind.startswith("invoice."):
        subscription, _ = _invoice_subscription(obj)
    else:  # a checkout session
        subscription = _id(obj.get("subscription"))
        named = _dict(obj.get("metadata")).get(PLAN_METADATA)
        plan = named[:32] if isinstance(named, str) else ""
    status = obj.get("status")
    return BillingSignal(
        event_id=event_id,
        type=kind,
        created=created,
        object_id=_id(obj.get("id")),
        status=status[:32] if isinstance(status, str) else "",
        price_id=price,
        plan=plan,
        current_period_end=period_end,
        trial_end=trial_end,
        cancel_at_period_end=cancel,
        customer=_id(obj.get("customer")),
        subscription=subscription,
        grace_days=grace_days,
    )


def organisation_of(db: Session, obj: dict[str, Any], signal: BillingSignal) -> str | None:
    """The id of the organisation the event is about; None when it is none kombify knows.

    ``metadata.kombify_org`` (the session's or the subscription's, or an invoice's
    subscription details) first, the session's ``client_reference_id`` next, else the
    organisation whose ``org_billing`` holds the event's customer or subscription id.
    """
    metadata = _dict(obj.get("metadata"))
    if obj.get("object") == "invoice" or signal.type.startswith("invoice."):
        metadata = _invoice_subscription(obj)[1] or metadata
    named = metadata.get(ORG_METADATA) or obj.get("client_reference_id")
    if isinstance(named, str) and named:
        return named if db.get(Organisation, named) is not None else None
    ids = [i for i in (signal.customer, signal.subscription) if i]
    if not ids:
        return None
    row = db.exec(
        select(OrgBilling).where(
            or_(
                OrgBilling.stripe_customer_id.in_(ids),  # type: ignore[union-attr]
                OrgBilling.stripe_subscription_id.in_(ids),  # type: ignore[union-attr]
            )
        )
    ).first()
    return row.organisation_id if row else None
