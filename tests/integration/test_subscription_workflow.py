"""ProvisionSubscription on the time-skipping test server, with its real activities on SQLite.

Trials, grace periods and period ends pass in moments: the test server skips the workflow's
durable timers forward (``env.sleep``) instead of waiting days.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from kombify.activities.billing import BillingActivities
from kombify.billing.stripe_events import checked, signal_of
from kombify.contracts.billing import (
    EVENT_SIGNAL,
    SubscriptionInput,
    SubscriptionState,
    subscription_workflow_id,
)
from kombify.db.billing_tables import OrgBilling
from kombify.db.migrate import upgrade
from kombify.settings import Settings
from kombify.workflows.subscription import ProvisionSubscription
from tests.support.billing import (
    BILLING_SETTINGS,
    PRICE_PRO,
    PRICE_TEAM,
    Org,
    billing_row,
    checkout_completed,
    invoice_event,
    outbox_to,
    seed_org,
    stack_names,
    subscription_event,
)
from tests.support.temporal import time_skipping_server

DAY = 86_400


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server()
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


@dataclass
class Lab:
    env: WorkflowEnvironment
    client: Client
    settings: Settings
    url: str
    queue: str
    org: Org

    async def now(self) -> int:
        return int((await self.env.get_current_time()).timestamp())

    async def send(self, body: dict[str, Any], **options: Any) -> WorkflowHandle[Any, Any]:
        """Hand a Stripe event to the organisation's workflow as the webhook route does."""
        signal = signal_of(*checked(body), grace_days=self.settings.billing_grace_days)
        return await self.client.start_workflow(
            ProvisionSubscription.run,
            SubscriptionInput(organisation_id=self.org.id, **options),
            id=subscription_workflow_id(self.org.id),
            task_queue=self.queue,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[signal],
        )

    async def state(self) -> SubscriptionState:
        """The workflow's own view (query ``state``) of its latest run.

        The query names the run: a query sent to a run that has just continued as new can
        hang on the test server until its deadline, so a short deadline and one more try.
        """
        wid = subscription_workflow_id(self.org.id)
        for _ in range(10):
            run_id = (await self.client.get_workflow_handle(wid).describe()).run_id
            handle = self.client.get_workflow_handle(wid, run_id=run_id)
            try:
                state: SubscriptionState = await handle.query(
                    ProvisionSubscription.state,
                    result_type=SubscriptionState,
                    rpc_timeout=timedelta(seconds=3),
                )
            except RPCError:
                continue
            return state
        raise AssertionError("the workflow never answered its query")

    def row(self) -> OrgBilling:
        row = billing_row(self.url, self.org.id)
        assert row is not None, "no org_billing row written"
        return row

    async def until(self, what: str, check: Callable[[], Awaitable[bool] | bool]) -> None:
        """Poll until ``check`` holds (the workflow works on its own time); fail after 30 s."""
        for _ in range(600):
            outcome = check()
            if outcome if isinstance(outcome, bool) else await outcome:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never: {what}; state {await self.state()}")

    async def row_is(self, **want: Any) -> None:
        def matches() -> bool:
            row = billing_row(self.url, self.org.id)
            return row is not None and all(getattr(row, k) == v for k, v in want.items())

        await self.until(f"org_billing {want}", matches)

    async def quiet(self) -> None:
        """Until the workflow applied every queued event and wrote what it decided."""

        async def idle() -> bool:
            return not (await self.state()).queued

        await self.until("queue empty", idle)


@pytest.fixture
def lab_parts(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    settings = Settings(home=tmp_path, billing_grace_days=7, **BILLING_SETTINGS)
    url = settings.resolved_database_url
    upgrade(url)
    yield settings, url


@pytest.fixture
async def lab(env: WorkflowEnvironment, lab_parts: tuple[Settings, str]) -> AsyncIterator[Lab]:
    settings, url = lab_parts
    queue = f"test-{uuid.uuid4().hex[:12]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[ProvisionSubscription],
            activities=BillingActivities(settings).all(),
            activity_executor=executor,
        ):
            yield Lab(env, env.client, settings, url, queue, seed_org(url, stacks=3))


async def _active_pro(lab: Lab, period_end: int) -> None:
    now = await lab.now()
    await lab.send(checkout_completed(lab.org, created=now))
    await lab.send(
        subscription_event(
            lab.org, "customer.subscription.created", created=now, period_end=period_end
        )
    )
    await lab.row_is(plan="pro", status="active")


async def test_checkout_completed_activates_the_plan(lab: Lab) -> None:
    now = await lab.now()
    await lab.send(checkout_completed(lab.org, created=now, plan="pro"))
    await lab.row_is(plan="pro", status="active")
    row = lab.row()
    assert row.stripe_customer_id == lab.org.customer
    assert row.stripe_subscription_id == lab.org.subscription
    assert row.pending_plan is None and row.grace_until is None


