"""Persistence of nodes' pinned SSH host keys; plain functions with keyword-only arguments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from kombify.db.models import HostKeyPin, utcnow
from kombify.hostkeys import HostKey


def get_pin(session: Session, *, stack_id: str, node: str, simulated: bool) -> HostKeyPin | None:
    """The pin of ``node`` (its simulated stand-in's when ``simulated``), if recorded."""
    query = select(HostKeyPin).where(
        HostKeyPin.stack_id == stack_id,
        HostKeyPin.node == node,
        HostKeyPin.simulated == simulated,
    )
    return session.exec(query).first()


def list_pins(session: Session, *, stack_id: str) -> list[HostKeyPin]:
    """Every pin of a stack, by node name (real before simulated)."""
    query = (
        select(HostKeyPin)
        .where(HostKeyPin.stack_id == stack_id)
        .order_by(col(HostKeyPin.node), col(HostKeyPin.simulated))
    )
    return list(session.exec(query).all())


@dataclass(frozen=True)
class PinRecord:
    """A node's host key to record as its pin (see :func:`save_pin` for the fields)."""

    node: str
    simulated: bool
    key: HostKey
    source: str
    address: str
    instance: str = ""


def _stage(session: Session, stack_id: str, record: PinRecord) -> HostKeyPin:
    """The pin row of ``record``, added to the session with its new key (not committed)."""
    key = record.key
    pin = get_pin(session, stack_id=stack_id, node=record.node, simulated=record.simulated)
    if pin is None:
        pin = HostKeyPin(
            stack_id=stack_id, node=record.node, simulated=record.simulated,
            algorithm=key.algorithm, key=key.data, fingerprint=key.fingerprint,
            source=record.source,
        )
    pin.algorithm, pin.key, pin.fingerprint = key.algorithm, key.data, key.fingerprint
    pin.source, pin.address, pin.instance = record.source, record.address, record.instance
    pin.recorded_at = utcnow()
    session.add(pin)
    return pin


def save_pin(
    session: Session,
    *,
    stack_id: str,
    node: str,
    simulated: bool,
    key: HostKey,
    source: str,
    address: str,
    instance: str = "",
) -> HostKeyPin:
    """Record ``key`` as the node's pin (replacing the previous one) and commit."""
    return _save(session, stack_id, PinRecord(node, simulated, key, source, address, instance))


def _save(session: Session, stack_id: str, record: PinRecord) -> HostKeyPin:
    for attempt in range(2):
        pin = _stage(session, stack_id, record)
        try:
            session.commit()
        except IntegrityError:  # another process pinned it first: update that row instead
            session.rollback()
            if attempt:
                raise
            continue
        session.refresh(pin)
        return pin
    raise AssertionError("unreachable")


def save_pins(session: Session, *, stack_id: str, records: Sequence[PinRecord]) -> None:
    """Record several pins of a stack in one commit (a deploy's first contact with its nodes).

    When another process pinned one of them meanwhile, each is saved on its own instead, so
    that the rows it wrote are updated.
    """
    for record in records:
        _stage(session, stack_id, record)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        for record in records:
            _save(session, stack_id, record)


def pinned_key(pin: HostKeyPin) -> HostKey:
    """The pin as a :class:`HostKey`."""
    return HostKey(pin.algorithm, pin.key)
