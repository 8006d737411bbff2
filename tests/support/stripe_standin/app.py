"""The stand-in's HTTP side: Stripe's ``/v1`` API, the ``/_standin`` control API, hosted pages.

``/v1``: ``Authorization: Bearer <the stand-in's secret key>`` (else Stripe's 401), form
parameters in the body or query string, Stripe's error JSON, ``Idempotency-Key`` on POST kept
per key (same endpoint and parameters: the first answer replayed with
``Idempotent-Replayed: true``; anything else: 400 ``idempotency_error``).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.stripe_standin import lifecycle
from tests.support.stripe_standin.errors import StripeApiError, missing, unknown_param
from tests.support.stripe_standin.forms import FormError, canonical, parse_form
from tests.support.stripe_standin.store import Obj, Store, new_id
from tests.support.stripe_standin.webhooks import DEFAULT_RETRY_DELAYS, Sender

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


@dataclass
class Ctx:
    """One API request as a handler sees it."""

    store: Store
    params: Obj
    path: dict[str, str]
    request_id: str
    idempotency_key: str | None

    @property
    def origin(self) -> tuple[str | None, str | None]:
        return (self.request_id, self.idempotency_key)

    def allow(self, *names: str) -> None:
        """Stripe refuses parameters an endpoint does not know."""
        for name in self.params:
            if name not in names and name != "expand":
                raise unknown_param(name)

    def out(self, obj: Obj) -> Obj:
        expand = self.params.get("expand")
        if isinstance(expand, list) and expand:
            return self.store.expand(obj, [str(p) for p in expand])
        return obj


Handler = Callable[[Ctx], Obj | tuple[int, Obj]]


@dataclass
class Saved:
    endpoint: str
    params: str
    status: int
    body: bytes


@dataclass
class StandIn:
    """The stand-in's whole state, replaced on reset."""

    api_key: str
    public_url: str
    sender: Sender
    store: Store = field(init=False)
    idempotency: dict[str, Saved] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = Store(self.public_url)
        self.sender.bind(self.store)


def _stripe_error(err: StripeApiError, request_id: str) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers={"Request-Id": request_id})


def _masked(key: str) -> str:
    return key[:8] + "*" * 4 + key[-4:] if len(key) > 12 else "*" * len(key)


def _check_key(request: Request, expected: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value).decode().split(":", 1)[0]
        except ValueError:
            value = ""
    elif scheme.lower() != "bearer":
        value = ""
    value = value.strip()
    if not value:
        raise StripeApiError(401, NO_KEY)
    if value != expected:
        raise StripeApiError(401, f"Invalid API Key provided: {_masked(value)}")


def api(
    state_of: Callable[[Request], StandIn], handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Stripe's request handling around ``handler``: key, parameters, idempotency, errors."""

    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        request_id = new_id("req_", 14)
        key = request.headers.get("idempotency-key")
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "idempotency_key": key,
            "stripe_version": request.headers.get("stripe-version"),
            "request_id": request_id,
        }
        state.requests.append(entry)
        try:
            _check_key(request, state.api_key)
            body = (await request.body()).decode()
            try:
                params = parse_form(request.url.query)
                params.update(parse_form(body))
            except FormError as exc:
                raise StripeApiError(400, str(exc), param=exc.param, saved=False) from None
            entry["params"] = params
            signature = f"{request.method} {request.url.path}"
            if request.method == "POST" and key:
                saved = state.idempotency.get(key)
                if saved is not None:
                    if saved.endpoint != signature:
                        raise StripeApiError(
                            400,
                            "Keys for idempotent requests can only be used for the same "
                            f"endpoint they were first used for ('{saved.endpoint}' vs "
                            f"'{signature}'). Try using a key other than '{key}' if you meant "
                            "to execute a different request.",
                            type="idempotency_error",
                            saved=False,
                        )
                    if saved.params != canonical(params):
                        raise StripeApiError(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type="idempotency_error",
                            saved=False,
                        )
                    entry.update(status=saved.status, replayed=True)
                    return Response(
                        saved.body,
                        status_code=saved.status,
                        media_type="application/json",
                        headers={
                            "Idempotent-Replayed": "true", "Idempotency-Key": key,
                            "Request-Id": request_id,
                        },
                    )  # fmt: skip
            ctx = Ctx(state.store, params, dict(request.path_params), request_id, key)
            try:
                result = handler(ctx)
                status, obj = result if isinstance(result, tuple) else (200, result)
                payload = json.dumps(obj, indent=2).encode()
            except StripeApiError as err:
                if request.method == "POST" and key and err.saved:
                    state.idempotency[key] = Saved(
                        signature, canonical(params), err.status, json.dumps(err.body()).encode()
                    )
                raise
            if request.method == "POST" and key:
                state.idempotency[key] = Saved(signature, canonical(params), status, payload)
            entry.update(status=status, replayed=False)
            headers = {"Request-Id": request_id}
            if key:
                headers["Idempotency-Key"] = key
            return Response(
                payload, status_code=status, media_type="application/json", headers=headers
            )
        except StripeApiError as err:
            entry.update(status=err.status, replayed=False, error=err.body()["error"])
            return _stripe_error(err, request_id)

    return endpoint


