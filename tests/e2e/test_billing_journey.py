"""An organisation's plan as its owner lives it, through the API only, days passing in seconds.

Every part is real except the calendar and Stripe's servers: the API served over HTTP with
billing on, kombify's Stripe client against the Stripe stand-in, the stand-in's signed webhook
deliveries, the ledger, and ProvisionSubscription with its activities on Temporal's
time-skipping test server (the API's own client talks to the same server), so a grace period of
seven days passes when the test says so.

The owner: is refused a second stack on Free (402 naming Pro); buys Pro through Checkout; then
makes two more stacks. The next payment fails and is paid within the grace: the plan stays when
the seven days have passed. The payment after fails and is not paid: after the grace the
organisation is on Free, its two newest stacks are frozen (deploys refused with 402), nothing is
deleted, and the owner got a mail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kombify.activities.billing import BillingActivities
from kombify.api.app import create_app
from kombify.contracts.billing import HANDLED_EVENTS
from kombify.db.account_tables import OutboxMail
from kombify.db.engine import get_engine
from kombify.settings import Settings
from kombify.workflows.subscription import ProvisionSubscription
from tests.support.openapi_walk import kombination
from tests.support.ports import free_port
from tests.support.served_api import served
from tests.support.stripe_standin import StripeStandin
from tests.support.temporal import time_skipping_server

OWNER = "owner@example.org"
PASSWORD = "a long enough passphrase"
GRACE = timedelta(days=7)


async def _until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


def _owner(url: str, admin_token: str) -> httpx.Client:
    """The first owner made with the admin token, then signed in (Bearer session)."""
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        made = anonymous.post(
            "/v1/admin/owner",
            json={"email": OWNER, "password": PASSWORD},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert made.status_code == 201, made.text
        login = anonymous.post("/v1/auth/login", json={"email": OWNER, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["token"]
    return httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def _entitlements(owner: httpx.Client) -> dict[str, Any]:
    answer = owner.get("/v1/orgs/local/entitlements")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _create(owner: httpx.Client, name: str) -> httpx.Response:
    return owner.post("/v1/stacks", json={"source": kombination(name)})


async def test_a_plan_bought_kept_through_a_late_payment_and_lost_to_an_unpaid_one(
    stripe_standin: StripeStandin, tmp_path: Path
) -> None:
    pro, team = stripe_standin.plan_prices()
    port = free_port()
    endpoint = stripe_standin.client().v1.webhook_endpoints.create(
        params={
            "url": f"http://127.0.0.1:{port}/v1/billing/webhooks",
            "enabled_events": list(HANDLED_EVENTS),
        }
    )
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server()
    )
    settings = Settings(
        home=tmp_path,
        temporal_address=env.client.service_client.config.target_host,
        task_queue="billing-journey",
        stripe_api_key=stripe_standin.api_key,
        stripe_webhook_secret=endpoint.secret,
        stripe_api_base=stripe_standin.base_url,
        stripe_price_pro=pro,
        stripe_price_team=team,
        billing_grace_days=GRACE.days,
    )
    database = settings.resolved_database_url
    control = stripe_standin.control
    executor = ThreadPoolExecutor(max_workers=4)
    worker = Worker(
        env.client,
        task_queue=settings.task_queue,
        workflows=[ProvisionSubscription],
        activities=BillingActivities(settings).all(),
        activity_executor=executor,
    )
    app = create_app(settings)
    try:
        async with worker:
            with served(app, port=port) as url, _owner(url, app.state.admin_token) as owner:
                assert _entitlements(owner)["plan"]["id"] == "free"
                assert _create(owner, "lab-one").status_code == 201
                refused = _create(owner, "lab-two")
                assert refused.status_code == 402, refused.text
                assert (refused.json()["plan"], refused.json()["entitlement"]) == ("pro", "stacks")

                # Pro through Checkout: the owner pays at Stripe, Stripe tells kombify.
                checkout = owner.post("/v1/orgs/local/billing/checkout", json={"plan": "pro"})
                assert checkout.status_code == 201, checkout.text
                assert checkout.json()["url"].startswith(stripe_standin.base_url)
                done = control.complete_checkout(checkout.json()["session_id"])
                subscription = done["subscription"]["id"]
                await _until(
                    "Pro active",
                    lambda: (
                        _entitlements(owner)["plan"]["id"] == "pro"
                        and _entitlements(owner)["status"] == "active"
                    ),
                )
                for name in ("lab-two", "lab-three"):
                    assert _create(owner, name).status_code == 201, name
                assert _entitlements(owner)["usage"]["stacks"] == 3

                # A failed payment, paid within the grace: the plan stays after seven days.
                control.renew(subscription, paid=False)
                await _until("past due", lambda: _entitlements(owner)["status"] == "past_due")
                assert _entitlements(owner)["grace_until"] is not None
                invoice = control.subscription(subscription)["latest_invoice"]
                control.pay_invoice(invoice if isinstance(invoice, str) else invoice["id"])
                await _until("paid", lambda: _entitlements(owner)["status"] == "active")
                await env.sleep(GRACE + timedelta(days=1))
                kept = _entitlements(owner)
                assert (kept["plan"]["id"], kept["grace_until"], kept["frozen_stacks"]) == (
                    "pro",
                    None,
                    [],
                )

                # The next one is not paid: when the grace has passed, Free, and frozen.
                control.renew(subscription, paid=False)
                await _until("past due again", lambda: _entitlements(owner)["status"] == "past_due")
                await env.sleep(GRACE + timedelta(hours=1))
                await _until("moved to Free", lambda: _entitlements(owner)["plan"]["id"] == "free")
                lost = _entitlements(owner)
                assert sorted(lost["frozen_stacks"]) == ["lab-three", "lab-two"]
                listed = owner.get("/v1/stacks").json()
                assert sorted(s["name"] for s in listed["data"]) == [
                    "lab-one",
                    "lab-three",
                    "lab-two",
                ]  # nothing deleted
                deploy = owner.post("/v1/stacks/lab-three/deployments", json={})
                assert deploy.status_code == 402, deploy.text
                assert deploy.json()["plan"] == "pro"
                assert _create(owner, "lab-four").status_code == 402
                with Session(get_engine(database)) as db:
                    mails = db.exec(select(OutboxMail).where(OutboxMail.to == OWNER)).all()
                assert any("Free" in mail.subject or "Free" in mail.body for mail in mails), [
                    mail.subject for mail in mails
                ]
    finally:
        await env.shutdown()
        executor.shutdown(wait=False)
