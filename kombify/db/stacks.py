"""Persistence of stacks and their revisions; plain functions with keyword-only arguments."""

from __future__ import annotations

import hashlib

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from kombify.db.models import Deployment, Node, Organisation, Stack, StackRevision, utcnow
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


def _next_revision(session: Session, *, stack: Stack) -> int:
    # Not current + 1: a revision staged by a deploy may be stored without being current yet.
    highest = session.exec(
        select(func.max(StackRevision.revision)).where(StackRevision.stack_id == stack.id)
    ).one()
    return max(int(highest or 0), stack.current_revision) + 1


def revise_stack(session: Session, *, stack: Stack, stackkit: str, source: str) -> Stack:
    """Store ``source`` as the stack's next revision unless it equals the current one."""
    current = current_revision(session, stack=stack)
    if current.sha256 == _sha256(source):
        return stack
    stack.current_revision = _next_revision(session, stack=stack)
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
    try:
        session.commit()
    except IntegrityError as exc:  # another request stored the same number first
        session.rollback()
        raise ConflictError(f"stack `{stack.name}` changed meanwhile: send it again") from exc
    session.refresh(stack)
    return stack


def stage_revision(session: Session, *, stack: Stack, source: str) -> tuple[int, bool]:
    """Store ``source`` as a revision that is not current yet, for a deploy about to start.

    It becomes current only through :func:`promote_revision`, once its run has started; a
    refused run drops it with :func:`drop_revision`. If the process dies in between, the
    stored but never current revision is harmless: nothing shows or deploys it.

    Returns:
        The revision number, and whether it was stored now (False: the text equals the
        current revision's, which is used as it is).
    """
    if current_revision(session, stack=stack).sha256 == _sha256(source):
        return stack.current_revision, False
    number = _next_revision(session, stack=stack)
    session.add(
        StackRevision(stack_id=stack.id, revision=number, source=source, sha256=_sha256(source))
    )
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"stack `{stack.name}` changed meanwhile: send it again") from exc
    session.refresh(stack)
    return number, True


def promote_revision(session: Session, *, stack_id: str, revision: int, stackkit: str) -> None:
    """Make ``revision`` the stack's current one unless a later one already is.

    One conditional UPDATE, so the API (after starting a run) and the run itself may both
    call it, in any order and any number of times.
    """
    session.execute(
        update(Stack)
        .where(col(Stack.id) == stack_id, col(Stack.current_revision) < revision)
        .values(current_revision=revision, stackkit=stackkit, updated_at=utcnow())
    )
    session.commit()


def drop_revision(session: Session, *, stack: Stack, revision: int) -> None:
    """Delete a staged revision that never became current (its run was refused)."""
    session.refresh(stack)
    if revision == stack.current_revision:
        return
    row = session.exec(
        select(StackRevision).where(
            StackRevision.stack_id == stack.id, StackRevision.revision == revision
        )
    ).first()
    if row is not None:
        session.delete(row)
        session.commit()


def get_organisation(session: Session, *, slug: str) -> Organisation:
    """The organisation with this slug; NotFoundError otherwise."""
    org = session.exec(select(Organisation).where(Organisation.slug == slug)).first()
    if org is None:
        raise NotFoundError(f"no organisation `{slug}`")
    return org


def get_revision(session: Session, *, stack: Stack, revision: int) -> StackRevision:
    """Revision ``revision`` of the stack; NotFoundError otherwise."""
    query = select(StackRevision).where(
        StackRevision.stack_id == stack.id, StackRevision.revision == revision
    )
    row = session.exec(query).first()
    if row is None:
        raise NotFoundError(f"stack `{stack.name}` has no revision {revision}")
    return row


def all_stacks(session: Session) -> list[tuple[Organisation, Stack]]:
    """Every stack of every organisation, with its organisation."""
    query = select(Organisation, Stack).where(Stack.organisation_id == Organisation.id)
    return [(org, stack) for org, stack in session.exec(query).all()]


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


def running_deployment(session: Session, *, stack: Stack) -> Deployment | None:
    """The stack's run that has not ended yet, if any."""
    query = select(Deployment).where(
        Deployment.stack_id == stack.id, Deployment.state == "running"
    )
    return session.exec(query.order_by(col(Deployment.started_at).desc())).first()


def refuse_while_running(stack: Stack, running: Deployment | None, doing: str) -> None:
    """ConflictError naming the run when one is in flight."""
    if running is not None:
        raise ConflictError(
            f"cannot {doing} stack `{stack.name}`: deployment {running.id} ({running.kind}) "
            f"is in progress; wait for it, or stop it with `kombify cancel {running.id}`"
        )


def delete_stack(session: Session, *, stack: Stack) -> None:
    """Delete a stack that has nothing deployed; the database cascades to its records.

    Raises:
        ConflictError: A run of the stack is in flight, or nodes of it are recorded (what a
            deploy made stays until ``kombify destroy`` removed it; forgetting the stack
            first would leave it running with nothing left to destroy it by).
    """
    # Locked, so a run cannot be recorded for the stack between the checks and the delete.
    session.refresh(stack, with_for_update=True)
    running = running_deployment(session, stack=stack)
    nodes = session.exec(select(Node.name).where(Node.stack_id == stack.id)).all()
    if running is not None or nodes:
        session.rollback()  # releases the lock
    refuse_while_running(stack, running, "delete")
    if nodes:
        raise ConflictError(
            f"stack `{stack.name}` is deployed (node(s) {', '.join(sorted(nodes))}): "
            f"destroy it first with `kombify destroy {stack.name}`, then delete it"
        )
    session.delete(stack)
    session.commit()
