"""Persistence of stacks and their revisions; plain functions with keyword-only arguments."""

from __future__ import annotations

import hashlib

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from kombify.db.models import Organisation, Stack, StackRevision, utcnow
from kombify.errors import ConflictError, NotFoundError

LOCAL_ORG = "local"


def ensure_local_organisation(session: Session) -> Organisation:
    """The organisation of a single-user install, created on first use."""
    org = session.exec(select(Organisation).where(Organisation.slug == LOCAL_ORG)).first()
    if org is None:
        org = Organisation(slug=LOCAL_ORG, name="Local homelab")
        session.add(org)
        try:
            session.commit()
        except IntegrityError:  # another process created it first
            session.rollback()
            return ensure_local_organisation(session)
        session.refresh(org)
    return org


def _sha256(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def create_stack(
    session: Session, *, organisation_id: str, name: str, stackkit: str, source: str
) -> Stack:
    """Create a stack with revision 1; ConflictError when the name is taken."""
    if get_stack_or_none(session, organisation_id=organisation_id, name=name) is not None:
        raise ConflictError(f"stack `{name}` already exists: update it, or delete it first")
    stack = Stack(organisation_id=organisation_id, name=name, stackkit=stackkit)
    session.add(stack)
    session.flush()
    session.add(StackRevision(stack_id=stack.id, revision=1, source=source, sha256=_sha256(source)))
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"stack `{name}` already exists") from exc
    session.refresh(stack)
    return stack


def revise_stack(session: Session, *, stack: Stack, stackkit: str, source: str) -> Stack:
    """Store ``source`` as the stack's next revision unless it equals the current one."""
    current = current_revision(session, stack=stack)
    if current.sha256 == _sha256(source):
        return stack
    stack.current_revision += 1
    stack.stackkit = stackkit
    stack.updated_at = utcnow()
    session.add(stack)
    session.add(
        StackRevision(
            stack_id=stack.id,
            revision=stack.current_revision,
            source=source,
            sha256=_sha256(source),
        )
    )
    session.commit()
    session.refresh(stack)
    return stack


def get_stack_or_none(session: Session, *, organisation_id: str, name: str) -> Stack | None:
    """The stack called ``name`` in the organisation, if any."""
    query = select(Stack).where(Stack.organisation_id == organisation_id, Stack.name == name)
    return session.exec(query).first()


def get_stack(session: Session, *, organisation_id: str, name: str) -> Stack:
    """The stack called ``name``; NotFoundError otherwise."""
    stack = get_stack_or_none(session, organisation_id=organisation_id, name=name)
    if stack is None:
        raise NotFoundError(f"no stack named `{name}`")
    return stack


def current_revision(session: Session, *, stack: Stack) -> StackRevision:
    """The revision the stack currently points at."""
    query = select(StackRevision).where(
        StackRevision.stack_id == stack.id, StackRevision.revision == stack.current_revision
    )
    revision = session.exec(query).one()
    return revision


def list_stacks(
    session: Session, *, organisation_id: str, offset: int = 0, limit: int = 100
) -> tuple[list[Stack], int]:
    """One page of the organisation's stacks by name, and how many there are in all."""
    where = Stack.organisation_id == organisation_id
    count = session.exec(select(func.count()).select_from(Stack).where(where)).one()
    rows = session.exec(
        select(Stack).where(where).order_by(col(Stack.name)).offset(offset).limit(limit)
    ).all()
    return list(rows), int(count)


def delete_stack(session: Session, *, stack: Stack) -> None:
    """Delete a stack; the database cascades to its revisions, deployments and nodes."""
    session.delete(stack)
    session.commit()
