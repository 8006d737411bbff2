"""Persistence of incidents: what went wrong on a deployed stack and what healing did about it.

The writers are Temporal activities, which may run again after their write landed (a worker
crash between the commit and the reply): opening the same incident twice returns the first
one's id, and the same action twice in a row is stored once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from kombify.contracts.heal import (
    INCIDENT_STATES,
    OPEN,
    RECOVERED,
    Incident,
    IncidentOpen,
    IncidentUpdate,
)
from kombify.db import stacks as store
from kombify.db.models import IncidentRow, Stack, utcnow
from kombify.errors import NotFoundError

_DETECTION_MAX = 200


def parse_time(at: str, *, field: str) -> datetime:
    """An RFC 3339 time as an aware UTC datetime (a time without offset is taken as UTC).

    Raises:
        ValueError: ``at`` is not such a time (the message names ``field``).
    """
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"{field} `{at}` is not an RFC 3339 time") from None
    return _utc(value)


def _utc(value: datetime) -> datetime:
    # SQLite hands back what it stored without its offset; kombify only ever stores UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _text(value: datetime | None) -> str:
    return _utc(value).isoformat() if value is not None else ""


def _check_state(state: str) -> None:
    if state not in INCIDENT_STATES:
        raise ValueError(
            f"incident state `{state}` is not one of {', '.join(INCIDENT_STATES)}"
        )


def to_incident(row: IncidentRow, stack: str) -> Incident:
    """A stored row as the contract's :class:`Incident`."""
    assert row.id is not None  # stored rows have one
    ttr = None
    if row.recovered_at is not None:
        ttr = round((_utc(row.recovered_at) - _utc(row.detected_at)).total_seconds(), 3)
    return Incident(
        id=row.id,
        stack=stack,
        node=row.node,
        service=row.service,
        kind=row.kind,
        detection=row.detection,
        detail=row.detail,
        detected_at=_text(row.detected_at),
        action=row.actions[-1] if row.actions else "",
        actions=list(row.actions),
        recovered_at=_text(row.recovered_at),
        state=row.state,
        time_to_recovery_s=ttr,
    )


def _stack(session: Session, organisation: str, stack: str) -> Stack:
    org = store.get_organisation(session, slug=organisation)
    return store.get_stack(session, organisation_id=org.id, name=stack)


def open_incident(session: Session, opened: IncidentOpen) -> int:
    """Record a new incident (state open) and commit; its id.

    The same organisation, stack, node, service, kind and detection time returns the
    incident already recorded for them, so a retried activity opens nothing twice.

    Raises:
        NotFoundError: No such organisation or stack.
        ValueError: ``detected_at`` is not an RFC 3339 time.
    """
    stack = _stack(session, opened.organisation, opened.stack)
    at = parse_time(opened.detected_at, field="detected_at")
    same = select(IncidentRow.id).where(
        IncidentRow.stack_id == stack.id,
        IncidentRow.node == opened.node,
        IncidentRow.service == opened.service,
        IncidentRow.kind == opened.kind,
        IncidentRow.detected_at == at,
    )
    for attempt in range(2):
        found = session.exec(same).first()
        if found is not None:
            return found
        row = IncidentRow(
            stack_id=stack.id,
            node=opened.node,
            service=opened.service,
            kind=opened.kind,
            detection=opened.detection[:_DETECTION_MAX],
            detail=opened.detail,
            detected_at=at,
            actions=[],
            state=OPEN,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # the same incident was recorded meanwhile: return that one
            session.rollback()
            if attempt:
                raise
            continue
        assert row.id is not None
        return row.id
    raise AssertionError("unreachable")


def update_incident(session: Session, update: IncidentUpdate) -> Incident:
    """Apply an action and/or a new state to an incident and commit; the incident after it.

    An action equal to the last one recorded is a retry of the same step and is not added
    again. State ``recovered`` sets ``recovered_at`` (now, unless given or already set);
    any other state clears it.

    Raises:
        ValueError: An unknown state, ``recovered_at`` without state ``recovered``, or a
            time that is not RFC 3339 (nothing is changed).
        NotFoundError: No incident with that id.
    """
    if update.state:
        _check_state(update.state)
    if update.recovered_at and update.state != RECOVERED:
        raise ValueError("recovered_at is set only together with state `recovered`")
    recovered_at = (
        parse_time(update.recovered_at, field="recovered_at") if update.recovered_at else None
    )
    found = session.exec(
        select(IncidentRow, Stack.name)
        .where(IncidentRow.id == update.id, IncidentRow.stack_id == Stack.id)
        .with_for_update(of=IncidentRow)
    ).first()
    if found is None:
        raise NotFoundError(f"no incident {update.id}")
    row, stack_name = found
    if update.action and (not row.actions or row.actions[-1] != update.action):
        row.actions = [*row.actions, update.action]  # a new list: JSON columns track assignment
    if update.detail:
        row.detail = update.detail
    if update.kind:
        row.kind = update.kind
    if update.state == RECOVERED:
        kept = row.recovered_at if row.state == RECOVERED else None
        row.recovered_at = recovered_at or kept or utcnow()
    elif update.state:
        row.recovered_at = None
    if update.state:
        row.state = update.state
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return to_incident(row, stack_name)


def get_incident(session: Session, incident_id: int) -> Incident | None:
    """The incident with that id, if any."""
    found = session.exec(
        select(IncidentRow, Stack.name).where(
            IncidentRow.id == incident_id, IncidentRow.stack_id == Stack.id
        )
    ).first()
    return to_incident(*found) if found is not None else None


def list_incidents(
    session: Session,
    organisation: str,
    stack: str,
    *,
    state: str | None = None,
    limit: int = 100,
) -> list[Incident]:
    """The stack's incidents, newest first (by detection time), optionally of one state.

    Raises:
        ValueError: An unknown state.
        NotFoundError: No such organisation or stack.
    """
    if state is not None:
        _check_state(state)
    row_stack = _stack(session, organisation, stack)
    query = select(IncidentRow).where(IncidentRow.stack_id == row_stack.id)
    if state is not None:
        query = query.where(IncidentRow.state == state)
    rows = session.exec(
        query.order_by(col(IncidentRow.detected_at).desc(), col(IncidentRow.id).desc()).limit(
            limit
        )
    ).all()
    return [to_incident(row, row_stack.name) for row in rows]


def open_incident_for(
    session: Session, organisation: str, stack: str, node: str, service: str, kind: str
) -> Incident | None:
    """The newest open incident of that node, service and kind, if any.

    Raises:
        NotFoundError: No such organisation or stack.
    """
    row_stack = _stack(session, organisation, stack)
    row = session.exec(
        select(IncidentRow)
        .where(
            IncidentRow.stack_id == row_stack.id,
            IncidentRow.node == node,
            IncidentRow.service == service,
            IncidentRow.kind == kind,
            IncidentRow.state == OPEN,
        )
        .order_by(col(IncidentRow.detected_at).desc(), col(IncidentRow.id).desc())
    ).first()
    return to_incident(row, row_stack.name) if row is not None else None
