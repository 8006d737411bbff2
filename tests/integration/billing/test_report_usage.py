"""ReportUsage on a real Temporal dev server, with its real activities, SQLite and the Stripe
stand-in: each closed hour reported once with the right values, a re-run sends nothing, a
crash between Stripe's answer and the mark is safe, the open hour waits, billing off counts
nothing; and the hourly schedule is created and brought up to date idempotently."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.worker import Worker

from kombify.activities.usage import UsageActivities
from kombify.billing.usage import API_CALLS, DEPLOY_MINUTES, HOUR, closed_before, hour_of
from kombify.billing.usage_schedule import EVERY, OFFSET, ensure_usage_schedule
from kombify.contracts.usage import SCHEDULE_ID, ReportUsageInput, ReportUsageResult
from kombify.db.billing_tables import OrgBilling, UsageRecord
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.db.models import Deployment, Organisation, Stack
from kombify.settings import Settings
from kombify.workers.main import ensure_schedules
from kombify.workflows.usage import ReportUsage
from tests.support.stripe_standin import StripeStandin

MINUTES_EVENT = "kombify_deploy_minutes"
CALLS_EVENT = "kombify_api_calls"


@dataclass
class Lab:
    settings: Settings
    client: Client
    task_queue: str

    def db(self) -> Session:
        return Session(get_engine(self.settings.resolved_database_url))

    async def report(self) -> ReportUsageResult:
        return await self.client.execute_workflow(
            ReportUsage.run,
            ReportUsageInput(),
            id=f"billing/report-usage/{uuid.uuid4().hex[:8]}",
            task_queue=self.task_queue,
            execution_timeout=timedelta(minutes=2),
        )


def _settings(tmp_path: Path, task_queue: str, standin: StripeStandin | None) -> Settings:
    billing: dict[str, Any] = (
        {
            "stripe_api_key": standin.api_key,
            "stripe_webhook_secret": "whsec_usage_test",
            "stripe_api_base": standin.base_url,
        }
        if standin
        else {}
    )
    return Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'usage.db'}",
        task_queue=task_queue,
        **billing,
    )


@pytest.fixture
async def lab(
    request: pytest.FixtureRequest, tmp_path: Path, temporal_address: str, task_queue: str
) -> AsyncIterator[Lab]:
    standin: StripeStandin | None = (
        request.getfixturevalue("stripe_standin") if request.param else None
    )
    settings = _settings(tmp_path, task_queue, standin)
    upgrade(settings.resolved_database_url)
    client = await Client.connect(temporal_address)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[ReportUsage],
            activities=UsageActivities(settings).all(),
            activity_executor=executor,
        ):
            yield Lab(settings, client, task_queue)


def _org(db: Session, slug: str, customer: str | None) -> str:
    org = Organisation(slug=slug, name=slug)
    db.add(org)
    db.commit()
    if customer is not None:
        db.add(OrgBilling(organisation_id=org.id, plan="pro", status="active",
                          stripe_customer_id=customer))  # fmt: skip
        db.commit()
    return org.id


def _run(db: Session, org: str, start: datetime, end: datetime | None) -> None:
    stack = Stack(organisation_id=org, name=f"lab-{uuid.uuid4().hex[:6]}", stackkit="base-homelab")
    db.add(stack)
    db.commit()
    state = "running" if end is None else "succeeded"
    db.add(Deployment(stack_id=stack.id, revision=1, workflow_id="w", started_at=start,
                      finished_at=end, state=state))  # fmt: skip
    db.commit()


def _calls(db: Session, org: str, hour: datetime, n: int) -> None:
    db.add(UsageRecord(organisation_id=org, meter=API_CALLS, hour=hour, quantity=n))
    db.commit()


def _received(standin: StripeStandin) -> dict[str, tuple[str, str, str, int]]:
    """Identifier → (event name, customer, value, timestamp) of each event Stripe took."""
    found = {}
    for item in standin.control.meter_events():
        event = item["event"]
        assert item["problem"] is None, item
        payload = event["payload"]
        found[event["identifier"]] = (
            event["event_name"], payload["stripe_customer_id"], payload["value"], event["timestamp"]
        )  # fmt: skip
    return found


def _ident(org: str, meter: str, hour: datetime) -> str:
    return f"{org}:{meter}:{hour.isoformat()}"


@pytest.mark.parametrize("lab", [True], indirect=True)
async def test_each_closed_hour_is_reported_once(lab: Lab, stripe_standin: StripeStandin) -> None:
    stripe = stripe_standin.client()
    for event in (MINUTES_EVENT, CALLS_EVENT):
        stripe.v1.billing.meters.create(params={
            "display_name": event, "event_name": event, "default_aggregation": {"formula": "sum"},
        })  # fmt: skip
    cus_a = stripe.v1.customers.create(params={"email": "a@example.org"}).id
    cus_b = stripe.v1.customers.create(params={"email": "b@example.org"}).id

    now = datetime.now(UTC)
    closed = closed_before(now)  # hours before this are closed and settled
    h1, h2, h3 = closed - 3 * HOUR, closed - 2 * HOUR, closed - HOUR
    current = hour_of(now)  # open (and maybe the hour before it is still settling)
    with lab.db() as db:
        a, b = _org(db, "a", cus_a), _org(db, "b", cus_b)
        c = _org(db, "c", None)  # no Stripe customer: nothing of it is reported
        _calls(db, a, h1, 5)
        _calls(db, a, h3, 7)
        _calls(db, a, current, 11)
        _calls(db, b, h2, 3)
        _calls(db, c, h1, 100)
        _run(db, a, h2 + timedelta(minutes=10), h2 + timedelta(minutes=24, seconds=1))  # 15
        _run(db, b, h3 + timedelta(minutes=50), None)  # still going: 10 in h3
        _run(db, c, h2, h3)

    first = await lab.report()
    expected = {
        _ident(a, API_CALLS, h1): (CALLS_EVENT, cus_a, "5", int(h1.timestamp())),
        _ident(a, DEPLOY_MINUTES, h2): (MINUTES_EVENT, cus_a, "15", int(h2.timestamp())),
        _ident(a, API_CALLS, h3): (CALLS_EVENT, cus_a, "7", int(h3.timestamp())),
        _ident(b, API_CALLS, h2): (CALLS_EVENT, cus_b, "3", int(h2.timestamp())),
        _ident(b, DEPLOY_MINUTES, h3): (MINUTES_EVENT, cus_b, "10", int(h3.timestamp())),
    }
    assert _received(stripe_standin) == expected
    assert (first.sent, first.already_reported, first.organisations, first.failed) == (
        5, 0, 2, {}
    )  # fmt: skip
    assert first.until == closed.isoformat()
    with lab.db() as db:
        rows = {(r.organisation_id, r.meter, r.hour): r for r in db.exec(select(UsageRecord))}
    # Deploy minutes of c were measured (billing is on) but it has no customer to report to.
    assert rows[(c, DEPLOY_MINUTES, h2)].quantity == 60
    assert rows[(c, DEPLOY_MINUTES, h2)].reported_at is None
    assert rows[(c, API_CALLS, h1)].reported_at is None
    # The open hour is not reported.
    assert rows[(a, API_CALLS, current)].reported_at is None
    assert _ident(a, API_CALLS, current) not in _received(stripe_standin)
    reported = {key for key, row in rows.items() if row.reported_at is not None}
    assert reported == {
        (a, API_CALLS, h1), (a, DEPLOY_MINUTES, h2), (a, API_CALLS, h3),
        (b, API_CALLS, h2), (b, DEPLOY_MINUTES, h3),
    }  # fmt: skip

    # Again: nothing new at Stripe.
    again = await lab.report()
    assert (again.sent, again.already_reported, again.organisations) == (0, 0, 0)
    assert _received(stripe_standin) == expected

    # A crash after Stripe took an event, before the mark: the next run sends the same event
    # again (same identifier, same idempotency key), Stripe records nothing new, the record is
    # marked; Stripe's totals stay as they were.
    with lab.db() as db:
        row = db.exec(
            select(UsageRecord).where(
                UsageRecord.organisation_id == a,
                UsageRecord.meter == API_CALLS,
                UsageRecord.hour == h3,
            )  # fmt: skip
        ).one()
        row.reported_at = None
        row_id = row.id
        db.add(row)
        db.commit()
    before = len(stripe_standin.control.requests(path="/v1/billing/meter_events"))
    resent = await lab.report()
    assert resent.failed == {} and resent.organisations == 1
    sent = stripe_standin.control.requests(path="/v1/billing/meter_events")[before:]
    assert [r["params"]["identifier"] for r in sent] == [_ident(a, API_CALLS, h3)]
    # Within Stripe's idempotency window (24 hours) the client's idempotency key
    # (kombify-meter-<identifier>-<value>) gets the first answer replayed; after it, the
    # identifier is refused (400 resource_already_exists) and counted as already reported
    # (test_an_identifier_stripe_has_already_is_refused_and_counts_as_reported).
    assert [(r["status"], r["replayed"]) for r in sent] == [(200, True)]
    assert (resent.sent, resent.already_reported) == (1, 0)
    assert _received(stripe_standin) == expected
    with lab.db() as db:
        assert db.get(UsageRecord, row_id).reported_at is not None  # type: ignore[union-attr]


@pytest.mark.parametrize("lab", [False], indirect=True)
async def test_billing_off_counts_and_reports_nothing(lab: Lab) -> None:
    assert not lab.settings.billing_enabled
    closed = closed_before(datetime.now(UTC))
    with lab.db() as db:
        a = _org(db, "a", "cus_unused")
        _run(db, a, closed - 2 * HOUR, closed - HOUR)
    result = await lab.report()
    assert (result.measured, result.organisations, result.sent) == (0, 0, 0)
    with lab.db() as db:
        assert db.exec(select(UsageRecord)).all() == []


@pytest.fixture
def usage_schedule(temporal_address: str) -> Iterator[str]:
    """The schedule's id; it is Temporal-wide, so it is removed after the test."""
    yield SCHEDULE_ID

    async def delete() -> None:
        client = await Client.connect(temporal_address)
        await client.get_schedule_handle(SCHEDULE_ID).delete()

    import asyncio

    asyncio.run(delete())