# --- the /v1 handlers ------------------------------------------------------------------------


def _by_id(kind: str, noun: str) -> Handler:
    def handler(ctx: Ctx) -> Obj:
        return ctx.out(ctx.store.get(kind, ctx.path["id"], noun=noun))

    return handler


def _list(kind: str, url: str, *filters: str) -> Handler:
    def handler(ctx: Ctx) -> Obj:
        ctx.allow("limit", "starting_after", "ending_before", *filters)
        items = ctx.store.all(kind)
        for name in filters:
            if ctx.params.get(name) not in (None, ""):
                wanted = ctx.params[name]
                if name == "active":
                    wanted = wanted == "true"
                items = [i for i in items if i.get(name) == wanted]
        page = ctx.store.page(items, ctx.params, url)
        return ctx.out(page)

    return handler


def create_customer(ctx: Ctx) -> Obj:
    ctx.allow("email", "name", "description", "phone", "metadata")
    customer = ctx.store.create_customer(ctx.params)
    ctx.store.emit("customer.created", customer, request=ctx.origin)
    return ctx.out(customer)


def update_customer(ctx: Ctx) -> Obj:
    ctx.allow("email", "name", "description", "phone", "metadata")
    customer = ctx.store.get("customer", ctx.path["id"], noun="customer")
    previous = {
        k: v for k, v in ctx.store.update_customer(customer, ctx.params).items() if customer[k] != v
    }
    if previous:
        ctx.store.emit("customer.updated", customer, previous=previous, request=ctx.origin)
    return ctx.out(customer)


def search_customers(ctx: Ctx) -> Obj:
    """``query`` of ``email:'…'`` and ``metadata['k']:'v'`` clauses joined by AND."""
    ctx.allow("query", "limit", "page")
    query = str(ctx.params.get("query") or "")
    if not query:
        raise StripeApiError(
            400,
            "Missing required param: query.",
            code="parameter_missing",
            param="query",
            saved=False,
        )
    items = ctx.store.all("customer")
    for clause in re.split(r"\s+AND\s+", query.strip()):
        match = re.fullmatch(r"(email|name|metadata\['([^']+)'\])\s*:\s*'([^']*)'", clause.strip())
        if match is None:
            raise StripeApiError(400, f"Invalid search query: {clause}", param="query", saved=False)
        field_name, meta_key, value = match.groups()
        if meta_key:
            items = [c for c in items if c["metadata"].get(meta_key) == value]
        else:
            items = [c for c in items if c.get(field_name) == value]
    limit = min(100, int(str(ctx.params.get("limit") or 10)))
    return {
        "object": "search_result", "data": items[:limit], "has_more": len(items) > limit,
        "next_page": None, "url": "/v1/customers/search", "total_count": len(items),
    }  # fmt: skip


def create_product(ctx: Ctx) -> Obj:
    ctx.allow("name", "description", "metadata", "active", "id")
    product = ctx.store.create_product(ctx.params)
    ctx.store.emit("product.created", product, request=ctx.origin)
    return ctx.out(product)


