"""Sending closed hours of usage to Stripe as meter events, each once.

Every record goes out as one meter event with the identifier ``<organisation id>:<meter>:<hour>``
and is then marked ``reported_at``. A record already marked is never sent again. A record sent
but not marked (the process died between Stripe's answer and the commit) is sent again with
the same identifier (and idempotency key): Stripe replays its first answer, or refuses the
identifier as a duplicate, which counts as reported; it records nothing new either way.
Stripe keeps identifiers for at least 24 hours, so the mark is the lasting guard and the
identifier covers the gap of a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import Session, col, select

from kombify.billing.usage import hour_of, unreported_before
from kombify.db.billing_tables import OrgBilling, UsageRecord
from kombify.db.models import utcnow


@dataclass(frozen=True)
class MeterEvent:
    """One hour of one meter of one organisation, as Stripe is told it."""

    event_name: str
    stripe_customer_id: str
    value: int
    identifier: str
    timestamp: int


class MeterEventSender(Protocol):
    """Sends a meter event to Stripe: True when accepted, False when Stripe already has an
    event of that identifier; any other refusal or failure raises."""

    def __call__(self, event: MeterEvent) -> bool: ...


@dataclass(frozen=True)
class Reported:
    """What one organisation's report did."""

    sent: int = 0
    already: int = 0


def identifier(organisation_id: str, meter: str, hour: datetime) -> str:
    """The meter event's identifier: the same for the same hour, however often it is sent."""
    return f"{organisation_id}:{meter}:{hour_of(hour).isoformat()}"


def organisations_to_report(session: Session, *, until: datetime) -> list[str]:
    """Organisations with a Stripe customer and usage of closed hours not reported yet."""
    query = (
        select(UsageRecord.organisation_id)
        .join(OrgBilling, col(OrgBilling.organisation_id) == col(UsageRecord.organisation_id))
        .where(col(OrgBilling.stripe_customer_id).is_not(None), unreported_before(until=until))
        .distinct()
        .order_by(col(UsageRecord.organisation_id))
    )
    return list(session.exec(query))


def report_organisation(
    session: Session,
    *,
    organisation_id: str,
    until: datetime,
    event_names: Mapping[str, str],
    send: MeterEventSender,
    progress: Callable[[int], None] | None = None,
) -> Reported:
    """Send the organisation's unreported hours before ``until`` and mark each one.

    Each record is marked (and committed) right after Stripe accepted it, so a crash loses at
    most one mark, and that record's next send is refused as a duplicate.

    Args:
        session: The database.
        organisation_id: Whose usage.
        until: Hours that start before this (closed and settled).
        event_names: Stripe's event name of each meter.
        send: Sends one event.
        progress: Called with the number of records handled so far (heartbeats).
    """
    billing = session.get(OrgBilling, organisation_id)
    if billing is None or not billing.stripe_customer_id:
        return Reported()
    records = session.exec(
        select(UsageRecord)
        .where(UsageRecord.organisation_id == organisation_id, unreported_before(until=until))
        .order_by(col(UsageRecord.hour), col(UsageRecord.meter))
    ).all()
    sent = already = 0
    for done, record in enumerate(records, start=1):
        hour = hour_of(record.hour)
        event = MeterEvent(
            event_name=event_names[record.meter],
            stripe_customer_id=billing.stripe_customer_id,
            value=record.quantity,
            identifier=identifier(organisation_id, record.meter, hour),
            timestamp=int(hour.timestamp()),
        )
        if send(event):
            sent += 1
        else:
            already += 1
        record.reported_at = utcnow()
        session.add(record)
        session.commit()
        if progress is not None:
            progress(done)
    return Reported(sent=sent, already=already)
