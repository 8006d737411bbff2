"""ProvisionSubscription: one organisation's subscription, from checkout to cancellation.

The webhook route hands each verified Stripe event to the organisation's workflow by
signal-with-start (workflow id ``kombify-subscription.<organisation id>``). The workflow
applies the events in the order they arrive, once each, and keeps the timers Stripe does not
keep for kombify: the end of a trial, the end of a period (a downgrade or a cancellation takes
effect then) and the end of a grace period after a failed payment (the organisation moves to
Free and its owners are told). Activities write the result to ``org_billing``; the workflow
itself does no I/O and reads time only through ``workflow.now()``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from kombify.billing.plans import is_plan_id, plan_by_id
    from kombify.contracts.billing import (
        EVENT_SIGNAL,
        BillingRecord,
        BillingSignal,
        DowngradeNotice,
        NoticeResult,
        PlanQuery,
        SubscriptionInput,
        SubscriptionState,
    )

DAY_S = 86_400
# The database may be away for a while; a plan change must still land, so retry without end.
_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
_TIMEOUT = timedelta(seconds=30)
# Stripe's subscription statuses kombify keeps as they are; the others are mapped in _status.
_KEPT_STATUSES = {"active", "trialing", "past_due"}


def _rank(plan: str) -> int:
    return plan_by_id(plan).rank if is_plan_id(plan) else 0


@workflow.defn(name="ProvisionSubscription")
class ProvisionSubscription:
    """Follows one organisation's subscription; never ends (continues as new instead)."""

    def __init__(self) -> None:
        self._org = ""
        self._state = SubscriptionState()
        self._written: BillingRecord | None = None

    @workflow.signal(name=EVENT_SIGNAL)
    def stripe_event(self, event: BillingSignal) -> None:
        """A verified Stripe event for this organisation; a redelivered id is dropped."""
        if self._known(event.event_id):
            return
        self._state.queued.append(event)

    @workflow.query(name="state")
    def state(self) -> SubscriptionState:
        """The workflow's view: plan in force, status, timers, queued events."""
        return self._state

    def _known(self, event_id: str) -> bool:
        return event_id in self._state.applied or any(
            queued.event_id == event_id for queued in self._state.queued
        )

    @workflow.run
    async def run(self, request: SubscriptionInput) -> None:
        self._org = request.organisation_id
        early = self._state.queued  # signals that came with the start
        if request.state is not None:
            self._state = request.state
            self._written = self._record()
        else:
            await self._load()
        for event in early:
            if not self._known(event.event_id):
                self._state.queued.append(event)
        while True:
            await self._wait()
            while self._state.queued:
                event = self._state.queued[0]
                await self._apply(event)
                self._state.queued.pop(0)
                self._state.applied.append(event.event_id)
                del self._state.applied[: -request.remembered_events]
            await self._timers()
            await self._write()
            info = workflow.info()
            if (
                info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= request.history_threshold
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(replace(request, state=self._state))

    # ---- waiting --------------------------------------------------------------------------

    def _now(self) -> float:
        return workflow.now().timestamp()

    def _deadline(self) -> int | None:
        """When the next timer is due (Unix seconds), if any runs."""
        s = self._state
        due: list[int] = []
        if s.status == "trialing" and s.trial_end is not None:
            due.append(s.trial_end)
        if (s.pending_plan or s.cancel_at_period_end) and s.current_period_end is not None:
            due.append(s.current_period_end)
        if s.grace_until is not None:
            due.append(s.grace_until)
        return min(due) if due else None

    async def _wait(self) -> None:
        """Until an event is queued or the next timer is due (a durable timer, re-armed each
        round from the state, so a changed period or a cancelled grace moves or drops it)."""
        if self._state.queued:
            return
        deadline = self._deadline()
        if deadline is None:
            await workflow.wait_condition(lambda: bool(self._state.queued))
            return
        left = deadline - self._now()
        if left <= 0:
            return
        try:
            await workflow.wait_condition(
                lambda: bool(self._state.queued), timeout=timedelta(seconds=left)
            )
        except TimeoutError:
            pass

    async def _timers(self) -> None:
        s = self._state
        now = self._now()
        if s.status == "trialing" and s.trial_end is not None and s.trial_end <= now:
            s.status = "active"
        if s.current_period_end is not None and s.current_period_end <= now:
            if s.cancel_at_period_end:
                self._to_free("canceled")
            elif s.pending_plan:
                s.plan, s.pending_plan = s.pending_plan, None
        if s.grace_until is not None and s.grace_until <= now:
            ended, was = s.grace_until, s.plan
            s.grace_until = None
            if was != "free":
                s.plan, s.pending_plan, s.status = "free", None, "unpaid"
                await self._notify(was, ended)

    # ---- events ---------------------------------------------------------------------------

    async def _apply(self, event: BillingSignal) -> None:
        s = self._state
        if event.customer:
            s.customer = event.customer
        if event.subscription:
            s.subscription = event.subscription
        if event.type == "checkout.session.completed":
            await self._checkout(event)
        elif event.type in ("customer.subscription.created", "customer.subscription.updated"):
            await self._subscription(event)
        elif event.type == "customer.subscription.deleted":
            # An update older than the deletion, arriving late, must not bring the plan back.
            s.subscription_seen = max(s.subscription_seen, event.created)
            self._to_free("canceled")
        elif event.type == "invoice.payment_failed":
            if s.grace_until is None and s.plan != "free":
                s.grace_until = int(self._now()) + event.grace_days * DAY_S
            if s.status in ("active", "trialing"):
                s.status = "past_due"
        elif event.type == "invoice.paid":
            s.grace_until = None  # the grace timer is dropped with it
            if s.status == "unpaid" and s.paid_plan != "free":
                s.plan = s.paid_plan  # paid after the grace ran out: the plan comes back
            if s.status in ("past_due", "unpaid", "checkout"):
                s.status = "active"

    async def _plan_of(self, event: BillingSignal) -> str:
        if event.plan and is_plan_id(event.plan) and event.plan != "free":
            return event.plan
        if not event.price_id:
            return ""
        plan: str = await workflow.execute_activity(
            "PlanForPrice",
            PlanQuery(organisation_id=self._org, price_id=event.price_id),
            result_type=str,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
        if not plan:
            workflow.logger.warning(
                "price %s of event %s is no plan of kombify's", event.price_id, event.event_id
            )
        return plan

    async def _checkout(self, event: BillingSignal) -> None:
        s = self._state
        plan = await self._plan_of(event)
        if not plan:
            if s.status in ("none", "canceled"):
                s.status = "checkout"  # the subscription's own event will name the plan
            return
        if s.status in ("active", "trialing") and s.paid_plan == plan:
            return  # the subscription's event came first and said as much
        s.plan = s.paid_plan = plan
        s.pending_plan = None
        if s.status not in ("trialing", "past_due"):
            s.status = "active"

    async def _subscription(self, event: BillingSignal) -> None:
        s = self._state
        if event.created < s.subscription_seen:
            workflow.logger.info("event %s is older than one applied: stale", event.event_id)
            return
        s.subscription_seen = event.created
        if event.status in ("canceled", "incomplete_expired"):
            self._to_free("canceled")
            return
        if event.current_period_end is not None:
            s.current_period_end = event.current_period_end
        if event.trial_end is not None:
            s.trial_end = event.trial_end
        if event.cancel_at_period_end is not None:
            s.cancel_at_period_end = event.cancel_at_period_end
        if event.status in _KEPT_STATUSES:
            s.status = event.status
        elif event.status == "unpaid" and s.status != "unpaid":
            s.status = "past_due"
        elif event.status == "incomplete" and s.status in ("none", "canceled"):
            s.status = "checkout"
        plan = await self._plan_of(event)
        if not plan:
            return
        s.paid_plan = plan
        if s.status not in ("active", "trialing"):
            return  # not paid for (yet): the plan comes with the payment
        if _rank(plan) > _rank(s.plan) or s.plan == plan:
            s.plan, s.pending_plan = plan, None  # an upgrade: now (Stripe prorates)
        else:
            s.pending_plan = plan  # a downgrade: when the paid period ends

    def _to_free(self, status: str) -> None:
        s = self._state
        s.plan = s.paid_plan = "free"
        s.status = status
        s.pending_plan = None
        s.grace_until = None
        s.cancel_at_period_end = False

    # ---- activities -----------------------------------------------------------------------

    def _record(self) -> BillingRecord:
        s = self._state
        return BillingRecord(
            organisation_id=self._org,
            plan=s.plan,
            status=s.status,
            customer=s.customer,
            subscription=s.subscription,
            current_period_end=s.current_period_end,
            trial_end=s.trial_end,
            cancel_at_period_end=s.cancel_at_period_end,
            pending_plan=s.pending_plan,
            grace_until=s.grace_until,
        )

    async def _load(self) -> None:
        """Start from what ``org_billing`` says (a workflow started anew keeps the plan)."""
        stored: BillingRecord | None = await workflow.execute_activity(
            "LoadOrgBilling",
            self._org,
            result_type=BillingRecord | None,  # type: ignore[arg-type]
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
        if stored is None:
            return
        s = self._state
        s.plan = stored.plan
        s.paid_plan = stored.pending_plan or stored.plan
        s.status = stored.status
        s.customer, s.subscription = stored.customer, stored.subscription
        s.current_period_end, s.trial_end = stored.current_period_end, stored.trial_end
        s.cancel_at_period_end = stored.cancel_at_period_end
        s.pending_plan, s.grace_until = stored.pending_plan, stored.grace_until
        self._written = stored

    async def _write(self) -> None:
        record = self._record()
        if record == self._written:
            return
        await workflow.execute_activity(
            "WriteOrgBilling", record, start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY
        )
        self._written = record

    async def _notify(self, was: str, grace_until: int) -> None:
        if grace_until in self._state.downgrades_notified:
            return
        await self._write()  # the owners read the new plan when the mail arrives
        await workflow.execute_activity(
            "NotifyBillingDowngrade",
            DowngradeNotice(
                organisation_id=self._org,
                from_plan=was,
                reason="a payment failed and was not made within the grace period",
                reference=f"{self._org}:grace:{grace_until}",
            ),
            result_type=NoticeResult,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=_RETRY,
        )
        self._state.downgrades_notified.append(grace_until)
        del self._state.downgrades_notified[:-20]
