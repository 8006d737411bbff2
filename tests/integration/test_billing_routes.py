"""Checkout, portal and invoices through the real API against the Stripe stand-in.

The API talks to the stand-in with the real SDK over loopback; what it sent (idempotency keys,
parameters) is read back from the stand-in's request log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kombify.billing.stripe_client import StripeBilling
from kombify.db.billing_tables import OrgBilling
from kombify.errors import ConflictError
from kombify.settings import Settings
from tests.support.accounts import Installation, installation
from tests.support.concurrency import at_once
from tests.support.signed_in import problem_detail
from tests.support.stripe_standin import StripeStandin

SLUG = "acme"


@dataclass
class Billing:
    """An installation with billing on against the stand-in, and organisation ``acme``."""

    inst: Installation
    standin: StripeStandin
    pro: str
    team: str

    def as_role(self, role: str) -> TestClient:
        return self.inst.bearer(f"{role}@{SLUG}.example.org")

    def org_id(self) -> str:
        return self.inst.org(SLUG).id

    def row(self) -> OrgBilling | None:
        with self.inst.db() as db:
            return db.get(OrgBilling, self.org_id())

    def sent(self, path: str) -> list[dict[str, Any]]:
        return self.standin.control.requests(path=path, method="POST")

    def from_api(self) -> list[dict[str, Any]]:
        """What the API sent to Stripe (the prices are the test's own)."""
        return [r for r in self.standin.control.requests() if r["path"] != "/v1/prices"]


def _settings(standin: StripeStandin, **extra: Any) -> dict[str, Any]:
    return {
        "stripe_api_key": standin.api_key,
        "stripe_webhook_secret": "whsec_test_routes",
        "stripe_api_base": standin.base_url,
        **extra,
    }


@pytest.fixture
def billing(tmp_path: Path, database_url: str, stripe_standin: StripeStandin) -> Iterator[Billing]:
    pro, team = stripe_standin.plan_prices()
    config = _settings(stripe_standin, stripe_price_pro=pro, stripe_price_team=team)
    with installation(tmp_path, database_url, **config) as inst:
        for role in ("owner", "member", "viewer"):
            inst.add_user(f"{role}@{SLUG}.example.org", SLUG, role)
        yield Billing(inst, stripe_standin, pro, team)


def _checkout(client: TestClient, plan: str = "pro", **headers: str) -> Any:
    return client.post(f"/v1/orgs/{SLUG}/billing/checkout", json={"plan": plan}, headers=headers)


def test_the_customer_is_created_once_and_reused_across_checkouts(billing: Billing) -> None:
    owner = billing.as_role("owner")

    first = _checkout(owner, "pro")
    second = _checkout(owner, "team")

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["session_id"] != second.json()["session_id"]
    assert (
        first.json()["url"] == f"{billing.standin.base_url}/checkout/{first.json()['session_id']}"
    )
    org_id = billing.org_id()
    customers = billing.sent("/v1/customers")
    assert [c["idempotency_key"] for c in customers] == [f"kombify-customer-{org_id}"]
    row = billing.row()
    assert row is not None and row.stripe_customer_id is not None
    sessions = billing.sent("/v1/checkout/sessions")
    assert [s["idempotency_key"].rsplit("-", 1)[0] for s in sessions] == [
        f"kombify-checkout-{org_id}-pro",
        f"kombify-checkout-{org_id}-team",
    ]
    params = sessions[0]["params"]
    assert params["customer"] == sessions[1]["params"]["customer"] == row.stripe_customer_id
    assert params["mode"] == "subscription"
    assert params["line_items"] == [{"price": billing.pro, "quantity": "1"}]
    assert sessions[1]["params"]["line_items"][0]["price"] == billing.team
    assert params["client_reference_id"] == org_id
    assert params["metadata"]["kombify_org"] == org_id
    assert params["subscription_data"]["metadata"]["kombify_org"] == org_id
    assert params["success_url"].endswith("/billing?checkout=done")


def test_checkouts_at_once_make_one_customer(billing: Billing) -> None:
    owners: SimpleQueue[TestClient] = SimpleQueue()
    for _ in range(4):
        owners.put(billing.as_role("owner"))

    answers = at_once(4, lambda: _checkout(owners.get()))

    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["session_id"] for a in answers}) == 4
    customers = billing.sent("/v1/customers")
    assert [c["replayed"] for c in customers].count(False) == 1
    assert len(billing.standin.client().v1.customers.list().data) == 1
    row = billing.row()
    assert row is not None
    sessions = billing.sent("/v1/checkout/sessions")
    assert {s["params"]["customer"] for s in sessions} == {row.stripe_customer_id}


