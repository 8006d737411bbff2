"""The stand-in's in-memory Stripe account: objects, lists, events and what time does to them.

Every object starts as a deep copy of Stripe's published fixture for its resource
(templates.json); the stand-in then sets ids, times and the fields it manages, so the shapes
are Stripe's. Nothing here does I/O: webhook delivery is handed each event through ``on_event``.
"""

from __future__ import annotations

import calendar
import copy
import json
import secrets
import string
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.stripe_standin.errors import (
    StripeApiError,
    invalid,
    missing,
    missing_param,
)

_TEMPLATES: dict[str, Any] = json.loads((Path(__file__).with_name("templates.json")).read_text())[
    "resources"
]
_ALPHABET = string.ascii_letters + string.digits
# What the stand-in answers events with when a webhook endpoint asked for no version.
try:
    import stripe

    API_VERSION: str = stripe.api_version
except ImportError:  # pragma: no cover - the SDK is a dependency of kombify
    API_VERSION = "2026-10-28.endive"

Obj = dict[str, Any]


def template(resource: str) -> Obj:
    """A fresh deep copy of Stripe's fixture for ``resource``."""
    return copy.deepcopy(_TEMPLATES[resource])


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


def add_months(ts: int, months: int = 1) -> int:
    """``ts`` moved by calendar months, the day clamped to the month's last (Stripe's cycle)."""
    moment = datetime.fromtimestamp(ts, UTC)
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def period_end(start: int, price: Obj) -> int:
    recurring = price.get("recurring") or {"interval": "month", "interval_count": 1}
    count = int(recurring.get("interval_count") or 1)
    interval = recurring.get("interval", "month")
    if interval == "year":
        return add_months(start, 12 * count)
    if interval == "month":
        return add_months(start, count)
    seconds = {"week": 7 * 86400, "day": 86400}[interval]
    return start + count * seconds


