"""Deployments: start, follow, approve and cancel the durable deploy and destroy runs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status
from sqlmodel import Session
from sse_starlette import EventSourceResponse
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from kombify.api.deps import MAX_DB_INT, SessionDep, SettingsDep, TemporalDep
from kombify.api.owned import OwnsDeployment, OwnsStack
from kombify.api.principal import OrgDep
from kombify.api.stack_runs import org_stack
from kombify.api.stack_status import observe_status
from kombify.api.status_stream import Observe, StatusHub, status_events
from kombify.contracts.deploy import ApproveSignal, CancelSignal
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.models import (
    Deployment,
    DeploymentCreate,
    DeploymentPublic,
    DestroyCreate,
    EventPublic,
    EventsPublic,
    Organisation,
    Stack,
    StackStatus,
)
from kombify.errors import ConflictError
from kombify.logstream.bus import LineBus
from kombify.logstream.deployment import PING, deployment_stream
from kombify.names import DeploymentId, StackName
from kombify.operate.start_run import deployment_public, start_run
from kombify.settings import Settings

router = APIRouter(prefix="/v1", tags=["deployments"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such stack or deployment", **_PROBLEM},
    409: {"description": "A run of this stack is in progress", **_PROBLEM},
}


def _handle(client: Client, row: Deployment) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(row.workflow_id, run_id=row.run_id)


async def _progress(client: Client, row: Deployment) -> dict[str, Any] | None:
    try:
        progress = await _handle(client, row).query("progress")
    except RPCError:
        return None  # history gone (retention) or Temporal down: the row's summary stands
    return progress if isinstance(progress, dict) else asdict(progress)


@router.post(
    "/stacks/{name}/deployments",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_ERRORS,
    dependencies=[OwnsStack],
)
async def start_deployment(
    name: StackName,
    options: DeploymentCreate,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    org: OrgDep,
) -> DeploymentPublic:
    """Deploy the stack's current revision, or ``source`` as its next (one run at a time).

    With ``source``, the file becomes the stack's current revision only when the run
    starts: a refused run (409, another is in progress) changes nothing.
    """
    return await start_run(
        session=session,
        org=org,
        client=client,
        settings=settings,
        name=name,
        kind="deploy",
        options=options,
    )


@router.post(
    "/stacks/{name}/destroy",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_ERRORS,
    dependencies=[OwnsStack],
)
async def start_destroy(
    name: StackName,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    org: OrgDep,
    body: DestroyCreate | None = None,
) -> DeploymentPublic:
    """Remove the stack's services and what OpenTofu made for it.

    A node that cannot be reached (a stopped simulated node, a machine that does not answer)
    fails the run, since what runs there would stay; with ``force`` it is left and listed as
    skipped in the run's progress.
    """
    return await start_run(
        session=session,
        org=org,
        client=client,
        settings=settings,
        name=name,
        kind="destroy",
        options=DeploymentCreate(auto_approve=True),
        force=body.force if body else False,
    )


@router.get("/stacks/{name}/deployments", responses=_ERRORS)
def list_deployments(name: StackName, session: SessionDep, org: OrgDep) -> list[DeploymentPublic]:
    """The stack's runs, newest first."""
    stack = store.get_stack(session, organisation_id=org.id, name=name)
    return [
        deployment_public(stack, row, None) for row in runs.list_deployments(session, stack=stack)
    ]


def _row_and_stack(
    session: SessionDep, org: Organisation, deployment_id: str
) -> tuple[Deployment, Stack]:
    row = runs.get_deployment(session, deployment_id=deployment_id, organisation_id=org.id)
    stack = session.get(Stack, row.stack_id)
    assert stack is not None  # a deployment's stack is deleted with it (cascade)
    return row, stack


@router.get("/deployments/{deployment_id}", responses=_ERRORS, dependencies=[OwnsDeployment])
async def get_deployment(
    deployment_id: DeploymentId, session: SessionDep, client: TemporalDep, org: OrgDep
) -> DeploymentPublic:
    """A run with its live progress (steps, timings, per-node detail, plan summary)."""
    row, stack = _row_and_stack(session, org, deployment_id)
    return deployment_public(stack, row, await _progress(client, row))


async def _signal(
    session: SessionDep,
    org: Organisation,
    client: Client,
    deployment_id: str,
    name: str,
    payload: object,
) -> DeploymentPublic:
    row, stack = _row_and_stack(session, org, deployment_id)
    if row.state != "running":
        raise ConflictError(f"deployment `{deployment_id}` already ended ({row.state})")
    await _handle(client, row).signal(name, payload)
    return deployment_public(stack, row, await _progress(client, row))


@router.post(
    "/deployments/{deployment_id}/approve", responses=_ERRORS, dependencies=[OwnsDeployment]
)
async def approve_deployment(
    deployment_id: DeploymentId, session: SessionDep, client: TemporalDep, org: OrgDep
) -> DeploymentPublic:
    """Approve the plan a run waits on."""
    return await _signal(session, org, client, deployment_id, "approve", ApproveSignal(by="api"))