def create_price(ctx: Ctx) -> Obj:
    ctx.allow(
        "unit_amount", "currency", "recurring", "product", "product_data", "nickname",
        "lookup_key", "metadata",
    )  # fmt: skip
    price, product = ctx.store.create_price(ctx.params)
    if product is not None:
        ctx.store.emit("product.created", product, request=ctx.origin)
    ctx.store.emit("price.created", price, request=ctx.origin)
    return ctx.out(price)


def create_checkout_session(ctx: Ctx) -> Obj:
    ctx.allow(
        "mode", "customer", "customer_email", "line_items", "success_url", "cancel_url",
        "client_reference_id", "metadata", "subscription_data", "allow_promotion_codes",
        "payment_method_types", "billing_address_collection", "ui_mode", "locale",
    )  # fmt: skip
    return ctx.out(ctx.store.create_checkout_session(ctx.params))


def create_portal_session(ctx: Ctx) -> Obj:
    ctx.allow("customer", "return_url", "configuration", "locale", "flow_data")
    session = ctx.store.create_portal_session(ctx.params)
    ctx.store.emit("billing_portal.session.created", session, request=ctx.origin)
    return ctx.out(session)


def list_subscriptions(ctx: Ctx) -> Obj:
    ctx.allow("limit", "starting_after", "ending_before", "customer", "price", "status")
    items = ctx.store.all("subscription")
    status = ctx.params.get("status") or None
    if ctx.params.get("customer"):
        items = [s for s in items if s["customer"] == ctx.params["customer"]]
    if ctx.params.get("price"):
        items = [
            s
            for s in items
            if any(i["price"]["id"] == ctx.params["price"] for i in s["items"]["data"])
        ]
    if status is None:  # Stripe's default leaves out canceled subscriptions
        items = [s for s in items if s["status"] != "canceled"]
    elif status != "all":
        items = [s for s in items if s["status"] == status]
    return ctx.out(ctx.store.page(items, ctx.params, "/v1/subscriptions"))


def update_subscription(ctx: Ctx) -> Obj:
    ctx.allow(
        "items", "proration_behavior", "cancel_at_period_end", "metadata", "trial_end",
        "description", "payment_behavior", "default_payment_method", "cancellation_details",
    )  # fmt: skip
    sub = ctx.store.get("subscription", ctx.path["id"], noun="subscription")
    return ctx.out(lifecycle.update_subscription(ctx.store, sub, ctx.params, ctx.origin))


def cancel_subscription(ctx: Ctx) -> Obj:
    ctx.allow("invoice_now", "prorate", "cancellation_details")
    sub = ctx.store.get("subscription", ctx.path["id"], noun="subscription")
    return ctx.out(lifecycle.cancel_subscription(ctx.store, sub, ctx.origin))


def list_invoices(ctx: Ctx) -> Obj:
    ctx.allow("limit", "starting_after", "ending_before", "customer", "subscription", "status")
    return ctx.out(ctx.store.page(ctx.store.invoices(ctx.params), ctx.params, "/v1/invoices"))


def create_meter(ctx: Ctx) -> Obj:
    ctx.allow(
        "display_name", "event_name", "default_aggregation", "customer_mapping",
        "value_settings", "event_time_window",
    )  # fmt: skip
    meter = ctx.store.create_meter(ctx.params)
    return ctx.out(meter)


def meter_event_summaries(ctx: Ctx) -> Obj:
    ctx.allow(
        "customer", "start_time", "end_time", "limit", "starting_after", "value_grouping_window"
    )
    meter = ctx.store.get("billing.meter", ctx.path["id"], noun="billing.meter")
    summaries = ctx.store.meter_summary(meter, ctx.params)
    return ctx.store.page(
        summaries, ctx.params, f"/v1/billing/meters/{meter['id']}/event_summaries"
    )


def create_meter_event(ctx: Ctx) -> Obj:
    ctx.allow("event_name", "payload", "identifier", "timestamp")
    return ctx.out(ctx.store.create_meter_event(ctx.params))


def create_webhook_endpoint(ctx: Ctx) -> Obj:
    ctx.allow("url", "enabled_events", "description", "metadata", "api_version", "connect")
    return ctx.store.create_webhook_endpoint(ctx.params)


