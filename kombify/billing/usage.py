"""Usage metering: API calls and deploy minutes per organisation and hour (``usage_record``).

API calls are counted in memory by each API process (:class:`ApiCallCounter`) and added to the
database by :func:`flush_api_calls` every ``KOMBIFY_USAGE_FLUSH_SECONDS`` and at shutdown.
Deploy minutes are computed from the runs (``Deployment.started_at``/``finished_at``) for each
closed hour when usage is reported (:func:`measure_deploy_minutes`). The ``ReportUsage``
workflow then sends each closed hour to Stripe once (:mod:`kombify.billing.usage_report`).

Hours are UTC and named by their start. An hour is *closed* for reporting once
:data:`REPORT_SETTLE` has passed since its end; counts that reach the database later than
:data:`FLUSH_LATE` after their hour ended are added to the current hour instead, so no count
lands in an hour that may have been reported already (the gap between the two is the margin
for a flush in flight).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from kombify.db.billing_tables import UsageRecord
from kombify.db.models import Deployment, Stack, new_id

log = logging.getLogger(__name__)

DEPLOY_MINUTES = "deploy_minutes"
API_CALLS = "api_calls"
METERS = (DEPLOY_MINUTES, API_CALLS)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
# Counts flushed later than this after their hour ended go to the current hour.
FLUSH_LATE = timedelta(minutes=5)
# An hour is reported once this long has passed since its end (more than FLUSH_LATE).
REPORT_SETTLE = timedelta(minutes=10)
# Stripe takes meter events with a timestamp within the past 35 days; a day less, to be safe.
REPORT_WINDOW = timedelta(days=34)

_TABLE: Table = UsageRecord.__table__  # type: ignore[attr-defined]


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour ``moment`` falls in (aware)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def closed_before(now: datetime) -> datetime:
    """Hours that start before this are closed and settled: they may be reported."""
    return hour_of(now - REPORT_SETTLE)


def whole_minutes(spent: timedelta) -> int:
    """``spent`` in minutes, rounded up (a started minute counts)."""
    return -(-spent // MINUTE) if spent > timedelta(0) else 0


# ---- deploy minutes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One deploy or destroy run of an organisation's stack; ``finished`` None: still going."""

    organisation_id: str
    started: datetime
    finished: datetime | None


def split_by_hour(
    runs: Iterable[Run], *, since: datetime, until: datetime
) -> dict[tuple[str, datetime], timedelta]:
    """Run time per organisation and hour, for the hours from ``since`` to ``until``.

    A run still going counts up to ``until``. Runs of one organisation that overlap each
    count (two stacks deploying at once use twice the minutes).

    Args:
        runs: The runs.
        since: Start of the first hour (an hour's start).
        until: Where counting stops (the end of the last hour, or now).

    Returns:
        ``(organisation_id, hour) → run time in that hour``; hours without any left out.
    """
    spent: dict[tuple[str, datetime], timedelta] = {}
    for run in runs:
        start = max(run.started, since)
        end = min(run.finished or until, until)
        hour = hour_of(start)
        while start < end:
            step = min(hour + HOUR, end)
            key = (run.organisation_id, hour)
            spent[key] = spent.get(key, timedelta(0)) + (step - start)
            start, hour = step, hour + HOUR
    return spent


def minutes_by_hour(
    runs: Iterable[Run], *, since: datetime, until: datetime
) -> dict[tuple[str, datetime], int]:
    """Deploy minutes per organisation and hour: each hour's total run time, rounded up."""
    spent = split_by_hour(runs, since=since, until=until)
    return {key: whole_minutes(time) for key, time in spent.items() if time > timedelta(0)}


def runs_between(
    session: Session, *, since: datetime, until: datetime, organisation_id: str | None = None
) -> list[Run]:
    """The runs that were going at some time from ``since`` to ``until``."""
    query = (
        select(Stack.organisation_id, Deployment.started_at, Deployment.finished_at)
        .join(Stack, col(Stack.id) == col(Deployment.stack_id))
        .where(
            col(Deployment.started_at) < until,
            or_(col(Deployment.finished_at).is_(None), col(Deployment.finished_at) > since),
        )
    )
    if organisation_id is not None:
        query = query.where(Stack.organisation_id == organisation_id)
    return [Run(org, started, finished) for org, started, finished in session.exec(query)]


def measure_deploy_minutes(session: Session, *, until: datetime) -> int:
    """Store the deploy minutes of every closed hour of the report window before ``until``.

    A reported hour is left as it is (it was billed); an unreported one gets the minutes
    computed now (the same, unless a run's record changed since). Safe to run again.

    Returns:
        How many records were written or changed.
    """
    since = until - REPORT_WINDOW
    minutes = minutes_by_hour(
        runs_between(session, since=since, until=until), since=since, until=until
    )
    if not minutes:
        return 0
    existing = {
        (row.organisation_id, hour_of(row.hour)): row
        for row in session.exec(
            select(UsageRecord).where(
                UsageRecord.meter == DEPLOY_MINUTES,
                col(UsageRecord.hour) >= since,
                col(UsageRecord.hour) < until,
            )
        )
    }
    changed = 0
    for (org, hour), quantity in sorted(minutes.items()):
        row = existing.get((org, hour))
        if row is None:
            row = UsageRecord(organisation_id=org, meter=DEPLOY_MINUTES, hour=hour)
        elif row.reported_at is not None or row.quantity == quantity:
            continue
        row.quantity = quantity
        session.add(row)
        changed += 1
    session.commit()
    return changed


