"""What routes that ask a worker about a deployed stack share: finding it, and the asking."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.service import RPCError

from kombify.contracts.heal import HEAL_RUN_KIND
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.models import Deployment, Organisation, Stack
from kombify.errors import ConflictError, KombifyError, ServiceUnavailableError
from kombify.settings import Settings
from kombify.workflows.deploy import search_attributes


class RunFailedError(KombifyError):
    """A workflow the API waited on failed or did not finish in time."""

    code = "run-failed"
    status = 502


def org_stack(session: Session, org: Organisation, name: str) -> tuple[Organisation, Stack]:
    """The organisation and its stack called ``name`` (NotFoundError otherwise)."""
    return org, store.get_stack(session, organisation_id=org.id, name=name)


def deployed_stack(
    session: Session, org: Organisation, name: str, *, doing: str
) -> tuple[Organisation, Stack, Deployment]:
    """The stack and the deploy run whose services should be on its nodes now.

    Raises:
        NotFoundError: No such stack.
        ConflictError: Nothing of it is deployed (never deployed, or destroyed since).
    """
    org, stack = org_stack(session, org, name)
    deployed = runs.last_rollout(session, stack=stack)
    if deployed is None:
        last = runs.latest_deployment(session, stack=stack)
        why = (
            "it was destroyed"
            if last is not None and last.kind == "destroy" and last.state == "succeeded"
            else "it was never deployed"
        )
        raise ConflictError(
            f"cannot {doing} stack `{name}`: {why}; deploy it first with `kombify apply`"
        )
    return org, stack, deployed


def innermost(exc: BaseException) -> str:
    """The message of the error at the bottom of a workflow failure."""
    # Temporal wraps the activity's own error twice (workflow failure, activity error).
    while (cause := getattr(exc, "cause", None)) is not None:
        exc = cause
    return str(exc)


def not_asked(what: str, exc: WorkflowFailureError | RPCError) -> str:
    """Why ``what`` (the nodes, the proxy) could not be asked live, for the answer's error."""
    if isinstance(exc, RPCError):
        return f"{what} could not be asked: Temporal: {exc.message}"
    return f"{what} could not be asked: {innermost(exc)}"


async def ask_worker(
    client: Client,
    settings: Settings,
    workflow: str,
    arg: Any,
    *,
    stack: tuple[str, str],
    workflow_id: str,
    result_type: type,
    timeout: timedelta,
    what: str,
) -> Any:
    """Run a heal-kind workflow on the task queue and wait for its result.

    Args:
        client: Temporal.
        settings: The task queue.
        workflow: The workflow's registered name.
        arg: Its one input.
        stack: Organisation slug and stack name (search attributes of the run).
        workflow_id: The run's id.
        result_type: What its result is decoded as.
        timeout: How long it may take in all.
        what: What it does, for messages ("the heal pass").

    Raises:
        RunFailedError: It failed, or did not finish within ``timeout``.
        ServiceUnavailableError: Temporal did not answer.
    """
    try:
        return await client.execute_workflow(
            workflow,
            arg,
            id=workflow_id,
            task_queue=settings.task_queue,
            result_type=result_type,
            execution_timeout=timeout,
            search_attributes=search_attributes(*stack, HEAL_RUN_KIND),
        )
    except WorkflowFailureError as exc:
        if isinstance(exc.cause, TemporalTimeoutError):
            raise RunFailedError(
                f"{what} did not finish within {timeout.total_seconds():.0f} s "
                "(is a worker running? `kombify worker`)"
            ) from exc
        raise RunFailedError(f"{what} failed: {innermost(exc)}") from exc
    except RPCError as exc:
        raise ServiceUnavailableError(f"{what} could not start: Temporal: {exc.message}") from exc