def delete_webhook_endpoint(ctx: Ctx) -> Obj:
    endpoint = ctx.store.get("webhook_endpoint", ctx.path["id"], noun="webhook endpoint")
    endpoint["status"] = "disabled"
    del ctx.store.objects["webhook_endpoint"][endpoint["id"]]
    return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}


def list_events(ctx: Ctx) -> Obj:
    ctx.allow(
        "limit", "starting_after", "ending_before", "type", "types", "created", "delivery_success"
    )
    return ctx.out(ctx.store.page(ctx.store.events(ctx.params), ctx.params, "/v1/events"))


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/customers", create_customer),
    ("GET", "/v1/customers", _list("customer", "/v1/customers", "email")),
    ("GET", "/v1/customers/search", search_customers),
    ("GET", "/v1/customers/{id}", _by_id("customer", "customer")),
    ("POST", "/v1/customers/{id}", update_customer),
    ("POST", "/v1/products", create_product),
    ("GET", "/v1/products", _list("product", "/v1/products", "active")),
    ("GET", "/v1/products/{id}", _by_id("product", "product")),
    ("POST", "/v1/prices", create_price),
    ("GET", "/v1/prices", _list("price", "/v1/prices", "product", "active", "currency")),
    ("GET", "/v1/prices/{id}", _by_id("price", "price")),
    ("POST", "/v1/checkout/sessions", create_checkout_session),
    (
        "GET",
        "/v1/checkout/sessions",
        _list("checkout.session", "/v1/checkout/sessions", "customer", "subscription", "status"),
    ),
    ("GET", "/v1/checkout/sessions/{id}", _by_id("checkout.session", "checkout.session")),
    ("POST", "/v1/billing_portal/sessions", create_portal_session),
    ("GET", "/v1/subscriptions", list_subscriptions),
    ("GET", "/v1/subscriptions/{id}", _by_id("subscription", "subscription")),
    ("POST", "/v1/subscriptions/{id}", update_subscription),
    ("DELETE", "/v1/subscriptions/{id}", cancel_subscription),
    ("GET", "/v1/invoices", list_invoices),
    ("GET", "/v1/invoices/{id}", _by_id("invoice", "invoice")),
    ("POST", "/v1/billing/meters", create_meter),
    ("GET", "/v1/billing/meters", _list("billing.meter", "/v1/billing/meters", "status")),
    ("GET", "/v1/billing/meters/{id}", _by_id("billing.meter", "billing.meter")),
    ("GET", "/v1/billing/meters/{id}/event_summaries", meter_event_summaries),
    ("POST", "/v1/billing/meter_events", create_meter_event),
    ("POST", "/v1/webhook_endpoints", create_webhook_endpoint),
    ("GET", "/v1/webhook_endpoints", _list("webhook_endpoint", "/v1/webhook_endpoints")),
    ("GET", "/v1/webhook_endpoints/{id}", _by_id("webhook_endpoint", "webhook endpoint")),
    ("DELETE", "/v1/webhook_endpoints/{id}", delete_webhook_endpoint),
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/events/{id}", _by_id("event", "event")),
]


# --- /_standin control API -------------------------------------------------------------------


def _control(
    state_of: Callable[[Request], StandIn], action: Callable[[StandIn, Request, Obj], Any]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return JSONResponse(
                {"error": {"type": "invalid_request_error", "message": "body: expected JSON"}},
                status_code=400,
            )
        if not isinstance(body, dict):
            return JSONResponse(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "body: expected a JSON object",
                    }
                },
                status_code=400,
            )
        try:
            result = action(state, request, body)
            if isinstance(result, Response):
                return result
            return JSONResponse(result)
        except StripeApiError as err:
            return JSONResponse(err.body(), status_code=err.status)

    return endpoint


def _paid(body: Obj) -> bool:
    value = body.get("paid", True)
    if not isinstance(value, bool):
        raise StripeApiError(400, "paid: expected true or false", param="paid")
    return value


def _complete(state: StandIn, request: Request, body: Obj) -> Any:
    return lifecycle.complete_checkout(state.store, request.path_params["id"])


def _end_period(state: StandIn, request: Request, body: Obj) -> Any:
    return lifecycle.end_period(state.store, request.path_params["id"], paid=_paid(body))


