"""Usage records on SQLite and PostgreSQL: the adding upsert, deploy minutes of closed hours,
this month's usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from kombify.billing.usage import (
    API_CALLS,
    DEPLOY_MINUTES,
    ApiCallCounter,
    add_counts,
    flush_api_calls,
    measure_deploy_minutes,
    month_usage,
)
from kombify.db.billing_tables import UsageRecord
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.db.models import Deployment, Organisation, Stack

NOW = datetime(2026, 12, 3, 10, 20, tzinfo=UTC)
H10 = datetime(2026, 12, 3, 10, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def _session(database_url: str) -> Session:
    upgrade(database_url)
    return Session(get_engine(database_url))


def _org(session: Session, slug: str) -> str:
    org = Organisation(slug=slug, name=slug)
    session.add(org)
    session.commit()
    return org.id


def _run(session: Session, org: str, start: datetime, end: datetime | None) -> None:
    stack = session.exec(select(Stack).where(Stack.organisation_id == org)).first()
    if stack is None:
        stack = Stack(organisation_id=org, name="lab", stackkit="base-homelab")
        session.add(stack)
        session.commit()
    state = "running" if end is None else "succeeded"
    session.add(
        Deployment(
            stack_id=stack.id,
            revision=1,
            workflow_id="w",
            state=state,
            started_at=start,
            finished_at=end,
        )  # fmt: skip
    )
    session.commit()


def _records(session: Session, meter: str) -> dict[tuple[str, datetime], int]:
    rows = session.exec(
        select(UsageRecord).where(UsageRecord.meter == meter).order_by(col(UsageRecord.hour))
    )
    return {(r.organisation_id, r.hour): r.quantity for r in rows}


def test_counts_are_added_to_what_is_stored(database_url: str) -> None:
    with _session(database_url) as session:
        a, b = _org(session, "a"), _org(session, "b")
        assert add_counts(session, {(a, H10): 3, (b, H10): 2}, now=NOW) == 2
        add_counts(session, {(a, H10): 4, (b, H10 + hours(1)): 0}, now=NOW)  # 0: nothing
        assert _records(session, API_CALLS) == {(a, H10): 7, (b, H10): 2}


def test_counts_of_an_hour_that_may_be_reported_go_to_the_current_hour(
    database_url: str,
) -> None:
    with _session(database_url) as session:
        a = _org(session, "a")
        # 10:20: 09:00 ended 20 minutes ago (it may be reported), 10:00 is the current hour.
        add_counts(session, {(a, H10 - hours(1)): 5, (a, H10): 1}, now=NOW)
        # 10:04: 09:00 ended 4 minutes ago: it is still 09:00's.
        add_counts(session, {(a, H10 - hours(1)): 2}, now=H10 + timedelta(minutes=4))
        assert _records(session, API_CALLS) == {(a, H10 - hours(1)): 2, (a, H10): 6}


def test_a_failed_flush_keeps_the_counts_for_the_next(database_url: str) -> None:
    counter = ApiCallCounter()
    with _session(database_url) as session:
        a = _org(session, "a")
        counter.add("no-such-organisation")  # refused by the foreign key: nothing is stored
        counter.add(a)
        try:
            flush_api_calls(counter, session)
        except Exception:  # noqa: BLE001 - the driver's own IntegrityError, either engine
            pass
        else:
            raise AssertionError("a count of an unknown organisation was stored")
        assert _records(session, API_CALLS) == {}
        assert counter.pending(a) == 1
        counter.take()
        counter.add(a, calls=2)
        flush_api_calls(counter, session)
        assert list(_records(session, API_CALLS).values()) == [2]
        assert counter.pending(a) == 0


def test_deploy_minutes_are_stored_for_closed_hours_once(database_url: str) -> None:
    with _session(database_url) as session:
        a, b = _org(session, "a"), _org(session, "b")
        _run(
            session,
            a,
            H10 - hours(2) + timedelta(minutes=50),
            H10 - hours(1) + timedelta(seconds=61),
        )
        _run(session, b, H10 - hours(1) + timedelta(minutes=59), None)  # still going
        _run(session, a, H10 + timedelta(minutes=1), H10 + timedelta(minutes=5))  # open hour
        assert measure_deploy_minutes(session, until=H10) == 3
        expected = {
            (a, H10 - hours(2)): 10,
            (a, H10 - hours(1)): 2,
            (b, H10 - hours(1)): 1,
        }
        assert _records(session, DEPLOY_MINUTES) == expected
        assert measure_deploy_minutes(session, until=H10) == 0  # nothing new
        # A reported hour is never changed; an unreported one follows the runs.
        rows = {(r.organisation_id, r.hour): r for r in session.exec(select(UsageRecord))}
        rows[(a, H10 - hours(2))].reported_at = NOW
        rows[(a, H10 - hours(2))].quantity = 9
        rows[(b, H10 - hours(1))].quantity = 99
        session.commit()
        assert measure_deploy_minutes(session, until=H10) == 1
        assert _records(session, DEPLOY_MINUTES) == {**expected, (a, H10 - hours(2)): 9}


def test_this_months_usage(database_url: str) -> None:
    with _session(database_url) as session:
        a, b = _org(session, "a"), _org(session, "b")
        month = datetime(2026, 12, 1, tzinfo=UTC)
        _run(session, a, month - hours(1), month + timedelta(minutes=30))  # half last month's
        _run(session, a, H10 - timedelta(minutes=3), None)  # 3 min last hour, 20 this one
        _run(session, b, H10, NOW)
        session.add(
            UsageRecord(
                organisation_id=a, meter=DEPLOY_MINUTES, hour=month, quantity=31, reported_at=NOW
            )
        )
        session.add_all(
            UsageRecord(organisation_id=a, meter=API_CALLS, hour=hour, quantity=n)
            for hour, n in ((month - hours(1), 1000), (month, 5), (H10, 7))
        )
        session.commit()
        usage = month_usage(session, organisation_id=a, now=NOW, unflushed_calls=2)
        assert (usage.deploy_minutes, usage.api_calls) == (31 + 3 + 20, 5 + 7 + 2)
        assert usage.reported_through == month + hours(1)
        other = month_usage(session, organisation_id=b, now=NOW)
        assert (other.deploy_minutes, other.api_calls, other.reported_through) == (20, 0, None)
