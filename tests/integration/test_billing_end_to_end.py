"""Checkout to plan, through every real part: kombify's Stripe client against the Stripe
stand-in, the stand-in's signed webhook deliveries to the API served over HTTP, the ledger,
a worker running ProvisionSubscription on the Temporal dev server, and ``org_billing``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session

from kombify.api.app import create_app
from kombify.billing.stripe_client import StripeBilling
from kombify.contracts.billing import HANDLED_EVENTS
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.db.models import Organisation
from kombify.settings import Settings
from kombify.workers.main import run_worker
from tests.support.billing import billing_row, ledger, seed_org
from tests.support.ports import free_port
from tests.support.served_api import served
from tests.support.stripe_standin import StripeStandin


async def _until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


async def test_checkout_to_plan_through_signed_webhooks(
    stripe_standin: StripeStandin, temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    client = stripe_standin.client()
    prices = stripe_standin.plan_prices()
    port = free_port()
    endpoint = client.v1.webhook_endpoints.create(
        params={
            "url": f"http://127.0.0.1:{port}/v1/billing/webhooks",
            "enabled_events": [*HANDLED_EVENTS, "customer.created"],
        }
    )
    assert endpoint.secret
    settings = Settings(
        home=tmp_path,
        temporal_address=temporal_address,
        task_queue=task_queue,
        stripe_api_key=stripe_standin.api_key,
        stripe_webhook_secret=endpoint.secret,
        stripe_api_base=stripe_standin.base_url,
        stripe_price_pro=prices[0],
        stripe_price_team=prices[1],
    )
    url = settings.resolved_database_url
    upgrade(url)
    org = seed_org(url)
    stop, ready = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        with served(create_app(settings), port=port):
            with Session(get_engine(url)) as db:
                organisation = db.get(Organisation, org.id)
                assert organisation is not None
                link = StripeBilling(settings, client=client).checkout(
                    db, organisation, "pro", nonce="e2e"
                )
            done = stripe_standin.control.complete_checkout(link.session_id)
            subscription = done["subscription"]["id"]

            def plan(want: str, status: str) -> Callable[[], bool]:
                def check() -> bool:
                    row = billing_row(url, org.id)
                    return row is not None and (row.plan, row.status) == (want, status)

                return check

            await _until("pro active", plan("pro", "active"))
            row = billing_row(url, org.id)
            assert row is not None and row.stripe_subscription_id == subscription
            assert row.current_period_end is not None

            # Every delivery was taken; a redelivery is acknowledged as a duplicate.
            completed = stripe_standin.control.wait_for_deliveries(
                1, type="checkout.session.completed"
            )
            assert all(a["status_code"] == 200 for a in completed[0]["attempts"])
            event_id = completed[0]["event"]
            stripe_standin.control.redeliver(event_id)
            stripe_standin.control.wait_for_deliveries(2, type="checkout.session.completed")
            assert len(ledger(url, event_id)) == 1

            # The next period's payment fails: grace, then paid within it.
            stripe_standin.control.renew(subscription, paid=False)
            await _until("past due", plan("pro", "past_due"))
            row = billing_row(url, org.id)
            assert row is not None and row.grace_until is not None
            failed = stripe_standin.control.wait_for_deliveries(1, type="invoice.payment_failed")
            invoice = stripe_standin.control.subscription(subscription).get("latest_invoice")
            assert failed and invoice
            stripe_standin.control.pay_invoice(
                invoice if isinstance(invoice, str) else invoice["id"]
            )
            await _until("paid again", plan("pro", "active"))
            row = billing_row(url, org.id)
            assert row is not None and row.grace_until is None
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