async def test_a_subscription_event_names_the_plan_by_its_price(lab: Lab) -> None:
    now = await lab.now()
    # A session without kombify_plan: the plan comes from the subscription's price.
    body = checkout_completed(lab.org, created=now)
    del body["data"]["object"]["metadata"]["kombify_plan"]
    await lab.send(body)
    await lab.row_is(status="checkout", plan="free")
    await lab.send(
        subscription_event(
            lab.org,
            "customer.subscription.created",
            created=now + 1,
            price=PRICE_TEAM,
            period_end=now + 30 * DAY,
        )
    )
    await lab.row_is(plan="team", status="active")
    assert lab.row().current_period_end is not None
    assert int(lab.row().current_period_end.timestamp()) == now + 30 * DAY  # type: ignore[union-attr]


async def test_a_trial_runs_until_its_end_then_the_plan_is_active(lab: Lab) -> None:
    now = await lab.now()
    end = now + 14 * DAY
    await lab.send(checkout_completed(lab.org, created=now))
    await lab.send(
        subscription_event(
            lab.org,
            "customer.subscription.created",
            created=now,
            status="trialing",
            trial_end=end,
            period_end=end,
        )
    )
    await lab.row_is(plan="pro", status="trialing")
    await lab.env.sleep(timedelta(days=13))
    await lab.quiet()
    assert lab.row().status == "trialing"
    await lab.env.sleep(timedelta(days=2))
    await lab.row_is(plan="pro", status="active")


async def test_a_failed_payment_without_payment_in_grace_moves_to_free(lab: Lab) -> None:
    now = await lab.now()
    await _active_pro(lab, now + 30 * DAY)
    await lab.send(invoice_event(lab.org, "invoice.payment_failed", created=now + 5))
    await lab.row_is(plan="pro", status="past_due")
    grace = lab.row().grace_until
    assert grace is not None and int(grace.timestamp()) == pytest.approx(now + 7 * DAY, abs=60)
    await lab.env.sleep(timedelta(days=6))
    await lab.quiet()
    assert lab.row().plan == "pro"
    await lab.env.sleep(timedelta(days=2))
    await lab.row_is(plan="free", status="unpaid", grace_until=None)
    await lab.until("owners mailed", lambda: len(outbox_to(lab.url, lab.org.owners)) == 2)
    mails = outbox_to(lab.url, lab.org.owners)
    assert sorted(m.to for m in mails) == sorted(lab.org.owners)
    assert all("Free" in m.subject and "Nothing was deleted" in m.body for m in mails)
    assert outbox_to(lab.url, [lab.org.admin]) == []  # owners only
    assert stack_names(lab.url, lab.org.id) == ["lab0", "lab1", "lab2"]  # nothing deleted
    # The run's history (events, timers, activities) replays on the code as it is.
    handle = lab.client.get_workflow_handle(subscription_workflow_id(lab.org.id))
    await Replayer(workflows=[ProvisionSubscription]).replay_workflow(await handle.fetch_history())