def as_int(params: Obj, name: str, *, minimum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise invalid(name, f"Invalid integer: {raw}") from None
    if minimum is not None and value < minimum:
        raise invalid(name, f"Invalid {name}: must be at least {minimum}")
    return value


def as_bool(params: Obj, name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw in ("true", True):
        return True
    if raw in ("false", False):
        return False
    raise invalid(name, f"Invalid boolean: {raw}")


def metadata_update(current: Obj, given: Any, param: str = "metadata") -> Obj:
    """Stripe's metadata rules: ``metadata=`` clears, ``metadata[k]=`` removes ``k``."""
    if given is None:
        return current
    if given == "":
        return {}
    if not isinstance(given, dict):
        raise invalid(param, f"Invalid hash for {param}")
    merged = dict(current)
    for key, value in given.items():
        if not isinstance(value, str):
            raise invalid(f"{param}[{key}]", f"Invalid value for {param}[{key}]: a string")
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class Store:
    """One test-mode Stripe account, in memory.

    Args:
        public_url: Where the stand-in answers (hosted pages and invoice PDFs link there).
        on_event: Called with every new event (the webhook sender queues it).
    """

    def __init__(self, public_url: str, on_event: Callable[[Obj], None] | None = None) -> None:
        self.public_url = public_url.rstrip("/")
        self.on_event = on_event or (lambda _event: None)
        self.objects: dict[str, dict[str, Obj]] = {}
        self.index: dict[str, tuple[str, Obj]] = {}
        self.meter_events: list[Obj] = []
        self.meter_identifiers: dict[str, Obj] = {}
        self.webhook_secrets: dict[str, str] = {}

    # --- storage ----------------------------------------------------------------------------

    def put(self, kind: str, obj: Obj) -> Obj:
        self.objects.setdefault(kind, {})[obj["id"]] = obj
        self.index[obj["id"]] = (kind, obj)
        return obj

    def get(self, kind: str, object_id: str, *, noun: str, param: str = "id") -> Obj:
        found = self.objects.get(kind, {}).get(object_id)
        if found is None:
            raise missing(noun, object_id, param)
        return found

    def all(self, kind: str) -> list[Obj]:
        """Newest first, as Stripe lists."""
        return list(reversed(self.objects.get(kind, {}).values()))

    def page(self, items: list[Obj], params: Obj, url: str) -> Obj:
        """A list object over ``items`` with ``limit``, ``starting_after``, ``ending_before``."""
        limit = as_int(params, "limit", minimum=1) or 10
        if limit > 100:
            raise invalid("limit", "Invalid limit: must be between 1 and 100")
        after, before = params.get("starting_after"), params.get("ending_before")
        ids = [item["id"] for item in items]
        if after:
            if after not in ids:
                raise missing("object", str(after), "starting_after")
            items = items[ids.index(after) + 1 :]
            chosen = items[:limit]
            more = len(items) > limit
        elif before:
            if before not in ids:
                raise missing("object", str(before), "ending_before")
            items = items[: ids.index(before)]
            chosen = items[-limit:]
            more = len(items) > limit
        else:
            chosen = items[:limit]
            more = len(items) > limit
        return {"object": "list", "data": chosen, "has_more": more, "url": url}

    def expand(self, obj: Obj, paths: Iterable[str]) -> Obj:
        """``obj`` with the ids at ``paths`` (``subscription``, ``data.customer``) replaced."""
        out = copy.deepcopy(obj)
        for path in paths:
            self._expand_path(out, path.split("."))
        return out

    def _expand_path(self, node: Any, parts: list[str]) -> None:
        if isinstance(node, list):
            for item in node:
                self._expand_path(item, parts)
            return
        if not isinstance(node, dict) or parts[0] not in node:
            return
        head, rest = parts[0], parts[1:]
        value = node[head]
        if isinstance(value, str) and value in self.index:
            node[head] = value = copy.deepcopy(self.index[value][1])
        if rest:
            self._expand_path(value, rest)

    # --- events -----------------------------------------------------------------------------

    def emit(
        self,
        type_: str,
        obj: Obj,
        *,
        previous: Obj | None = None,
        request: tuple[str | None, str | None] = (None, None),
    ) -> Obj:
        """A new event about ``obj`` (its state now), stored and handed to ``on_event``."""
        event = template("event")
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = copy.deepcopy(previous)
        event.update(
            id=new_id("evt_"),
            object="event",
            type=type_,
            created=now(),
            data=data,
            api_version=API_VERSION,
            livemode=False,
            pending_webhooks=0,
            request={"id": request[0], "idempotency_key": request[1]},
        )
        self.put("event", event)
        self.on_event(event)
        return event

    def events(self, params: Obj) -> list[Obj]:
        items = self.all("event")
        wanted: list[str] = []
        if params.get("type"):
            wanted.append(str(params["type"]))
        types = params.get("types")
        if isinstance(types, list):
            wanted += [str(t) for t in types]
        if wanted:
            items = [e for e in items if any(_matches(p, e["type"]) for p in wanted)]
        return items

    # --- customers, products, prices -------------------------------------------------------

    def create_customer(self, params: Obj) -> Obj:
        customer = template("customer")
        customer.update(
            id=new_id("cus_", 14),
            created=now(),
            email=params.get("email") or None,
            name=params.get("name") or None,
            description=params.get("description") or None,
            phone=params.get("phone") or None,
            metadata=metadata_update({}, params.get("metadata")),
            discount=None,
            invoice_prefix="".join(secrets.choice(string.ascii_uppercase) for _ in range(8)),
            next_invoice_sequence=1,
            livemode=False,
        )
        return self.put("customer", customer)

    def update_customer(self, customer: Obj, params: Obj) -> Obj:
        previous: Obj = {}
        for name in ("email", "name", "description", "phone"):
            if name in params:
                previous[name] = customer[name]
                customer[name] = params[name] or None
        if "metadata" in params:
            previous["metadata"] = customer["metadata"]
            customer["metadata"] = metadata_update(customer["metadata"], params["metadata"])
        return previous

    def create_product(self, params: Obj) -> Obj:
        name = params.get("name")
        if not name:
            raise missing_param("name")
        product = template("product")
        product_id = params.get("id") or new_id("prod_", 14)
        if product_id in self.objects.get("product", {}):
            raise StripeApiError(
                400, "Product already exists.", code="resource_already_exists", param="id"
            )
        product.update(
            id=product_id,
            created=now(),
            updated=now(),
            name=name,
            description=params.get("description") or None,
            metadata=metadata_update({}, params.get("metadata")),
            default_price=None,
            package_dimensions=None,
            active=as_bool(params, "active") is not False,
            livemode=False,
            type="service",
        )
        return self.put("product", product)

    def create_price(self, params: Obj) -> tuple[Obj, Obj | None]:
        """The new price and, when ``product_data`` made one, the new product."""
        currency = params.get("currency")
        if not currency:
            raise missing_param("currency")
        made: Obj | None = None
        if params.get("product"):
            product = self.get("product", str(params["product"]), noun="product", param="product")
        elif isinstance(params.get("product_data"), dict):
            made = product = self.create_product(params["product_data"])
        else:
            raise missing_param("product")
        unit_amount = as_int(params, "unit_amount", minimum=0)
        if unit_amount is None:
            raise missing_param("unit_amount")
        price = template("price")
        recurring_in = params.get("recurring")
        recurring: Obj | None = None
        if isinstance(recurring_in, dict):
            interval = recurring_in.get("interval")
            if interval not in ("day", "week", "month", "year"):
                raise invalid(
                    "recurring[interval]",
                    "Invalid recurring[interval]: must be one of day, week, month, or year",
                )
            recurring = {
                "interval": interval,
                "interval_count": as_int(recurring_in, "interval_count", minimum=1) or 1,
                "meter": recurring_in.get("meter"),
                "usage_type": recurring_in.get("usage_type") or "licensed",
                "trial_period_days": None,
            }
        price.update(
            id=new_id("price_"),
            created=now(),
            currency=str(currency).lower(),
            unit_amount=unit_amount,
            unit_amount_decimal=str(unit_amount),
            product=product["id"],
            recurring=recurring,
            type="recurring" if recurring else "one_time",
            nickname=params.get("nickname") or None,
            lookup_key=params.get("lookup_key") or None,
            metadata=metadata_update({}, params.get("metadata")),
            transform_quantity=None,
            custom_unit_amount=None,
            active=True,
            livemode=False,
        )
        if product.get("default_price") is None:
            product["default_price"] = price["id"]
        return self.put("price", price), made

    # --- checkout and portal ---------------------------------------------------------------

    def create_checkout_session(self, params: Obj) -> Obj:
        mode = params.get("mode")
        if not mode:
            raise missing_param("mode")
        if mode not in ("payment", "setup", "subscription"):
            raise invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
        if not params.get("success_url") and params.get("ui_mode") != "embedded":
            raise missing_param("success_url")
        customer_id = params.get("customer") or None
        if customer_id:
            self.get("customer", str(customer_id), noun="customer", param="customer")
        line_items = params.get("line_items")
        if mode != "setup" and not line_items:
            raise missing_param("line_items")
        if not isinstance(line_items, list):
            line_items = []
        lines: list[Obj] = []
        for i, item in enumerate(line_items):
            if not isinstance(item, dict) or not item.get("price"):
                raise missing_param(f"line_items[{i}][price]")
            price = self.get(
                "price", str(item["price"]), noun="price", param=f"line_items[{i}][price]"
            )
            if mode == "subscription" and not price.get("recurring"):
                raise invalid(
                    f"line_items[{i}][price]",
                    "You must provide at least one recurring price in `subscription` mode "
                    "when using prices.",
                )
            quantity = as_int(item, "quantity", minimum=1) or 1
            lines.append({"price": price["id"], "quantity": quantity})
        sub_data = params.get("subscription_data") or {}
        if sub_data and mode != "subscription":
            raise invalid(
                "subscription_data",
                "You can not pass `subscription_data` in `payment` mode.",
            )
        trial_days = as_int(sub_data, "trial_period_days", minimum=1) if sub_data else None
        session = template("checkout.session")
        session_id = new_id("cs_test_", 58)
        amount = sum(
            self.objects["price"][line["price"]]["unit_amount"] * line["quantity"] for line in lines
        )
        currency = self.objects["price"][lines[0]["price"]]["currency"] if lines else None
        customer = self.objects.get("customer", {}).get(str(customer_id)) if customer_id else None
        session.update(
            id=session_id,
            created=now(),
            expires_at=now() + 24 * 3600,
            mode=mode,
            status="open",
            payment_status="unpaid",
            customer=customer_id,
            customer_email=params.get("customer_email") or None,
            customer_details=None,
            client_reference_id=params.get("client_reference_id") or None,
            metadata=metadata_update({}, params.get("metadata")),
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url") or None,
            url=f"{self.public_url}/checkout/{session_id}",
            amount_subtotal=amount,
            amount_total=amount,
            currency=currency,
            payment_intent=None,
            subscription=None,
            invoice=None,
            after_expiration=None,
            custom_text={
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },  # fmt: skip
            shipping_address_collection=None,
            shipping_cost=None,
            shipping_options=[],
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            collected_information=None,
            currency_conversion=None,
            payment_method_configuration_details=None,
            invoice_creation=None,
            livemode=False,
        )
        if customer is not None:
            session["customer_details"] = {
                "address": None, "email": customer["email"], "name": customer["name"],
                "phone": None, "tax_exempt": "none", "tax_ids": [],
                "business_name": None, "individual_name": None,
            }  # fmt: skip
        # What completing it needs (not part of Stripe's object; kept aside).
        self.objects.setdefault("_session_extra", {})[session_id] = {
            "id": session_id,
            "lines": lines,
            "subscription_metadata": metadata_update({}, sub_data.get("metadata")),
            "trial_period_days": trial_days,
        }
        return self.put("checkout.session", session)

    def create_portal_session(self, params: Obj) -> Obj:
        customer_id = params.get("customer")
        if not customer_id:
            raise missing_param("customer")
        self.get("customer", str(customer_id), noun="customer", param="customer")
        session = template("billing_portal.session")
        session_id = new_id("bps_")
        session.update(
            id=session_id,
            created=now(),
            customer=customer_id,
            return_url=params.get("return_url") or None,
            url=f"{self.public_url}/portal/{session_id}",
            flow=None,
            livemode=False,
            configuration=params.get("configuration") or "bpc_standin_default",
        )
        return self.put("billing_portal.session", session)

    # --- subscriptions and invoices --------------------------------------------------------

    def _subscription_item(
        self, subscription_id: str, price: Obj, quantity: int, start: int, end: int
    ) -> Obj:
        item = template("subscription_item")
        item.update(
            id=new_id("si_", 14),
            created=now(),
            price=copy.deepcopy(price),
            plan=_plan_of(price),
            quantity=quantity,
            subscription=subscription_id,
            metadata={},
            current_period_start=start,
            current_period_end=end,
            billing_thresholds=None,
        )
        return item

    def _set_period(self, sub: Obj, start: int, end: int) -> None:
        sub["current_period_start"] = start
        sub["current_period_end"] = end
        for item in sub["items"]["data"]:
            item["current_period_start"] = start
            item["current_period_end"] = end
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = end

    def create_subscription(
        self, *, customer_id: str, lines: list[Obj], metadata: Obj, trial_days: int | None
    ) -> Obj:
        sub = template("subscription")
        sub_id = new_id("sub_")
        start = now()
        first_price = self.objects["price"][lines[0]["price"]]
        trial_end = start + trial_days * 86400 if trial_days else None
        end = trial_end if trial_end else period_end(start, first_price)
        items = [
            self._subscription_item(
                sub_id, self.objects["price"][line["price"]], line["quantity"], start, end
            )
            for line in lines
        ]
        sub.update(
            id=sub_id,
            created=start,
            start_date=start,
            billing_cycle_anchor=end if trial_end else start,
            billing_cycle_anchor_config=None,
            customer=customer_id,
            currency=first_price["currency"],
            status="trialing" if trial_end else "active",
            trial_start=start if trial_end else None,
            trial_end=trial_end,
            cancel_at_period_end=False,
            cancel_at=None,
            canceled_at=None,
            ended_at=None,
            cancellation_details={"comment": None, "feedback": None, "reason": None},
            metadata=dict(metadata),
            latest_invoice=None,
            next_pending_invoice_item_invoice=None,
            pause_collection=None,
            pending_invoice_item_interval=None,
            pending_update=None,
            transfer_data=None,
            discounts=[],
            billing_schedules=[],
            livemode=False,
            items={
                "object": "list",
                "data": items,
                "has_more": False,
                "total_count": len(items),
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },  # fmt: skip
        )
        self._set_period(sub, start, end)
        return self.put("subscription", sub)

    def create_invoice(
        self,
        sub: Obj,
        *,
        paid: bool,
        billing_reason: str,
        amount: int | None = None,
        period: tuple[int, int] | None = None,
    ) -> Obj:
        customer = self.objects["customer"][sub["customer"]]
        invoice = template("invoice")
        invoice_id = new_id("in_")
        start, end = period or (sub["current_period_start"], sub["current_period_end"])
        if amount is None:
            amount = sum(
                int(item["price"]["unit_amount"] or 0) * int(item["quantity"])
                for item in sub["items"]["data"]
            )
        number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        created = now()
        lines = []
        for item in sub["items"]["data"]:
            line = template("line_item")
            line_amount = int(item["price"]["unit_amount"] or 0) * int(item["quantity"])
            if len(sub["items"]["data"]) == 1:
                line_amount = amount
            line.update(
                id=new_id("il_"),
                invoice=invoice_id,
                amount=line_amount,
                subtotal=line_amount,
                currency=sub["currency"],
                description=f"{item['quantity']} × {item['price']['id']}",
                period={"start": start, "end": end},
                quantity=item["quantity"],
                subscription=sub["id"],
                metadata=dict(sub["metadata"]),
                parent={
                    "type": "subscription_item_details",
                    "invoice_item_details": None,
                    "subscription_item_details": {
                        "invoice_item": None,
                        "proration": billing_reason == "subscription_update",
                        "proration_details": {"credited_items": None},
                        "subscription": sub["id"],
                        "subscription_item": item["id"],
                    },
                },  # fmt: skip
                pricing={
                    "type": "price_details",
                    "price_details": {
                        "price": item["price"]["id"],
                        "product": item["price"]["product"],
                    },
                    "unit_amount_decimal": str(item["price"]["unit_amount"]),
                },
                discount_amounts=[],
                discounts=[],
                livemode=False,
            )
            lines.append(line)
        invoice.update(
            id=invoice_id,
            created=created,
            effective_at=created,
            customer=customer["id"],
            customer_email=customer["email"],
            customer_name=customer["name"],
            number=number,
            currency=sub["currency"],
            amount_due=amount,
            amount_paid=0,
            amount_remaining=amount,
            amount_overpaid=0,
            subtotal=amount,
            subtotal_excluding_tax=amount,
            total=amount,
            total_excluding_tax=amount,
            billing_reason=billing_reason,
            period_start=start,
            period_end=end,
            subscription=sub["id"],
            parent={
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "subscription": sub["id"],
                    "metadata": dict(sub["metadata"]),
                },
            },  # fmt: skip
            lines={
                "object": "list",
                "data": lines,
                "has_more": False,
                "total_count": len(lines),
                "url": f"/v1/invoices/{invoice_id}/lines",
            },  # fmt: skip
            hosted_invoice_url=f"{self.public_url}/invoices/{invoice_id}",
            invoice_pdf=f"{self.public_url}/invoices/{invoice_id}/pdf",
            status="open",
            status_transitions={
                "finalized_at": created,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },  # fmt: skip
            attempted=False,
            attempt_count=0,
            auto_advance=True,
            due_date=None,
            next_payment_attempt=None,
            from_invoice=None,
            last_finalization_error=None,
            shipping_cost=None,
            shipping_details=None,
            webhooks_delivered_at=None,
            discounts=[],
            livemode=False,
        )
        self.put("invoice", invoice)
        sub["latest_invoice"] = invoice_id
        if paid:
            self.mark_paid(invoice)
        else:
            self.mark_failed(invoice)
        return invoice

    def mark_paid(self, invoice: Obj) -> None:
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            attempted=True,
            attempt_count=invoice["attempt_count"] + 1,
            next_payment_attempt=None,
        )
        invoice["status_transitions"]["paid_at"] = now()

    def mark_failed(self, invoice: Obj) -> None:
        invoice.update(
            status="open",
            attempted=True,
            attempt_count=invoice["attempt_count"] + 1,
            next_payment_attempt=now() + 3 * 86400,
        )

    def invoices(self, params: Obj) -> list[Obj]:
        items = self.all("invoice")
        for name in ("customer", "subscription", "status"):
            if params.get(name):
                items = [i for i in items if i.get(name) == params[name]]
        return items

    # --- meters ----------------------------------------------------------------------------

    def create_meter(self, params: Obj) -> Obj:
        for name in ("display_name", "event_name"):
            if not params.get(name):
                raise missing_param(name)
        aggregation = params.get("default_aggregation")
        if not isinstance(aggregation, dict) or not aggregation.get("formula"):
            raise missing_param("default_aggregation[formula]")
        if aggregation["formula"] not in ("sum", "count", "last"):
            raise invalid(
                "default_aggregation[formula]",
                "Invalid default_aggregation[formula]: must be one of sum, count, or last",
            )
        for meter in self.objects.get("billing.meter", {}).values():
            if meter["event_name"] == params["event_name"] and meter["status"] == "active":
                raise StripeApiError(
                    400,
                    f"An active meter with event_name `{params['event_name']}` already exists.",
                    code="resource_already_exists",
                    param="event_name",
                )
        meter = template("billing.meter")
        mapping = params.get("customer_mapping") or {}
        values = params.get("value_settings") or {}
        meter.update(
            id=new_id("mtr_test_", 32),
            created=now(),
            updated=now(),
            display_name=params["display_name"],
            event_name=params["event_name"],
            default_aggregation={"formula": aggregation["formula"]},
            customer_mapping={
                "event_payload_key": mapping.get("event_payload_key") or "stripe_customer_id",
                "type": "by_id",
            },
            value_settings={"event_payload_key": values.get("event_payload_key") or "value"},
            event_time_window=params.get("event_time_window") or None,
            status="active",
            livemode=False,
        )
        return self.put("billing.meter", meter)

    def meter_for(self, event_name: str) -> Obj | None:
        for meter in self.objects.get("billing.meter", {}).values():
            if meter["event_name"] == event_name and meter["status"] == "active":
                return meter
        return None

    def create_meter_event(self, params: Obj) -> Obj:
        event_name = params.get("event_name")
        if not event_name:
            raise missing_param("event_name")
        payload = params.get("payload")
        if not isinstance(payload, dict) or not payload:
            raise missing_param("payload")
        identifier = str(params.get("identifier") or new_id("ident_"))
        if len(identifier) > 100:
            raise invalid("identifier", "Invalid identifier: must be at most 100 characters")
        stamp = as_int(params, "timestamp")
        current = now()
        if stamp is None:
            stamp = current
        elif stamp < current - 35 * 86400 or stamp > current + 300:
            raise invalid(
                "timestamp",
                "Invalid timestamp: must be within the past 35 calendar days or up to 5 "
                "minutes in the future.",
            )
        if identifier in self.meter_identifiers:
            # Stripe enforces an identifier's uniqueness for at least 24 hours; the stand-in
            # for as long as it runs (docs/billing.md, "Stripe stand-in").
            raise StripeApiError(
                400,
                f"A meter event with identifier `{identifier}` already exists.",
                code="resource_already_exists",
                param="identifier",
            )
        event = template("billing.meter_event")
        event.update(
            created=current,
            event_name=event_name,
            identifier=identifier,
            payload={k: str(v) for k, v in payload.items()},
            timestamp=stamp,
            livemode=False,
        )
        # What Stripe checks later, asynchronously (reported in error reports, not here).
        meter = self.meter_for(str(event_name))
        problem = None
        if meter is None:
            problem = "no_meter"
        else:
            customer_key = meter["customer_mapping"]["event_payload_key"]
            value_key = meter["value_settings"]["event_payload_key"]
            if payload.get(customer_key) not in self.objects.get("customer", {}):
                problem = "meter_event_no_customer_defined"
            else:
                try:
                    float(str(payload.get(value_key)))
                except ValueError:
                    problem = "meter_event_invalid_value"
        self.meter_identifiers[identifier] = event
        self.meter_events.append(
            {
                "event": copy.deepcopy(event),
                "meter": meter["id"] if meter else None,
                "problem": problem,
            }
        )
        return event

    def meter_summary(self, meter: Obj, params: Obj) -> list[Obj]:
        customer = params.get("customer")
        if not customer:
            raise missing_param("customer")
        start = as_int(params, "start_time")
        end = as_int(params, "end_time")
        if start is None:
            raise missing_param("start_time")
        if end is None:
            raise missing_param("end_time")
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        values = [
            float(entry["event"]["payload"][value_key])
            for entry in self.meter_events
            if entry["meter"] == meter["id"]
            and entry["problem"] is None
            and entry["event"]["payload"].get(customer_key) == customer
            and start <= entry["event"]["timestamp"] < end
        ]
        formula = meter["default_aggregation"]["formula"]
        if formula == "sum":
            total: float = sum(values)
        elif formula == "count":
            total = float(len(values))
        else:
            total = values[-1] if values else 0.0
        summary = template("billing.meter_event_summary")
        summary.update(
            id=new_id("mtrusg_"),
            meter=meter["id"],
            start_time=start,
            end_time=end,
            aggregated_value=total,
            livemode=False,
        )
        return [summary]

    # --- webhook endpoints -----------------------------------------------------------------

    def create_webhook_endpoint(self, params: Obj, *, secret: str | None = None) -> Obj:
        url = params.get("url")
        if not url:
            raise missing_param("url")
        enabled = params.get("enabled_events")
        if not isinstance(enabled, list) or not enabled:
            raise missing_param("enabled_events")
        endpoint = template("webhook_endpoint")
        endpoint_id = new_id("we_")
        secret = secret or new_id("whsec_", 32)
        endpoint.update(
            id=endpoint_id,
            created=now(),
            url=url,
            enabled_events=[str(e) for e in enabled],
            description=params.get("description") or None,
            metadata=metadata_update({}, params.get("metadata")),
            api_version=params.get("api_version") or None,
            status="enabled",
            livemode=False,
        )
        self.webhook_secrets[endpoint_id] = secret
        self.put("webhook_endpoint", endpoint)
        return {**endpoint, "secret": secret}

    def endpoints_for(self, event_type: str) -> list[Obj]:
        return [
            e
            for e in self.objects.get("webhook_endpoint", {}).values()
            if e["status"] == "enabled"
            and any(_matches(p, event_type) for p in e["enabled_events"])
        ]


def _matches(pattern: str, event_type: str) -> bool:
    """Stripe's event filters: ``*``, an exact type, or ``customer.subscription.*``."""
    if pattern in ("*", event_type):
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


def _plan_of(price: Obj) -> Obj:
    """The legacy ``plan`` mirror Stripe still puts on subscription items."""
    plan = template("plan")
    recurring = price.get("recurring") or {}
    plan.update(
        id=price["id"],
        active=price["active"],
        amount=price["unit_amount"],
        amount_decimal=price["unit_amount_decimal"],
        billing_scheme="per_unit",
        created=price["created"],
        currency=price["currency"],
        interval=recurring.get("interval", "month"),
        interval_count=recurring.get("interval_count", 1),
        livemode=False,
        metadata=dict(price["metadata"]),
        meter=recurring.get("meter"),
        nickname=price["nickname"],
        product=price["product"],
        tiers_mode=None,
        transform_usage=None,
        trial_period_days=None,
        usage_type=recurring.get("usage_type", "licensed"),
    )
    return plan
