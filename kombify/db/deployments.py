"""Persistence of deployments and their log lines; plain functions, keyword-only arguments."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from kombify.db.line_notify import notify_lines
from kombify.db.models import Deployment, Event, Node, Stack, utcnow
from kombify.errors import NotFoundError


def create_deployment(
    session: Session,
    *,
    stack: Stack,
    revision: int,
    kind: str,
    workflow_id: str,
    options: dict[str, Any] | None = None,
) -> Deployment:
    """Record a run before its workflow starts (so the workflow has an id to report to)."""
    deployment = Deployment(
        stack_id=stack.id,
        revision=revision,
        kind=kind,
        workflow_id=workflow_id,
        state="running",
        summary={"options": options or {}},
    )
    session.add(deployment)
    session.commit()
    session.refresh(deployment)
    return deployment


def get_deployment(
    session: Session, *, deployment_id: str, organisation_id: str | None = None
) -> Deployment:
    """The deployment with that id (of that organisation's stacks when given); else
    NotFoundError, the same for another organisation's as for none at all."""
    deployment = session.get(Deployment, deployment_id)
    if deployment is not None and organisation_id is not None:
        stack = session.get(Stack, deployment.stack_id)
        if stack is None or stack.organisation_id != organisation_id:
            deployment = None
    if deployment is None:
        raise NotFoundError(f"no deployment `{deployment_id}`")
    return deployment


def list_deployments(session: Session, *, stack: Stack, limit: int = 20) -> list[Deployment]:
    """The stack's runs, newest first."""
    query = (
        select(Deployment)
        .where(Deployment.stack_id == stack.id)
        .order_by(col(Deployment.started_at).desc())
        .limit(limit)
    )
    return list(session.exec(query).all())


def latest_deployment(session: Session, *, stack: Stack) -> Deployment | None:
    """The stack's newest run, if any."""
    rows = list_deployments(session, stack=stack, limit=1)
    return rows[0] if rows else None


def newest_deployment_id(session: Session, *, stack_id: str) -> str | None:
    """The id of the stack's newest run, if any."""
    query = (
        select(Deployment.id)
        .where(Deployment.stack_id == stack_id)
        .order_by(col(Deployment.started_at).desc())
    )
    return session.exec(query).first()


def last_good_deploy(session: Session, *, stack: Stack) -> Deployment | None:
    """The newest successful deploy, unless a successful destroy came after it."""
    newest = session.exec(
        select(Deployment)
        .where(Deployment.stack_id == stack.id, Deployment.state == "succeeded")
        .order_by(col(Deployment.started_at).desc())
    ).first()
    return newest if newest is not None and newest.kind == "deploy" else None


def record_outcome(
    session: Session,
    *,
    deployment_id: str,
    state: str,
    summary: dict[str, Any],
    nodes: dict[str, dict[str, Any]],
    forget_nodes: bool,
) -> None:
    """Store a run's outcome, and the stack's nodes as it left them.

    Args:
        session: Where to write.
        deployment_id: The run.
        state: Its final state.
        summary: Added to the run's summary (which keeps the options it started with).
        nodes: Per node name: ``provider``, ``role``, ``state`` and ``services``.
        forget_nodes: Delete the stack's node rows instead (after a destroy).

    Raises:
        NotFoundError: No such run.
    """
    deployment = get_deployment(session, deployment_id=deployment_id)
    deployment.state = state
    deployment.finished_at = utcnow()
    deployment.summary = {**deployment.summary, **summary}
    session.add(deployment)
    existing = {
        n.name: n for n in session.exec(select(Node).where(Node.stack_id == deployment.stack_id))
    }
    if forget_nodes:
        for row in existing.values():
            session.delete(row)
    for name, seen in {} if forget_nodes else nodes.items():
        row = existing.get(name) or Node(
            stack_id=deployment.stack_id, name=name, provider="", role=""
        )
        row.provider, row.role, row.state = seen["provider"], seen["role"], seen["state"]
        row.services = seen["services"]
        row.updated_at = utcnow()
        session.add(row)
    # Live readers of the run's lines end their stream now, not at their next poll.
    notify_lines(session, [f"deployment/{deployment_id}"])
    session.commit()


def last_rollout(session: Session, *, stack: Stack) -> Deployment | None:
    """The deploy run whose services should be on the nodes now, if any.

    The newest finished deploy (whatever its outcome: a failed or cancelled run may have rolled
    out part of its revision), unless a destroy succeeded after it.
    """
    for row in list_deployments(session, stack=stack, limit=50):
        if row.state in ("running", "pending"):
            continue
        if row.kind == "destroy" and row.state == "succeeded":
            return None
        if row.kind == "deploy":
            return row
    return None


def simulated(row: Deployment) -> bool:
    """Whether a run was asked to put the stack on simulated nodes (``apply --simulate``)."""
    options = row.summary.get("options") or {}
    return bool(options.get("simulate"))


def deployment_events(
    session: Session, *, deployment_id: str, after: int = 0, limit: int = 1000
) -> list[Event]:
    """Log lines of a run with an id above ``after``, oldest first."""
    query = (
        select(Event)
        .where(Event.subject == f"deployment/{deployment_id}", col(Event.id) > after)
        .order_by(col(Event.id))
        .limit(limit)
    )
    return list(session.exec(query).all())


def stack_nodes(session: Session, *, stack: Stack) -> list[Node]:
    """The nodes kombify last recorded for the stack, by name."""
    query = select(Node).where(Node.stack_id == stack.id).order_by(col(Node.name))
    return list(session.exec(query).all())