async def test_payment_within_the_grace_keeps_the_plan(lab: Lab) -> None:
    now = await lab.now()
    await _active_pro(lab, now + 30 * DAY)
    await lab.send(invoice_event(lab.org, "invoice.payment_failed", created=now + 5))
    await lab.row_is(status="past_due")
    await lab.env.sleep(timedelta(days=3))
    await lab.send(invoice_event(lab.org, "invoice.paid", created=now + 3 * DAY))
    await lab.row_is(plan="pro", status="active", grace_until=None)
    await lab.env.sleep(timedelta(days=10))  # well past where the grace would have ended
    await lab.quiet()
    row = lab.row()
    assert (row.plan, row.status, row.grace_until) == ("pro", "active", None)
    assert outbox_to(lab.url, lab.org.owners) == []
    # The grace timer was cancelled, not left to fire.
    handle = lab.client.get_workflow_handle(subscription_workflow_id(lab.org.id))
    kinds = [e.event_type async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_TIMER_CANCELED in kinds


async def test_a_downgrade_waits_for_the_period_end(lab: Lab) -> None:
    now = await lab.now()
    end = now + 30 * DAY
    await lab.send(
        subscription_event(
            lab.org, "customer.subscription.created", created=now, price=PRICE_TEAM, period_end=end
        )
    )
    await lab.row_is(plan="team", status="active")
    await lab.send(
        subscription_event(
            lab.org,
            "customer.subscription.updated",
            created=now + 10,
            price=PRICE_PRO,
            period_end=end,
        )
    )
    await lab.row_is(plan="team", pending_plan="pro")
    await lab.env.sleep(timedelta(days=29))
    await lab.quiet()
    assert (lab.row().plan, lab.row().pending_plan) == ("team", "pro")
    await lab.env.sleep(timedelta(days=2))
    await lab.row_is(plan="pro", pending_plan=None, status="active")


async def test_an_upgrade_applies_at_once(lab: Lab) -> None:
    now = await lab.now()
    end = now + 30 * DAY
    await _active_pro(lab, end)
    await lab.send(
        subscription_event(
            lab.org,
            "customer.subscription.updated",
            created=now + 10,
            price=PRICE_TEAM,
            period_end=end,
        )
    )
    await lab.row_is(plan="team", pending_plan=None)


async def test_cancel_at_period_end_moves_to_free_then(lab: Lab) -> None:
    now = await lab.now()
    end = now + 20 * DAY
    await _active_pro(lab, end)
    await lab.send(
        subscription_event(
            lab.org,
            "customer.subscription.updated",
            created=now + 10,
            period_end=end,
            cancel_at_period_end=True,
        )
    )
    await lab.row_is(plan="pro", cancel_at_period_end=True)
    await lab.env.sleep(timedelta(days=21))
    await lab.row_is(plan="free", status="canceled", cancel_at_period_end=False)
    assert stack_names(lab.url, lab.org.id) == ["lab0", "lab1", "lab2"]


async def test_the_same_event_id_twice_is_applied_once(lab: Lab) -> None:
    now = await lab.now()
    end = now + 30 * DAY
    await lab.send(
        subscription_event(
            lab.org, "customer.subscription.created", created=now, price=PRICE_TEAM, period_end=end
        )
    )
    downgrade = subscription_event(
        lab.org, "customer.subscription.updated", created=now + 10, price=PRICE_PRO, period_end=end
    )
    await lab.send(downgrade)
    await lab.row_is(plan="team", pending_plan="pro")
    # The owner changes their mind (same second), then Stripe redelivers the downgrade.
    await lab.send(
        subscription_event(
            lab.org,
            "customer.subscription.updated",
            created=now + 10,
            price=PRICE_TEAM,
            period_end=end,
        )
    )
    await lab.row_is(plan="team", pending_plan=None)
    await lab.send(downgrade)
    await lab.quiet()
    state = await lab.state()
    assert state.applied.count(downgrade["id"]) == 1
    assert (state.plan, state.pending_plan) == ("team", None)
    assert (lab.row().plan, lab.row().pending_plan) == ("team", None)


async def test_continue_as_new_keeps_the_state(lab: Lab) -> None:
    now = await lab.now()
    end = now + 30 * DAY
    wid = subscription_workflow_id(lab.org.id)
    first = await lab.send(
        checkout_completed(lab.org, created=now, plan="team"), history_threshold=20
    )
    await lab.row_is(plan="team", status="active")
    downgrade = subscription_event(
        lab.org, "customer.subscription.updated", created=now + 10, price=PRICE_PRO, period_end=end
    )
    await lab.send(downgrade)
    await lab.row_is(plan="team", pending_plan="pro")
    for n in range(8):  # events that change nothing, to grow the history past 20 events
        await lab.send(invoice_event(lab.org, "invoice.paid", created=now + n))

    async def continued() -> bool:
        return (await lab.client.get_workflow_handle(wid).describe()).run_id != first.run_id

    await lab.until("continued as new", continued)
    # The new run knows what the old one applied: the owner reverts the downgrade, Stripe
    # redelivers the old downgrade, and it stays dropped.
    await lab.send(
        subscription_event(
            lab.org,
            "customer.subscription.updated",
            created=now + 10,
            price=PRICE_TEAM,
            period_end=end,
        )
    )
    await lab.row_is(plan="team", pending_plan=None)
    await lab.send(downgrade)
    await lab.send(invoice_event(lab.org, "invoice.payment_failed", created=now + 20))
    await lab.row_is(status="past_due")  # applied after the redelivery, in order
    row = lab.row()
    assert (row.plan, row.pending_plan, row.stripe_customer_id) == ("team", None, lab.org.customer)
    state = await lab.state()
    assert state.applied.count(downgrade["id"]) == 1
    assert (state.plan, state.customer, state.subscription) == (
        "team",
        lab.org.customer,
        lab.org.subscription,
    )


async def test_a_late_update_older_than_the_deletion_is_stale(lab: Lab) -> None:
    now = await lab.now()
    end = now + 30 * DAY
    await _active_pro(lab, end)
    late = subscription_event(
        lab.org, "customer.subscription.updated", created=now + 5, price=PRICE_TEAM, period_end=end
    )
    await lab.send(
        subscription_event(
            lab.org,
            "customer.subscription.deleted",
            created=now + 10,
            status="canceled",
            period_end=end,
        )
    )
    await lab.row_is(plan="free", status="canceled")
    await lab.send(late)
    await lab.quiet()
    assert (lab.row().plan, lab.row().status) == ("free", "canceled")
    assert late["id"] in (await lab.state()).applied