def test_the_hourly_schedule_is_made_once_and_kept_up_to_date(
    usage_schedule: str, temporal_address: str, tmp_path: Path, stripe_standin: StripeStandin
) -> None:
    import asyncio

    async def scenario() -> None:
        client = await Client.connect(temporal_address)
        off = _settings(tmp_path, "queue-off", None)
        await ensure_schedules(client, off)  # billing off: no usage schedule
        ids = [s.id async for s in await client.list_schedules()]
        assert usage_schedule not in ids

        first = _settings(tmp_path, "queue-one", stripe_standin)
        await ensure_schedules(client, first)
        handle = client.get_schedule_handle(usage_schedule)
        await handle.pause(note="paused by an operator")
        second = _settings(tmp_path, "queue-two", stripe_standin)
        await ensure_usage_schedule(client, second)  # a worker of another queue starts
        await ensure_usage_schedule(client, second)
        found = await handle.describe()
        action = found.schedule.action
        assert getattr(action, "workflow", None) == "ReportUsage"
        assert getattr(action, "task_queue", None) == "queue-two"
        assert [(i.every, i.offset) for i in found.schedule.spec.intervals] == [(EVERY, OFFSET)]
        assert found.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert found.schedule.state.paused  # the operator's pause is kept
        assert [s.id async for s in await client.list_schedules()].count(usage_schedule) == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("lab", [True], indirect=True)