# ---- API calls ------------------------------------------------------------------------------


class ApiCallCounter:
    """Authenticated API requests per organisation and hour, counted in this process's memory.

    Thread-safe: requests are counted from the event loop and from worker threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, datetime]] = Counter()

    def add(self, organisation_id: str, *, at: datetime | None = None, calls: int = 1) -> None:
        """Count ``calls`` requests of the organisation in the hour of ``at`` (default: now)."""
        hour = hour_of(at or datetime.now(UTC))
        with self._lock:
            self._counts[(organisation_id, hour)] += calls

    def take(self) -> dict[tuple[str, datetime], int]:
        """The counts so far, which the counter forgets (give them back if they are not kept)."""
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts

    def give_back(self, counts: Mapping[tuple[str, datetime], int]) -> None:
        """Counts :meth:`take` handed out that could not be stored: counted again."""
        with self._lock:
            self._counts.update(counts)

    def pending(self, organisation_id: str) -> int:
        """Requests of the organisation counted here and not stored yet."""
        with self._lock:
            return sum(n for (org, _), n in self._counts.items() if org == organisation_id)


def _upsert(session: Session) -> Any:
    """The dialect's ``INSERT`` with ``ON CONFLICT`` (SQLite and PostgreSQL both have it)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(_TABLE)
    if name == "sqlite":
        return sqlite.insert(_TABLE)
    raise RuntimeError(f"usage metering needs SQLite or PostgreSQL, not {name}")


def add_counts(
    session: Session,
    counts: Mapping[tuple[str, datetime], int],
    *,
    meter: str = API_CALLS,
    now: datetime | None = None,
) -> int:
    """Add ``counts`` to the organisations' usage records (one statement, committed).

    Counts of an hour that ended more than :data:`FLUSH_LATE` ago go to the current hour: that
    hour may have been reported already, and a reported record is never changed.

    Returns:
        How many (organisation, hour) records were added to.
    """
    now = now or datetime.now(UTC)
    late_before = hour_of(now - FLUSH_LATE)
    merged: Counter[tuple[str, datetime]] = Counter()
    for (org, hour), calls in counts.items():
        if calls > 0:
            merged[(org, hour if hour >= late_before else hour_of(now))] += calls
    if not merged:
        return 0
    rows = [
        {"id": new_id(), "organisation_id": org, "meter": meter, "hour": hour, "quantity": n}
        for (org, hour), n in sorted(merged.items())
    ]
    insert = _upsert(session).values(rows)
    statement = insert.on_conflict_do_update(
        index_elements=["organisation_id", "meter", "hour"],
        set_={"quantity": _TABLE.c.quantity + insert.excluded.quantity},
    )
    session.execute(statement)
    session.commit()
    return len(rows)


def flush_api_calls(counter: ApiCallCounter, session: Session) -> int:
    """Store the counter's counts; on failure they stay in the counter for the next flush."""
    counts = counter.take()
    try:
        return add_counts(session, counts)
    except Exception:
        session.rollback()
        counter.give_back(counts)
        raise


# ---- this month ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthUsage:
    """An organisation's metered usage since the month began (UTC)."""

    deploy_minutes: int
    api_calls: int
    reported_through: datetime | None


def month_start(now: datetime) -> datetime:
    """The first hour of ``now``'s month (UTC)."""
    return hour_of(now).replace(day=1, hour=0)


def month_usage(
    session: Session, *, organisation_id: str, now: datetime, unflushed_calls: int = 0
) -> MonthUsage:
    """The organisation's usage this month so far.

    Deploy minutes: what was recorded for an hour where there is a record (what Stripe was
    or will be told), else computed from the runs as the reporter will (the open hour up to
    now). API calls: the stored counts plus ``unflushed_calls``. ``reported_through``: the end
    of the newest hour of the organisation's usage that Stripe was told about (any month).
    """
    start = month_start(now)
    records = list(
        session.exec(
            select(UsageRecord).where(
                UsageRecord.organisation_id == organisation_id, col(UsageRecord.hour) >= start
            )
        )
    )
    runs = runs_between(session, since=start, until=now, organisation_id=organisation_id)
    minutes = {hour: n for (_, hour), n in minutes_by_hour(runs, since=start, until=now).items()}
    api_calls = unflushed_calls
    for row in records:
        if row.meter == DEPLOY_MINUTES:
            minutes[hour_of(row.hour)] = row.quantity
        elif row.meter == API_CALLS:
            api_calls += row.quantity
    newest = session.exec(
        select(UsageRecord.hour)
        .where(
            UsageRecord.organisation_id == organisation_id,
            col(UsageRecord.reported_at).is_not(None),
        )
        .order_by(col(UsageRecord.hour).desc())
        .limit(1)
    ).first()
    return MonthUsage(
        deploy_minutes=sum(minutes.values()),
        api_calls=api_calls,
        reported_through=hour_of(newest) + HOUR if newest is not None else None,
    )


def unreported_before(*, until: datetime) -> Any:
    """The condition of records that may be reported now: closed, in Stripe's window, unsent."""
    return and_(
        col(UsageRecord.reported_at).is_(None),
        col(UsageRecord.hour) < until,
        col(UsageRecord.hour) >= until - REPORT_WINDOW,
        col(UsageRecord.quantity) > 0,
    )
