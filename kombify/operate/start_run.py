"""Starting a deploy or destroy run of a stack: what the API and the user workflows share.

A run is a ``Deployment`` row and a ``DeployKombination``/``DestroyKombination`` workflow; the
row is made first and removed again when the workflow cannot start, so a refused run leaves
the stack as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from kombify.billing import entitlements
from kombify.contracts.deploy import DeployInput
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.models import (
    Deployment,
    DeploymentCreate,
    DeploymentPublic,
    Organisation,
    Stack,
)
from kombify.errors import ConflictError
from kombify.settings import Settings
from kombify.specs import load_kombination
from kombify.workflows.deploy import (
    DeployKombination,
    DestroyKombination,
    deploy_workflow_id,
    search_attributes,
)


def deployment_public(
    stack: Stack, row: Deployment, progress: dict[str, Any] | None
) -> DeploymentPublic:
    """The API's view of a run (``progress`` is the workflow's live query answer, if asked)."""
    return DeploymentPublic(
        id=row.id,
        stack=stack.name,
        revision=row.revision,
        kind=row.kind,
        workflow_id=row.workflow_id,
        state=row.state,
        started_at=row.started_at,
        finished_at=row.finished_at,
        summary=row.summary,
        progress=progress,
    )


def _stage(
    session: Session,
    stack: Stack,
    options: DeploymentCreate,
    *,
    entitled: Callable[[str, str | None], None],
) -> tuple[int, str, bool]:
    """The revision a run deploys, its stackkit, and whether it was stored just now.

    ``entitled(stackkit, source)`` refuses what the organisation's plan does not allow before
    anything is stored.
    """
    if options.source is None:
        entitled(stack.stackkit, None)
        return stack.current_revision, stack.stackkit, False
    kombination = load_kombination(options.source, filename=options.filename)
    if kombination.metadata.name != stack.name:
        raise ConflictError(
            f"the file's metadata.name is `{kombination.metadata.name}`, not `{stack.name}`"
        )
    entitled(kombination.spec.stackkit, options.source)
    revision, staged = store.stage_revision(session, stack=stack, source=options.source)
    return revision, kombination.spec.stackkit, staged


async def start_run(
    *,
    session: Session,
    org: Organisation,
    client: Client,
    settings: Settings,
    name: str,
    kind: str,
    options: DeploymentCreate,
    force: bool = False,
    rollback_of: int | None = None,
) -> DeploymentPublic:
    """Start a ``kind`` run ("deploy" or "destroy") of the stack called ``name`` in ``org``.

    With ``options.source`` the file is stored as the stack's next revision, made current only
    once the run started. ``rollback_of`` (a deploy of an earlier revision's file, see
    :mod:`kombify.operate.history`) is recorded among the run's options.

    Raises:
        NotFoundError: No such stack.
        SpecError: ``options.source`` is not a valid kombination.
        ConflictError: Another run of the stack is in progress, or the file names another stack.
        PaymentRequiredError: (deploy) the stack is frozen beyond the plan's stack limit, or
            its StackKit is beyond the plan (kombify.billing.entitlements).
    """
    stack = store.get_stack(session, organisation_id=org.id, name=name)
    workflow_id = deploy_workflow_id(org.slug, stack.name)

    # A new file is stored first but made current only once its run started (here, and by
    # the run itself, so a crash of this process in between cannot lose it); a refused run
    # leaves the stack as it was.
    def entitled(stackkit: str, source: str | None) -> None:
        # Every deploy, whoever starts it (the API or a workflow step), passes here: a frozen
        # stack or a StackKit beyond the plan is refused (402). Destroy is always allowed.
        if kind == "deploy":
            entitlements.check_deploy(
                session, org, settings, stack=stack, stackkit=stackkit, source=source
            )

    revision, stackkit, staged = _stage(session, stack, options, entitled=entitled)
    if kind == "destroy":
        # Destroy takes down what the last rollout put up: its revision, and its nodes, the
        # simulated stand-ins when it ran with --simulate (their real nodes were never made).
        last = runs.last_rollout(session, stack=stack)
        if last is not None:
            revision = last.revision
            options = options.model_copy(update={"simulate": runs.simulated(last)})
    row = runs.create_deployment(
        session,
        stack=stack,
        revision=revision,
        kind=kind,
        workflow_id=workflow_id,
        options=options.options()
        | ({"force": True} if force else {})
        | ({"rollback_of": rollback_of} if rollback_of is not None else {}),
    )
    request = DeployInput(
        deployment_id=row.id,
        organisation=org.slug,
        stack=stack.name,
        revision=revision,
        auto_approve=options.auto_approve,
        simulate=options.simulate,
        node_wait_seconds=settings.node_wait_seconds,
        force=force,
    )
    workflow = DeployKombination.run if kind == "deploy" else DestroyKombination.run
    try:
        handle = await client.start_workflow(
            workflow,
            request,
            id=workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=search_attributes(org.slug, stack.name, kind),
        )
    except BaseException as exc:
        session.delete(row)
        session.commit()
        if staged:
            store.drop_revision(session, stack=stack, revision=revision)
        if isinstance(exc, WorkflowAlreadyStartedError):
            running = store.running_deployment(session, stack=stack)
            which = f" (deployment {running.id})" if running else ""
            raise ConflictError(
                f"a run of stack `{stack.name}` is already in progress{which}: "
                "wait for it, or cancel it; nothing was changed"
            ) from exc
        raise
    store.promote_revision(session, stack_id=stack.id, revision=revision, stackkit=stackkit)
    row.run_id = handle.result_run_id
    session.add(row)
    session.commit()
    session.refresh(row)
    return deployment_public(stack, row, None)