async def test_an_organisation_stripe_refuses_does_not_hold_up_the_others(
    lab: Lab, stripe_standin: StripeStandin
) -> None:
    stripe = stripe_standin.client()
    stripe.v1.billing.meters.create(params={
        "display_name": "calls", "event_name": CALLS_EVENT,
        "default_aggregation": {"formula": "sum"},
    })  # fmt: skip
    customer = stripe.v1.customers.create(params={"email": "ok@example.org"}).id
    hour = closed_before(datetime.now(UTC)) - HOUR
    with lab.db() as db:
        good = _org(db, "good", customer)
        # An id this long makes an identifier over Stripe's 100 characters: refused (400).
        odd = Organisation(id="o" * 90, slug="odd", name="odd")
        db.add(odd)
        db.commit()
        db.add(OrgBilling(organisation_id="o" * 90, stripe_customer_id=customer))
        db.commit()
        _calls(db, good, hour, 4)
        _calls(db, "o" * 90, hour, 9)

    result = await lab.report()
    assert (result.sent, result.organisations) == (1, 2)
    assert list(result.failed) == ["o" * 90]
    assert "Stripe refused a meter event (400)" in result.failed["o" * 90]
    assert "identifier" in result.failed["o" * 90]
    assert list(_received(stripe_standin)) == [_ident(good, API_CALLS, hour)]
    # Refused, not retried: one request for it; its record waits for the next run.
    sent = stripe_standin.control.requests(path="/v1/billing/meter_events")
    assert [r["status"] for r in sent].count(400) == 1
    with lab.db() as db:
        waiting = db.exec(select(UsageRecord).where(UsageRecord.organisation_id == "o" * 90)).one()
        assert waiting.reported_at is None


@pytest.mark.parametrize("lab", [True], indirect=True)
async def test_an_identifier_stripe_has_already_is_refused_and_counts_as_reported(
    lab: Lab, stripe_standin: StripeStandin
) -> None:
    stripe = stripe_standin.client()
    stripe.v1.billing.meters.create(params={
        "display_name": "calls", "event_name": CALLS_EVENT,
        "default_aggregation": {"formula": "sum"},
    })  # fmt: skip
    customer = stripe.v1.customers.create(params={"email": "a@example.org"}).id
    hour = closed_before(datetime.now(UTC)) - HOUR
    with lab.db() as db:
        a = _org(db, "a", customer)
        _calls(db, a, hour, 6)
    # Sent before (by a run whose mark was lost), without this client's idempotency key.
    stripe.v1.billing.meter_events.create(params={
        "event_name": CALLS_EVENT, "identifier": _ident(a, API_CALLS, hour),
        "timestamp": int(hour.timestamp()),
        "payload": {"stripe_customer_id": customer, "value": "6"},
    })  # fmt: skip

    result = await lab.report()
    assert (result.sent, result.already_reported, result.failed) == (0, 1, {})
    sent = stripe_standin.control.requests(path="/v1/billing/meter_events")
    assert [(r["params"]["identifier"], r["status"]) for r in sent] == [
        (_ident(a, API_CALLS, hour), 200),
        (_ident(a, API_CALLS, hour), 400),
    ]
    assert _received(stripe_standin) == {
        _ident(a, API_CALLS, hour): (CALLS_EVENT, customer, "6", int(hour.timestamp()))
    }
    with lab.db() as db:
        assert db.exec(select(UsageRecord)).one().reported_at is not None
    assert (await lab.report()).organisations == 0
