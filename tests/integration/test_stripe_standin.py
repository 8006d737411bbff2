"""The Stripe stand-in answers the real SDK as Stripe does and signs webhooks Stripe's way.

Every test drives the stand-in with the `stripe` SDK (v16) itself; webhooks go to a local
receiver that verifies them with ``stripe.Webhook.construct_event``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe

from tests.support.stripe_standin import StandinError, StripeStandin, signature_header

EVENTS = ["customer.subscription.*", "invoice.paid", "invoice.payment_failed", "checkout.session.*"]


class VerifyingReceiver:
    """Accepts webhooks only when ``stripe.Webhook.construct_event`` verifies them."""

    def __init__(self, status: int = 200) -> None:
        self.secret = ""
        self.events: list[stripe.Event] = []
        self.refused: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    event = stripe.Webhook.construct_event(
                        body, self.headers.get("Stripe-Signature", ""), outer.secret
                    )
                except (stripe.SignatureVerificationError, ValueError) as exc:
                    outer.refused.append(str(exc))
                    self.send_response(400)
                else:
                    outer.events.append(event)
                    self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[VerifyingReceiver]:
    found = VerifyingReceiver()
    yield found
    found.close()


def _endpoint(client: stripe.StripeClient, receiver: VerifyingReceiver) -> stripe.WebhookEndpoint:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": EVENTS}
    )
    assert endpoint.secret is not None and endpoint.secret.startswith("whsec_")
    receiver.secret = endpoint.secret
    return endpoint


def _pro_price(client: stripe.StripeClient, amount: int = 2900) -> stripe.Price:
    return client.v1.prices.create(
        params={
            "unit_amount": amount,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro"},
        }
    )


def _session(
    client: stripe.StripeClient, customer: str, price: str, **extra: Any
) -> stripe.checkout.Session:
    return client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": "https://kombify.example/billing/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://kombify.example/billing",
            "client_reference_id": "org_1",
            "metadata": {"kombify_org": "org_1"},
            "subscription_data": {"metadata": {"kombify_org": "org_1"}, **extra},
        }
    )


def test_checkout_completed_through_control_api_sends_signed_webhooks_in_order(
    stripe_standin: StripeStandin, receiver: VerifyingReceiver
) -> None:
    client = stripe_standin.client()
    _endpoint(client, receiver)
    customer = client.v1.customers.create(params={"email": "owner@example.org"})
    price = _pro_price(client)
    session = _session(client, customer.id, price.id)
    assert session.status == "open"
    assert session.url == f"{stripe_standin.base_url}/checkout/{session.id}"
    assert httpx.get(session.url).status_code == 200

    done = stripe_standin.control.complete_checkout(session.id)

    deliveries = stripe_standin.control.wait_for_deliveries(3)
    assert [d["status"] for d in deliveries] == ["delivered"] * 3
    assert receiver.refused == []
    assert [e.type for e in receiver.events] == [
        "customer.subscription.created",
        "invoice.paid",
        "checkout.session.completed",
    ]
    assert [e.id for e in receiver.events] == done["events"]
    completed = receiver.events[2]
    assert completed.data.object["subscription"] == done["subscription"]["id"]
    assert completed.data.object["client_reference_id"] == "org_1"
    assert completed.livemode is False and completed.api_version == stripe.api_version

    subscription = client.v1.subscriptions.retrieve(done["subscription"]["id"])
    assert subscription.status == "active"
    assert subscription.metadata.to_dict() == {"kombify_org": "org_1"}
    item = subscription["items"].data[0]
    assert item.price.id == price.id
    assert item.current_period_end > item.current_period_start
    assert subscription.current_period_end == item.current_period_end
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"

    invoices = client.v1.invoices.list(params={"customer": customer.id})
    assert len(invoices.data) == 1
    invoice = invoices.data[0]
    assert (invoice.status, invoice.amount_paid, invoice.currency) == ("paid", 2900, "usd")
    assert invoice.subscription == subscription.id  # type: ignore[attr-defined]
    assert invoice.parent is not None and invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.metadata.to_dict() == {"kombify_org": "org_1"}
    assert invoice.invoice_pdf is not None and invoice.hosted_invoice_url is not None
    pdf = httpx.get(invoice.invoice_pdf)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_a_forged_signature_is_refused_by_the_sdk(stripe_standin: StripeStandin) -> None:
    """The receiver above would accept anything if the signature were not what it checks."""
    body = b'{"id": "evt_1", "object": "event"}'
    good = signature_header("whsec_right", body)
    assert stripe.Webhook.construct_event(body, good, "whsec_right").id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, good, "whsec_wrong")
    del stripe_standin


def test_trial_then_trial_end_bills_the_first_period(
    stripe_standin: StripeStandin, receiver: VerifyingReceiver
) -> None:
    client = stripe_standin.client()
    _endpoint(client, receiver)
    customer = client.v1.customers.create(params={"email": "trial@example.org"})
    session = _session(client, customer.id, _pro_price(client).id, trial_period_days="14")

    done = stripe_standin.control.complete_checkout(session.id)

    assert done["subscription"]["status"] == "trialing" and done["invoice"] is None
    assert done["subscription"]["trial_end"] == done["subscription"]["current_period_end"]
    stripe_standin.control.wait_for_deliveries(2)
    assert [e.type for e in receiver.events] == [
        "customer.subscription.created",
        "checkout.session.completed",
    ]
    assert client.v1.invoices.list(params={"customer": customer.id}).data == []

    ended = stripe_standin.control.end_trial(done["subscription"]["id"])

    assert ended["subscription"]["status"] == "active"
    assert ended["invoice"]["status"] == "paid"
    stripe_standin.control.wait_for_deliveries(4)
    assert [e.type for e in receiver.events[2:]] == [
        "invoice.paid",
        "customer.subscription.updated",
    ]
    assert receiver.events[3].data.previous_attributes["status"] == "trialing"


def test_failed_renewal_is_past_due_until_the_invoice_is_paid(
    stripe_standin: StripeStandin, receiver: VerifyingReceiver
) -> None:
    client = stripe_standin.client()
    _endpoint(client, receiver)
    customer = client.v1.customers.create(params={})
    done = stripe_standin.control.complete_checkout(
        _session(client, customer.id, _pro_price(client).id).id
    )
    sub_id = done["subscription"]["id"]
    first_end = done["subscription"]["current_period_end"]

    failed = stripe_standin.control.renew(sub_id, paid=False)

    assert failed["subscription"]["status"] == "past_due"
    assert failed["subscription"]["current_period_start"] == first_end
    assert failed["invoice"]["status"] == "open" and failed["invoice"]["amount_paid"] == 0
    stripe_standin.control.wait_for_deliveries(5)
    assert [e.type for e in receiver.events[3:]] == [
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]

    paid = stripe_standin.control.pay_invoice(failed["invoice"]["id"])

    assert paid["subscription"]["status"] == "active"
    assert client.v1.invoices.retrieve(failed["invoice"]["id"]).status == "paid"
    stripe_standin.control.wait_for_deliveries(7)
    assert [e.type for e in receiver.events[5:]] == [
        "invoice.paid",
        "customer.subscription.updated",
    ]
    listed = client.v1.invoices.list(params={"subscription": sub_id, "limit": 1})
    assert len(listed.data) == 1 and listed.has_more is True
    with pytest.raises(StandinError) as refused:
        stripe_standin.control.pay_invoice(failed["invoice"]["id"])
    assert refused.value.status == 409


def test_cancel_at_period_end_then_the_period_ends(
    stripe_standin: StripeStandin, receiver: VerifyingReceiver
) -> None:
    client = stripe_standin.client()
    _endpoint(client, receiver)
    customer = client.v1.customers.create(params={})
    done = stripe_standin.control.complete_checkout(
        _session(client, customer.id, _pro_price(client).id).id
    )
    sub_id = done["subscription"]["id"]

    updated = client.v1.subscriptions.update(
        sub_id, params={"cancel_at_period_end": True, "metadata": {"reason": "test"}}
    )

    assert updated.cancel_at_period_end is True
    assert updated.metadata.to_dict() == {"kombify_org": "org_1", "reason": "test"}
    stripe_standin.control.wait_for_deliveries(4)
    change = receiver.events[3]
    assert change.type == "customer.subscription.updated"
    assert change.data.previous_attributes["cancel_at_period_end"] is False

    ended = stripe_standin.control.end_period(sub_id)

    assert ended["subscription"]["status"] == "canceled"
    stripe_standin.control.wait_for_deliveries(5)
    assert receiver.events[4].type == "customer.subscription.deleted"
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []
    every = client.v1.subscriptions.list(params={"customer": customer.id, "status": "all"})
    assert [s.id for s in every.data] == [sub_id]


def test_changing_the_price_of_the_subscription_item(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    customer = client.v1.customers.create(params={})
    done = stripe_standin.control.complete_checkout(
        _session(client, customer.id, _pro_price(client).id).id
    )
    team = _pro_price(client, 9900)
    sub = client.v1.subscriptions.retrieve(done["subscription"]["id"])

    changed = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": team.id}],
            "proration_behavior": "always_invoice",
        },
    )

    assert changed["items"].data[0].price.id == team.id
    assert changed["items"].data[0].id == sub["items"].data[0].id
    reasons = [i.billing_reason for i in client.v1.invoices.list(params={"subscription": sub.id})]
    assert reasons == ["subscription_update", "subscription_create"]
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": "si_nope", "price": team.id}]}
        )
    assert (missing.value.http_status, missing.value.param) == (404, "items[0][id]")


def test_redelivery_sends_the_same_event_id_again(
    stripe_standin: StripeStandin, receiver: VerifyingReceiver
) -> None:
    client = stripe_standin.client()
    _endpoint(client, receiver)
    customer = client.v1.customers.create(params={})
    done = stripe_standin.control.complete_checkout(
        _session(client, customer.id, _pro_price(client).id).id
    )
    stripe_standin.control.wait_for_deliveries(3)

    stripe_standin.control.redeliver(done["events"][2])

    stripe_standin.control.wait_for_deliveries(4)
    assert [e.id for e in receiver.events[2:]] == [done["events"][2]] * 2
    assert client.v1.events.retrieve(done["events"][2]).type == "checkout.session.completed"
    listed = client.v1.events.list(params={"type": "invoice.paid"})
    assert [e.id for e in listed.data] == [done["events"][1]]


def test_a_failing_endpoint_is_retried_and_the_attempts_recorded(
    stripe_standin: StripeStandin,
) -> None:
    failing = VerifyingReceiver(status=500)
    try:
        stripe_standin.control.configure(retry_delays=[0, 0])
        client = stripe_standin.client()
        _endpoint(client, failing)
        customer = client.v1.customers.create(params={})
        session = _session(client, customer.id, _pro_price(client).id)
        stripe_standin.control.complete_checkout(session.id)

        found = stripe_standin.control.wait_for_deliveries(
            3, done=lambda d: d["status"] == "failed"
        )

        assert [d["attempt_count"] for d in found] == [3, 3, 3]
        assert {a["status_code"] for d in found for a in d["attempts"]} == {500}
        assert len(failing.events) == 9  # each verified, answered 500, sent again
    finally:
        failing.close()


def test_idempotency_key_replays_the_first_answer(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    key = f"test-{uuid.uuid4()}"
    params = {"email": "once@example.org", "metadata": {"org": "o1"}}

    first = client.v1.customers.create(params=params, options={"idempotency_key": key})
    again = client.v1.customers.create(params=params, options={"idempotency_key": key})

    assert first.id == again.id
    assert [c.id for c in client.v1.customers.list(params={"email": "once@example.org"})] == [
        first.id
    ]
    logged = stripe_standin.control.requests(path="/v1/customers", method="POST")
    assert [(r["idempotency_key"], r["replayed"]) for r in logged] == [(key, False), (key, True)]

    with pytest.raises(stripe.IdempotencyError) as mismatch:
        client.v1.customers.create(
            params={**params, "email": "other@example.org"}, options={"idempotency_key": key}
        )
    assert mismatch.value.http_status == 400
    assert key in str(mismatch.value.user_message)
    with pytest.raises(stripe.IdempotencyError):
        client.v1.prices.create(params={"currency": "usd"}, options={"idempotency_key": key})


def test_a_validation_error_is_not_kept_under_its_idempotency_key(
    stripe_standin: StripeStandin,
) -> None:
    client = stripe_standin.client()
    key = f"test-{uuid.uuid4()}"
    product = client.v1.products.create(params={"name": "Pro"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.prices.create(
            params={"currency": "usd", "product": product.id}, options={"idempotency_key": key}
        )
    assert (refused.value.code, refused.value.param) == ("parameter_missing", "unit_amount")

    price = client.v1.prices.create(
        params={"currency": "usd", "product": product.id, "unit_amount": 100},
        options={"idempotency_key": key},
    )
    assert price.unit_amount == 100


def test_a_repeated_meter_event_identifier_is_refused(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    customer = client.v1.customers.create(params={})
    client.v1.billing.meters.create(
        params={
            "display_name": "Deploy minutes",
            "event_name": "deploy_minutes",
            "default_aggregation": {"formula": "sum"},
        }
    )
    event = {
        "event_name": "deploy_minutes",
        "payload": {"stripe_customer_id": customer.id, "value": "12"},
        "identifier": "org_1:deploy_minutes:2026-12-03T10",
    }
    made = client.v1.billing.meter_events.create(params=event)
    assert made.identifier == event["identifier"] and made.payload["value"] == "12"

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.billing.meter_events.create(params={**event, "payload": {**event["payload"]}})

    assert refused.value.http_status == 400
    assert (refused.value.code, refused.value.param) == ("resource_already_exists", "identifier")
    received = stripe_standin.control.meter_events()
    assert [(e["event"]["identifier"], e["problem"]) for e in received] == [
        (event["identifier"], None)
    ]
    assert [m.event_name for m in client.v1.billing.meters.list()] == ["deploy_minutes"]


def test_a_missing_or_wrong_key_is_answered_401(stripe_standin: StripeStandin) -> None:
    bare = httpx.get(f"{stripe_standin.base_url}/v1/customers")
    assert bare.status_code == 401
    error = bare.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "You did not provide an API key" in error["message"]

    wrong = stripe.StripeClient(
        "sk_test_not_this_one", base_addresses={"api": stripe_standin.base_url},
        max_network_retries=0,
    )  # fmt: skip
    with pytest.raises(stripe.AuthenticationError) as refused:
        wrong.v1.customers.list()
    assert refused.value.http_status == 401
    assert "sk_test_not_this_one" not in str(refused.value.user_message)


def test_unknown_ids_and_parameters_are_refused_like_stripe(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    for call in (
        lambda: client.v1.customers.retrieve("cus_nope"),
        lambda: client.v1.subscriptions.retrieve("sub_nope"),
        lambda: client.v1.invoices.retrieve("in_nope"),
        lambda: client.v1.checkout.sessions.retrieve("cs_test_nope"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as missing:
            call()
        assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
        assert "nope" in str(missing.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.customers.create(params={"emial": "typo@example.org"})  # type: ignore[typeddict-unknown-key]
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "emial")
    with pytest.raises(stripe.InvalidRequestError) as no_price:
        client.v1.checkout.sessions.create(
            params={
                "mode": "subscription", "success_url": "https://x.example/",
                "line_items": [{"price": "price_nope", "quantity": 1}],
            }
        )  # fmt: skip
    assert (no_price.value.code, no_price.value.param) == (
        "resource_missing",
        "line_items[0][price]",
    )


def test_lists_page_with_limit_and_starting_after(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    made = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(3)]

    first = client.v1.customers.list(params={"limit": 2})
    rest = client.v1.customers.list(params={"limit": 2, "starting_after": first.data[-1].id})

    assert [c.id for c in first.data] == made[::-1][:2] and first.has_more is True
    assert [c.id for c in rest.data] == made[:1] and rest.has_more is False
    assert first.url == "/v1/customers"
    every = [c.id for c in client.v1.customers.list(params={"limit": 1}).auto_paging_iter()]
    assert every == made[::-1]


def test_portal_session_points_at_the_stand_in(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    customer = client.v1.customers.create(params={})
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://kombify.example/billing"}
    )
    assert portal.url.startswith(f"{stripe_standin.base_url}/portal/")
    page = httpx.get(portal.url)
    assert page.status_code == 200 and "https://kombify.example/billing" in page.text


def test_an_endpoint_with_a_chosen_secret_and_the_checkout_page_pay_button(
    stripe_standin: StripeStandin, receiver: VerifyingReceiver
) -> None:
    receiver.secret = "whsec_chosen_by_the_test"
    made = stripe_standin.control.add_webhook_endpoint(
        receiver.url, ["checkout.session.completed"], secret=receiver.secret
    )
    assert made["secret"] == receiver.secret and "secret" not in (
        stripe_standin.client().v1.webhook_endpoints.retrieve(made["id"])
    )
    client = stripe_standin.client()
    customer = client.v1.customers.create(params={})
    session = _session(client, customer.id, _pro_price(client).id)

    paid = httpx.post(f"{stripe_standin.base_url}/checkout/{session.id}/pay")

    assert paid.status_code == 303
    assert paid.headers["location"] == (
        f"https://kombify.example/billing/done?session={session.id}"
    )
    stripe_standin.control.wait_for_deliveries(1)
    assert [e.type for e in receiver.events] == ["checkout.session.completed"]
    with pytest.raises(StandinError) as twice:
        stripe_standin.control.complete_checkout(session.id)
    assert twice.value.status == 409


def test_reset_forgets_everything(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    customer = client.v1.customers.create(params={})

    stripe_standin.control.reset()

    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(customer.id)
    assert [r["path"] for r in stripe_standin.control.requests()] == [
        f"/v1/customers/{customer.id}"
    ]
    assert client.v1.events.list().data == []


def test_expand_replaces_ids_with_their_objects(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    customer = client.v1.customers.create(params={"email": "expand@example.org"})
    session = _session(client, customer.id, _pro_price(client).id)
    done = stripe_standin.control.complete_checkout(session.id)

    found = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription", "customer"]}
    )
    plain = client.v1.checkout.sessions.retrieve(session.id)

    assert isinstance(found.subscription, stripe.Subscription)
    assert found.subscription.id == done["subscription"]["id"]
    assert isinstance(found.customer, stripe.Customer) and found.customer.email == customer.email
    assert plain.subscription == done["subscription"]["id"]
    listed = client.v1.invoices.list(params={"customer": customer.id, "expand": ["data.customer"]})
    assert isinstance(listed.data[0].customer, stripe.Customer)
