"""Persistence of nodes' pinned SSH host keys; plain functions with keyword-only arguments."""

from __future__ import annotations

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
    for attempt in range(2):
        pin = get_pin(session, stack_id=stack_id, node=node, simulated=simulated)
        if pin is None:
            pin = HostKeyPin(
                stack_id=stack_id, node=node, simulated=simulated,
                algorithm=key.algorithm, key=key.data, fingerprint=key.fingerprint, source=source,
            )
        pin.algorithm, pin.key, pin.fingerprint = key.algorithm, key.data, key.fingerprint
        pin.source, pin.address, pin.instance = source, address, instance
        pin.recorded_at = utcnow()
        session.add(pin)
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


def pinned_key(pin: HostKeyPin) -> HostKey:
    """The pin as a :class:`HostKey`."""
    return HostKey(pin.algorithm, pin.key)