def test_a_retry_with_the_same_idempotency_key_reaches_the_same_session(
    billing: Billing,
) -> None:
    owner = billing.as_role("owner")

    first = _checkout(owner, **{"Idempotency-Key": "click-1"})
    again = _checkout(owner, **{"Idempotency-Key": "click-1"})
    other = _checkout(owner, **{"Idempotency-Key": "click-2"})

    assert first.json()["session_id"] == again.json()["session_id"]
    assert other.json()["session_id"] != first.json()["session_id"]
    sent = billing.sent("/v1/checkout/sessions")
    assert [s["replayed"] for s in sent] == [False, True, False]


def test_invoices_are_listed_after_a_completed_checkout(billing: Billing) -> None:
    owner, member = billing.as_role("owner"), billing.as_role("member")
    empty = member.get(f"/v1/orgs/{SLUG}/billing/invoices")
    assert empty.status_code == 200 and empty.json() == {"data": []}
    assert billing.standin.control.requests(path="/v1/invoices") == []  # no customer: no call

    session = _checkout(owner, "team").json()["session_id"]
    done = billing.standin.control.complete_checkout(session)

    listed = member.get(f"/v1/orgs/{SLUG}/billing/invoices")
    assert listed.status_code == 200, listed.text
    (invoice,) = listed.json()["data"]
    stripe_invoice = done["invoice"]
    assert invoice["id"] == stripe_invoice["id"] and invoice["number"] == stripe_invoice["number"]
    assert (invoice["status"], invoice["amount_due"], invoice["amount_paid"]) == (
        "paid",
        9900,
        9900,
    )
    assert invoice["currency"] == "usd"
    start = datetime.fromisoformat(invoice["period_start"])
    end = datetime.fromisoformat(invoice["period_end"])
    assert start.timestamp() == done["subscription"]["current_period_start"]
    assert end.timestamp() == done["subscription"]["current_period_end"]
    assert invoice["pdf"] == stripe_invoice["invoice_pdf"]
    assert invoice["hosted_url"] == stripe_invoice["hosted_invoice_url"]


def test_viewers_and_members_are_refused_and_nothing_reaches_stripe(billing: Billing) -> None:
    viewer, member = billing.as_role("viewer"), billing.as_role("member")

    assert "role" in problem_detail(_checkout(viewer), 403, "forbidden")
    assert "owner role" in problem_detail(_checkout(member), 403, "forbidden")
    portal = member.post(f"/v1/orgs/{SLUG}/billing/portal")
    assert "owner role" in problem_detail(portal, 403, "forbidden")
    invoices = viewer.get(f"/v1/orgs/{SLUG}/billing/invoices")
    assert "member role" in problem_detail(invoices, 403, "forbidden")

    assert billing.from_api() == []
    assert billing.row() is None


def test_plans_without_a_checkout_are_refused_naming_why(billing: Billing) -> None:
    owner = billing.as_role("owner")

    assert "plan" in problem_detail(_checkout(owner, "free"), 422, "invalid-request")
    assert "gold" in problem_detail(_checkout(owner, "gold"), 422, "invalid-request")
    enterprise = problem_detail(_checkout(owner, "enterprise"), 409, "conflict")
    assert "Enterprise price" in enterprise
    bad_url = owner.post(
        f"/v1/orgs/{SLUG}/billing/checkout",
        json={"plan": "pro", "success_url": "javascript:alert(1)"},
    )
    assert "success_url" in problem_detail(bad_url, 422, "invalid-request")
    assert billing.from_api() == []  # nothing was sent for any of them

    with billing.inst.db() as db:
        db.add(OrgBilling(organisation_id=billing.org_id(), enterprise_price_id=billing.team))
        db.commit()
    made = _checkout(owner, "enterprise")
    assert made.status_code == 201, made.text
    sent = billing.sent("/v1/checkout/sessions")
    assert sent[0]["params"]["line_items"][0]["price"] == billing.team


def test_a_plan_without_a_configured_price_is_refused(
    tmp_path: Path, database_url: str, stripe_standin: StripeStandin
) -> None:
    with installation(tmp_path, database_url, **_settings(stripe_standin)) as inst:
        inst.add_user(f"owner@{SLUG}.example.org", SLUG, "owner")
        owner = inst.bearer(f"owner@{SLUG}.example.org")

        detail = problem_detail(_checkout(owner, "team"), 409, "conflict")

    assert "KOMBIFY_STRIPE_PRICE_TEAM" in detail
    assert stripe_standin.control.requests() == []


