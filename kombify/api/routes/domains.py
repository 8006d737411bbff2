"""The routes a stack's reverse proxy serves: each exposed service's URL, asked from the proxy."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from kombify.api.deps import SessionDep, SettingsDep, TemporalDep
from kombify.api.owned import OwnsStack
from kombify.api.principal import OrgDep
from kombify.api.stack_runs import not_asked, org_stack
from kombify.contracts.routes import RoutesQuery, RoutesSeen
from kombify.db import deployments as runs
from kombify.names import StackName
from kombify.workflows.routes import (
    OBSERVE_ROUTES_TIMEOUT,
    ObserveRoutesWorkflow,
    routes_workflow_id,
)

router = APIRouter(prefix="/v1", tags=["routes"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such stack", **_PROBLEM}}


class RoutePublic(BaseModel):
    """One route: the URL, the service behind it, and whether the proxy routes it now."""

    url: str
    service: str
    upstreams: list[str] = Field(description="Where the proxy sends it: name or node:port.")
    state: str = Field(description="routed, missing, unknown or not-wanted.")


class StackRoutes(BaseModel):
    """What the deployed revision exposes, beside what its proxy answered now."""

    stack: str
    deployed_revision: int | None
    proxy_node: str
    proxy_service: str
    answered: bool = Field(description="Whether the proxy could be asked.")
    error: str | None
    issuer: str = Field(description="internal (the proxy's local CA) or acme.")
    https: str = Field(description="Where this machine reaches the proxy's port 443.")
    root_ca_pem: str | None = Field(description="The proxy's local CA root (internal issuer).")
    routes: list[RoutePublic]


@router.get("/stacks/{name}/routes", responses=_ERRORS, dependencies=[OwnsStack])
async def stack_routes(
    name: StackName,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    org: OrgDep,
) -> StackRoutes:
    """The URL of every exposed service, asked live from the stack's reverse proxy."""
    org, stack = org_stack(session, org, name)
    deployed = runs.last_rollout(session, stack=stack)
    empty = StackRoutes(
        stack=stack.name,
        deployed_revision=None,
        proxy_node="",
        proxy_service="",
        answered=False,
        error="not deployed",
        issuer="",
        https="",
        root_ca_pem=None,
        routes=[],
    )
    if deployed is None:
        return empty
    query = RoutesQuery(org.slug, stack.name, deployed.revision, runs.simulated(deployed))
    try:
        seen: RoutesSeen = await client.execute_workflow(
            ObserveRoutesWorkflow.run,
            query,
            id=routes_workflow_id(org.slug, stack.name, uuid.uuid4().hex[:12]),
            task_queue=settings.task_queue,
            execution_timeout=OBSERVE_ROUTES_TIMEOUT,
        )
    except (WorkflowFailureError, RPCError) as exc:
        error = not_asked("the proxy", exc)
        return empty.model_copy(update={"deployed_revision": deployed.revision, "error": error})
    return StackRoutes(
        stack=stack.name,
        deployed_revision=deployed.revision,
        proxy_node=seen.proxy_node,
        proxy_service=seen.proxy_service,
        answered=seen.answered,
        error=seen.error or None,
        issuer=seen.issuer,
        https=seen.https,
        root_ca_pem=seen.root_ca_pem or None,
        routes=[
            RoutePublic(url=r.url, service=r.service, upstreams=r.upstreams, state=r.state)
            for r in seen.routes
        ],
    )