@router.post(
    "/deployments/{deployment_id}/cancel", responses=_ERRORS, dependencies=[OwnsDeployment]
)
async def cancel_deployment(
    deployment_id: DeploymentId, session: SessionDep, client: TemporalDep, org: OrgDep
) -> DeploymentPublic:
    """Stop a run at its next safe point; nodes are never left half rolled out."""
    cancel = CancelSignal(by="api", reason="cancelled by user")
    return await _signal(session, org, client, deployment_id, "cancel", cancel)


@router.get(
    "/deployments/{deployment_id}/logs",
    response_model=EventsPublic,
    responses={
        **_ERRORS,
        200: {
            "description": "Stored lines as JSON; with ``Accept: text/event-stream``, a live "
            "stream of them (docs/logs.md)",
            "content": {"text/event-stream": {}},
        },
    },
    # No OwnsDeployment here: the body checks ownership first (it reaches no backend before),
    # and a route dependency would answer 404 before the query is validated (422).
)
def deployment_logs(
    deployment_id: DeploymentId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    org: OrgDep,
    after: int = Query(
        default=0, ge=0, le=MAX_DB_INT, description="Return lines with an id above this."
    ),
    limit: int = Query(default=1000, ge=1, le=10000),
    last_event_id: Annotated[
        int | None,
        Header(ge=0, le=MAX_DB_INT, description="Resume a stream after this line (SSE)."),
    ] = None,
) -> Any:
    """Output lines of OpenTofu and the agents, oldest first.

    As JSON, the stored lines above ``after`` (``limit`` of them). With ``Accept:
    text/event-stream``, Server-Sent Events: the stored lines, then each new one as it is
    stored, then an ``end`` event with the run's state once it finished; ``Last-Event-ID``
    (or ``after``) resumes after a line. ``limit`` does not apply to the stream.
    """
    runs.get_deployment(session, deployment_id=deployment_id, organisation_id=org.id)
    if "text/event-stream" in request.headers.get("accept", ""):
        bus = getattr(request.app.state, "line_bus", None)
        if bus is None:
            bus = request.app.state.line_bus = LineBus(settings.resolved_database_url)
        stream = deployment_stream(
            url=settings.resolved_database_url,
            bus=bus,
            deployment_id=deployment_id,
            after=max(after, last_event_id or 0),
        )
        return EventSourceResponse(stream, ping=PING)
    rows = runs.deployment_events(session, deployment_id=deployment_id, after=after, limit=limit)
    data = [EventPublic.model_validate(r, from_attributes=True) for r in rows]
    return EventsPublic(data=data, next=data[-1].id if data else after)


@router.get(
    "/stacks/{name}/status",
    response_model=StackStatus,
    responses={
        **_ERRORS,
        200: {
            "description": "The status as JSON; with ``Accept: text/event-stream``, a live "
            'stream of it (docs/deploy.md, "The status, live").',
            "content": {"text/event-stream": {}},
        },
    },
    dependencies=[OwnsStack],
)
async def stack_status(
    name: StackName,
    request: Request,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    org: OrgDep,
) -> Any:
    """What runs on the stack's nodes now, asked from their agents, beside the deployed spec.

    Nodes are asked live through a worker (``ObserveStack``); a node that does not answer is
    listed with the reason. The last run is shown apart and never stands in for the nodes.
    With ``Accept: text/event-stream``, Server-Sent Events: a ``status`` event with this
    answer first, another whenever what runs changes (asked every
    ``KOMBIFY_STATUS_STREAM_SECONDS``, once per stack however many listen), ``error``
    events for observations that failed, and ``end`` once the stack is deleted.
    """
    org, stack = org_stack(session, org, name)
    if "text/event-stream" in request.headers.get("accept", ""):
        hub = getattr(request.app.state, "status_hub", None)
        if hub is None:
            hub = request.app.state.status_hub = StatusHub(interval=settings.status_stream_seconds)
        observe = _observer(client, settings, org.id, stack.name)
        return EventSourceResponse(status_events(hub, (org.id, stack.name), observe), ping=PING)
    return await observe_status(
        session=session, client=client, settings=settings, org=org, stack=stack
    )


def _observer(client: Client, settings: Settings, org_id: str, name: str) -> Observe:
    """One observation of the stack for the live stream, in a session of its own."""

    async def observe() -> dict[str, Any] | None:
        with Session(get_engine(settings.resolved_database_url)) as session:
            org = session.get(Organisation, org_id)
            stack = (
                store.get_stack_or_none(session, organisation_id=org_id, name=name)
                if org is not None
                else None
            )
            if org is None or stack is None:
                return None
            status = await observe_status(
                session=session, client=client, settings=settings, org=org, stack=stack
            )
        return status.model_dump(mode="json")

    return observe