def test_a_second_subscription_is_refused_while_one_is_live(billing: Billing) -> None:
    owner = billing.as_role("owner")
    session = _checkout(owner).json()["session_id"]
    done = billing.standin.control.complete_checkout(session)
    with billing.inst.db() as db:  # as the ProvisionSubscription workflow records it
        row = db.get(OrgBilling, billing.org_id())
        assert row is not None
        row.plan, row.status = "pro", "active"
        row.stripe_subscription_id = done["subscription"]["id"]
        db.add(row)
        db.commit()

    assert "billing portal" in problem_detail(_checkout(owner, "team"), 409, "conflict")


def test_the_portal_opens_for_the_organisation_customer(billing: Billing) -> None:
    owner = billing.as_role("owner")

    opened = owner.post(f"/v1/orgs/{SLUG}/billing/portal")
    back = owner.post(
        f"/v1/orgs/{SLUG}/billing/portal", json={"return_url": "https://lab.example/billing"}
    )

    assert opened.status_code == 201, opened.text
    assert opened.json()["url"].startswith(f"{billing.standin.base_url}/portal/")
    portals = billing.sent("/v1/billing_portal/sessions")
    row = billing.row()
    assert row is not None
    assert [p["params"]["customer"] for p in portals] == [row.stripe_customer_id] * 2
    assert portals[0]["params"]["return_url"].endswith("/billing")
    assert portals[1]["params"]["return_url"] == "https://lab.example/billing"
    assert all(
        p["idempotency_key"].startswith(f"kombify-portal-{row.organisation_id}-") for p in portals
    )
    assert back.status_code == 201
    assert len(billing.sent("/v1/customers")) == 1


def test_billing_off_answers_409_on_every_billing_route(tmp_path: Path, database_url: str) -> None:
    with installation(tmp_path, database_url) as inst:
        inst.add_user(f"owner@{SLUG}.example.org", SLUG, "owner")
        owner = inst.bearer(f"owner@{SLUG}.example.org")

        answers = [
            _checkout(owner),
            owner.post(f"/v1/orgs/{SLUG}/billing/portal"),
            owner.get(f"/v1/orgs/{SLUG}/billing/invoices"),
        ]

    for answer in answers:
        assert (
            problem_detail(answer, 409, "conflict")
            == "billing is not configured on this installation"
        )


def test_stripe_refusing_the_key_is_a_502_without_the_key(
    tmp_path: Path, database_url: str, stripe_standin: StripeStandin
) -> None:
    wrong = "sk_test_wrong_key_for_this_standin"
    config = _settings(stripe_standin, stripe_api_key=wrong, stripe_price_pro="price_x")
    with installation(tmp_path, database_url, **config) as inst:
        inst.add_user(f"owner@{SLUG}.example.org", SLUG, "owner")
        owner = inst.bearer(f"owner@{SLUG}.example.org")

        answer = _checkout(owner)

    detail = problem_detail(answer, 502, "billing-error")
    assert "API key" in detail and wrong not in answer.text and wrong[-4:] not in answer.text


def test_meter_events_are_reported_once_per_identifier(stripe_standin: StripeStandin) -> None:
    client = stripe_standin.client()
    customer = client.v1.customers.create(params={})
    client.v1.billing.meters.create(
        params={
            "display_name": "API calls",
            "event_name": "api_calls",
            "default_aggregation": {"formula": "sum"},
        }
    )
    settings = Settings(**_settings(stripe_standin))
    billing = StripeBilling(settings)
    event = {
        "event_name": "api_calls",
        "customer_id": customer.id,
        "identifier": "org_1:api_calls:2026-12-03T10",
        "timestamp": datetime.now().astimezone(),
    }

    assert billing.report_meter_event(value=40, **event) is True
    assert billing.report_meter_event(value=40, **event) is True  # the SDK-level retry: replayed
    assert billing.report_meter_event(value=41, **event) is False  # Stripe has the identifier

    received = stripe_standin.control.meter_events(event_name="api_calls")
    assert [(e["event"]["payload"]["value"], e["problem"]) for e in received] == [("40", None)]


def test_billing_off_refuses_to_build_a_client() -> None:
    with pytest.raises(ConflictError, match="billing is not configured"):
        StripeBilling(Settings())