def _end_trial(state: StandIn, request: Request, body: Obj) -> Any:
    return lifecycle.end_trial(state.store, request.path_params["id"], paid=_paid(body))


def _pay(state: StandIn, request: Request, body: Obj) -> Any:
    return lifecycle.pay_invoice(state.store, request.path_params["id"], paid=_paid(body))


def _redeliver(state: StandIn, request: Request, body: Obj) -> Any:
    event_id = request.path_params["id"]
    event = state.store.objects.get("event", {}).get(event_id)
    if event is None:
        raise missing("event", event_id)
    only = body.get("endpoint")
    made = state.sender.enqueue(event, endpoint_ids=[str(only)] if only else None)
    return {"event": event_id, "deliveries": [d["id"] for d in made]}


def _deliveries(state: StandIn, request: Request, body: Obj) -> Any:
    items = [state.sender.public(d) for d in state.sender.deliveries]
    for name in ("event", "type", "endpoint", "status"):
        wanted = request.query_params.get(name)
        if wanted:
            items = [d for d in items if d[name] == wanted]
    return {"data": items}


def _meter_events(state: StandIn, request: Request, body: Obj) -> Any:
    items = state.store.meter_events
    name = request.query_params.get("event_name")
    if name:
        items = [e for e in items if e["event"]["event_name"] == name]
    return {"data": items}


def _requests(state: StandIn, request: Request, body: Obj) -> Any:
    items = state.requests
    for name in ("path", "method"):
        wanted = request.query_params.get(name)
        if wanted:
            items = [r for r in items if r[name] == wanted]
    return {"data": items}


def _config(state: StandIn, request: Request, body: Obj) -> Any:
    delays = body.get("retry_delays")
    if delays is not None:
        if not isinstance(delays, list) or not all(
            isinstance(d, int | float) and 0 <= d <= 60 for d in delays
        ):
            raise StripeApiError(
                400, "retry_delays: expected a list of seconds (0 to 60)", param="retry_delays"
            )
        state.sender.retry_delays = tuple(float(d) for d in delays)
    return {"retry_delays": list(state.sender.retry_delays)}


def _add_endpoint(state: StandIn, request: Request, body: Obj) -> Any:
    """A webhook endpoint with a signing secret the test chose (kombify's settings need the
    secret before the API starts, and Stripe's own create call makes one up)."""
    secret = body.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret.startswith("whsec_")):
        raise StripeApiError(400, "secret: expected a string starting with whsec_", param="secret")
    params = {"url": body.get("url"), "enabled_events": body.get("enabled_events")}
    return state.store.create_webhook_endpoint(params, secret=secret)


def _object(kind: str, noun: str) -> Callable[[StandIn, Request, Obj], Any]:
    def action(state: StandIn, request: Request, body: Obj) -> Any:
        return state.store.get(kind, request.path_params["id"], noun=noun)

    return action


# --- hosted pages ----------------------------------------------------------------------------

_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>{title}</title>"
    "<body><main><h1>{title}</h1>{body}</main></body></html>"
)


def _checkout_page(state: StandIn, request: Request, body: Obj) -> Any:
    session = state.store.get(
        "checkout.session", request.path_params["id"], noun="checkout session"
    )
    amount = session["amount_total"] or 0
    cancel = html.escape(session["cancel_url"] or "#")
    content = (
        f"<p>Stripe stand-in checkout <code>{html.escape(session['id'])}</code>: "
        f"{amount / 100:.2f} {html.escape((session['currency'] or '').upper())}, "
        f"{session['status']}.</p>"
        f"<form method=post action='/checkout/{html.escape(session['id'])}/pay'>"
        "<button type=submit>Pay</button></form>"
        f"<p><a href='{cancel}'>Cancel</a></p>"
    )
    return HTMLResponse(_PAGE.format(title="Checkout", body=content))


def _checkout_pay(state: StandIn, request: Request, body: Obj) -> Any:
    session_id = request.path_params["id"]
    lifecycle.complete_checkout(state.store, session_id)
    session = state.store.objects["checkout.session"][session_id]
    target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
    return RedirectResponse(target, status_code=303)


