"""``POST /v1/billing/webhooks`` on the real API, a real Temporal dev server and a worker
process running ProvisionSubscription: signatures, the ledger, signal-with-start, a crash."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from kombify.api.app import create_app
from kombify.contracts.billing import SubscriptionState, subscription_workflow_id
from kombify.db.migrate import upgrade
from kombify.settings import Settings
from kombify.workflows.subscription import ProvisionSubscription
from tests.support.billing import (
    BILLING_SETTINGS,
    WEBHOOK_SECRET,
    Org,
    billing_row,
    checkout_completed,
    event,
    ledger,
    seed_org,
    signed,
)
from tests.support.ports import free_port

TOLERANCE = 300


class Billing:
    """The API (billing on) and a worker process on the test's own task queue."""

    def __init__(self, home: Path, temporal_address: str) -> None:
        self.home = home
        queue = f"bill-{secrets.token_hex(4)}"
        self.settings = Settings(
            home=home, temporal_address=temporal_address, task_queue=queue, **BILLING_SETTINGS
        )
        self.url = self.settings.resolved_database_url
        upgrade(self.url)
        self.env = {
            **os.environ,
            "KOMBIFY_HOME": str(home),
            "KOMBIFY_TEMPORAL_ADDRESS": temporal_address,
            "KOMBIFY_TASK_QUEUE": queue,
            "KOMBIFY_STRIPE_API_KEY": BILLING_SETTINGS["stripe_api_key"],
            "KOMBIFY_STRIPE_WEBHOOK_SECRET": BILLING_SETTINGS["stripe_webhook_secret"],
            "KOMBIFY_STRIPE_PRICE_PRO": BILLING_SETTINGS["stripe_price_pro"],
            "KOMBIFY_STRIPE_PRICE_TEAM": BILLING_SETTINGS["stripe_price_team"],
        }
        self.worker: subprocess.Popen[bytes] | None = None
        self.app = create_app(self.settings)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://kombify", timeout=30
        )
        self.temporal: Client | None = None

    def start_worker(self) -> None:
        with (self.home / "worker.log").open("ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "kombify", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill_worker(self) -> None:
        """SIGKILL, as a crash: no graceful shutdown."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGKILL)
            self.worker.wait(10)
        self.worker = None

    async def client(self) -> Client:
        if self.temporal is None:
            self.temporal = await Client.connect(self.settings.temporal_address or "")
        return self.temporal

    async def post(self, body: dict[str, Any], **sign: Any) -> httpx.Response:
        payload, headers = signed(body, **sign)
        return await self.http.post("/v1/billing/webhooks", content=payload, headers=headers)

    async def history(self, org: Org) -> list[Any]:
        handle = (await self.client()).get_workflow_handle(subscription_workflow_id(org.id))
        return [e async for e in handle.fetch_history_events()]

    async def workflow_exists(self, org: Org) -> bool:
        handle = (await self.client()).get_workflow_handle(subscription_workflow_id(org.id))
        try:
            await handle.describe()
        except RPCError:
            return False
        return True

    async def state(self, org: Org) -> SubscriptionState:
        handle = (await self.client()).get_workflow_handle(subscription_workflow_id(org.id))
        result: SubscriptionState = await handle.query(
            ProvisionSubscription.state, result_type=SubscriptionState
        )
        return result

    async def close(self) -> None:
        self.kill_worker()
        await self.http.aclose()


@pytest.fixture(scope="module")
async def billing(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Billing]:
    lab = Billing(tmp_path_factory.mktemp("billing-home"), temporal_address)
    lab.start_worker()
    yield lab
    await lab.close()


async def until(
    what: str, check: Callable[[], Awaitable[bool] | bool], timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


def plan_is(billing: Billing, org: Org, plan: str, status: str) -> Callable[[], bool]:
    def check() -> bool:
        row = billing_row(billing.url, org.id)
        return row is not None and (row.plan, row.status) == (plan, status)

    return check


def _signals(history: list[Any]) -> int:
    return sum(
        1 for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )


async def test_a_signed_checkout_activates_the_plan_once_when_delivered_twice(
    billing: Billing,
) -> None:
    org = seed_org(billing.url)
    body = checkout_completed(org, created=int(time.time()))
    first = await billing.post(body)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True}
    again = await billing.post(body)  # Stripe redelivers (signed anew)
    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True}

    await until("plan pro active", plan_is(billing, org, "pro", "active"))
    row = billing_row(billing.url, org.id)
    assert row is not None and row.stripe_customer_id == org.customer
    rows = ledger(billing.url, body["id"])
    assert [(r.type, r.organisation_id) for r in rows] == [("checkout.session.completed", org.id)]
    history = await billing.history(org)
    assert _signals(history) == 1  # the redelivery was not signalled
    assert (await billing.state(org)).applied == [body["id"]]
    # Only what the workflow needs went into its history: no secret, no signature, no payload.
    recorded = "".join(str(e) for e in history)
    assert body["id"] in recorded and org.customer in recorded  # the signal is readable here
    for secret in (WEBHOOK_SECRET, BILLING_SETTINGS["stripe_api_key"], "v1=", "payment_status"):
        assert secret not in recorded


def _stale() -> dict[str, Any]:
    return {"at": int(time.time()) - TOLERANCE - 60}


def _future() -> dict[str, Any]:
    return {"at": int(time.time()) + TOLERANCE + 60}


def _wrong_secret() -> dict[str, Any]:
    return {"secret": "whsec_someone_else"}


@pytest.mark.parametrize(
    ("sign", "says"),
    [
        (_wrong_secret, "no signature matches"),
        (_stale, "old"),
        (_future, "in the future"),
    ],
    ids=["bad-signature", "stale-timestamp", "future-timestamp"],
)
async def test_refused_signatures_change_nothing(
    billing: Billing, sign: Callable[[], dict[str, Any]], says: str
) -> None:
    org = seed_org(billing.url)
    body = checkout_completed(org, created=int(time.time()))
    response = await billing.post(body, **sign())
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert says in problem["detail"] and "Stripe-Signature" in problem["detail"]
    assert WEBHOOK_HEADER_LEAK not in response.text
    assert ledger(billing.url, body["id"]) == []
    assert not await billing.workflow_exists(org)
    assert billing_row(billing.url, org.id) is None


WEBHOOK_HEADER_LEAK = "v1="


async def test_a_missing_header_and_a_tampered_body_are_refused(billing: Billing) -> None:
    org = seed_org(billing.url)
    body = checkout_completed(org, created=int(time.time()))
    payload, headers = signed(body)
    bare = await billing.http.post("/v1/billing/webhooks", content=payload)
    assert bare.status_code == 400 and "missing" in bare.json()["detail"]
    tampered = payload.replace(b'"pro"', b'"team"')
    forged = await billing.http.post("/v1/billing/webhooks", content=tampered, headers=headers)
    assert forged.status_code == 400
    assert ledger(billing.url, body["id"]) == []
    assert not await billing.workflow_exists(org)


async def test_a_signed_body_that_is_no_event_names_the_field(billing: Billing) -> None:
    body = {"id": "evt_x", "type": "checkout.session.completed", "created": "yesterday"}
    response = await billing.post(body)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "created", "message": "expected an integer (Unix seconds)"}
    ]
    assert ledger(billing.url, "evt_x") == []


async def test_unknown_types_and_unknown_organisations_are_acknowledged_not_signalled(
    billing: Billing,
) -> None:
    org = seed_org(billing.url)
    now = int(time.time())
    other = event(
        "customer.created",
        {"id": org.customer, "object": "customer", "metadata": {"kombify_org": org.id}},
        created=now,
    )
    response = await billing.post(other)
    assert response.json() == {"received": True}
    assert [r.organisation_id for r in ledger(billing.url, other["id"])] == [org.id]

    stranger = Org("org-nobody-knows", "x", (), "", "cus_nobody", "sub_nobody")
    lost = checkout_completed(stranger, created=now)
    response = await billing.post(lost)
    assert response.json() == {"received": True}
    assert [r.organisation_id for r in ledger(billing.url, lost["id"])] == [None]
    assert not await billing.workflow_exists(org)
    assert not await billing.workflow_exists(stranger)


async def test_a_worker_killed_mid_provisioning_activates_once(billing: Billing) -> None:
    org = seed_org(billing.url)
    billing.kill_worker()
    body = checkout_completed(org, created=int(time.time()), plan="team")
    response = await billing.post(body)  # signalled; nobody has provisioned yet
    assert response.json() == {"received": True}
    assert billing_row(billing.url, org.id) is None
    billing.start_worker()

    async def provisioning() -> bool:
        kinds = [e.event_type for e in await billing.history(org)]
        return EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in kinds

    await until("the worker picked the workflow up", provisioning)
    billing.kill_worker()  # in the middle: an activity scheduled, maybe running
    billing.start_worker()
    await until("plan team active", plan_is(billing, org, "team", "active"), timeout=120)

    async def writes() -> list[Any]:
        history = await billing.history(org)
        scheduled = {
            e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        }
        return [
            e
            for e in history
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            and scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]
            == "WriteOrgBilling"
        ]

    async def written() -> bool:
        return bool(await writes())

    # A write the killed worker was running completes only after its retry (start-to-close).
    await until("the activation's write completed", written, timeout=120)
    assert len(await writes()) == 1  # activated once
    assert len(ledger(billing.url, body["id"])) == 1


async def test_billing_off_has_no_webhook_endpoint(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    upgrade(settings.resolved_database_url)
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kombify"
    ) as http:
        payload, headers = signed({"id": "evt_off", "type": "invoice.paid"})
        response = await http.post("/v1/billing/webhooks", content=payload, headers=headers)
    assert response.status_code == 404
    assert response.json()["type"].endswith("/billing-off")
    assert json.loads(response.text)["detail"].startswith("billing is not configured")


async def test_a_signal_temporal_did_not_take_leaves_no_ledger_row(billing: Billing) -> None:
    org = seed_org(billing.url)
    away = billing.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    body = checkout_completed(org, created=int(time.time()))
    payload, headers = signed(body)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(away)), base_url="http://kombify"
    ) as http:
        refused = await http.post("/v1/billing/webhooks", content=payload, headers=headers)
    assert refused.status_code == 503, refused.text
    assert ledger(billing.url, body["id"]) == []  # rolled back: Stripe's retry gets through

    retried = await billing.post(body)
    assert retried.json() == {"received": True}
    await until("plan pro active", plan_is(billing, org, "pro", "active"))
    assert len(ledger(billing.url, body["id"])) == 1


async def test_the_same_event_delivered_twice_at_once_is_processed_once(
    billing: Billing,
) -> None:
    org = seed_org(billing.url)
    body = checkout_completed(org, created=int(time.time()))
    answers = await asyncio.gather(billing.post(body), billing.post(body))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(json.dumps(a.json(), sort_keys=True) for a in answers) == [
        '{"duplicate": true, "received": true}',
        '{"received": true}',
    ]
    await until("plan pro active", plan_is(billing, org, "pro", "active"))
    assert len(ledger(billing.url, body["id"])) == 1
    assert (await billing.state(org)).applied == [body["id"]]


async def test_the_ledger_takes_an_event_once_on_each_database(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, database_url=database_url, **BILLING_SETTINGS)
    upgrade(database_url)
    org = seed_org(database_url)
    # A type kombify does not act on: recorded and acknowledged, no workflow involved.
    body = event(
        "customer.updated",
        {"id": org.customer, "object": "customer", "metadata": {"kombify_org": org.id}},
        created=int(time.time()),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://kombify"
    ) as http:

        async def post() -> httpx.Response:
            payload, headers = signed(body)
            return await http.post("/v1/billing/webhooks", content=payload, headers=headers)

        answers = await asyncio.gather(post(), post())
        later = await post()
    assert sorted(json.dumps(a.json(), sort_keys=True) for a in [*answers, later]) == [
        '{"duplicate": true, "received": true}',
        '{"duplicate": true, "received": true}',
        '{"received": true}',
    ]
    assert [r.organisation_id for r in ledger(database_url, body["id"])] == [org.id]