def _portal_page(state: StandIn, request: Request, body: Obj) -> Any:
    session = state.store.get(
        "billing_portal.session", request.path_params["id"], noun="portal session"
    )
    back = html.escape(session["return_url"] or "#")
    content = (
        "<p>Stripe stand-in billing portal for "
        f"<code>{html.escape(session['customer'])}</code>.</p>"
        f"<p><a href='{back}'>Return</a></p>"
    )
    return HTMLResponse(_PAGE.format(title="Billing portal", body=content))


def _invoice_page(state: StandIn, request: Request, body: Obj) -> Any:
    invoice = state.store.get("invoice", request.path_params["id"], noun="invoice")
    content = (
        f"<p>Invoice {html.escape(invoice['number'] or invoice['id'])}: "
        f"{invoice['amount_due'] / 100:.2f} {invoice['currency'].upper()}, {invoice['status']}.</p>"
    )
    return HTMLResponse(_PAGE.format(title="Invoice", body=content))


def _invoice_pdf(state: StandIn, request: Request, body: Obj) -> Any:
    invoice = state.store.get("invoice", request.path_params["id"], noun="invoice")
    amount = invoice["amount_due"] / 100
    text = f"Invoice {invoice['number']} {amount:.2f} {invoice['currency'].upper()}"
    return Response(_tiny_pdf(text), media_type="application/pdf")


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (enough for a browser or a PDF reader to open)."""
    safe = text.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 14 Tf 72 720 Td ({safe}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def create_app(
    *, api_key: str, public_url: str, retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
) -> Starlette:
    """The stand-in as an ASGI app; state lives in ``app.state.standin``."""

    def state_of(request: Request) -> StandIn:
        found: StandIn = request.app.state.standin
        return found

    def _reset(state: StandIn, request: Request, body: Obj) -> Any:
        fresh = StandIn(
            api_key=state.api_key,
            public_url=state.public_url,
            sender=Sender(state.sender.retry_delays),
        )
        old = state.sender
        request.app.state.standin = fresh
        return _Closing(old)

    routes = [
        Route(path, api(state_of, handler), methods=[method]) for method, path, handler in ROUTES
    ]
    control: list[tuple[str, str, Callable[[StandIn, Request, Obj], Any]]] = [
        ("GET", "/_standin/health", lambda s, r, b: {"ok": True}),
        ("POST", "/_standin/reset", _reset),
        ("POST", "/_standin/config", _config),
        ("POST", "/_standin/webhook_endpoints", _add_endpoint),
        ("POST", "/_standin/checkout_sessions/{id}/complete", _complete),
        ("POST", "/_standin/subscriptions/{id}/renew", _end_period),
        ("POST", "/_standin/subscriptions/{id}/end_period", _end_period),
        ("POST", "/_standin/subscriptions/{id}/end_trial", _end_trial),
        ("GET", "/_standin/subscriptions/{id}", _object("subscription", "subscription")),
        ("POST", "/_standin/invoices/{id}/pay", _pay),
        ("POST", "/_standin/events/{id}/redeliver", _redeliver),
        ("GET", "/_standin/deliveries", _deliveries),
        ("GET", "/_standin/meter_events", _meter_events),
        ("GET", "/_standin/requests", _requests),
        ("GET", "/checkout/{id}", _checkout_page),
        ("POST", "/checkout/{id}/pay", _checkout_pay),
        ("GET", "/portal/{id}", _portal_page),
        ("GET", "/invoices/{id}", _invoice_page),
        ("GET", "/invoices/{id}/pdf", _invoice_pdf),
    ]
    routes += [
        Route(path, _control(state_of, action), methods=[method])
        for method, path, action in control
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        del exc
        err = StripeApiError(
            404,
            f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )
        return JSONResponse(err.body(), status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return await not_found(request, exc)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await app.state.standin.sender.close()

    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_allowed},
        lifespan=lifespan,
    )
    app.state.standin = StandIn(api_key=api_key, public_url=public_url, sender=Sender(retry_delays))
    return app


class _Closing(JSONResponse):
    """The reset's answer; the old sender's workers stop once it is sent."""

    def __init__(self, sender: Sender) -> None:
        super().__init__({"ok": True})
        self._sender = sender

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, send)
        await self._sender.close()
