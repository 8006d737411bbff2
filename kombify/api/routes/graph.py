"""A stack's diagram: nodes, services, networks, routes and VPN links with their live state."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from kombify.api.deps import SessionDep, SettingsDep, get_temporal
from kombify.api.owned import OwnsStack
from kombify.api.principal import OrgDep
from kombify.api.stack_runs import org_stack
from kombify.db import deployments as runs
from kombify.names import StackName
from kombify.operate.graph import StackGraph, to_mermaid, to_svg
from kombify.operate.graph.collect import stack_graph

router = APIRouter(prefix="/v1", tags=["graph"])

GraphFormat = Literal["json", "mermaid", "svg"]
MERMAID_TYPE = "text/vnd.mermaid; charset=utf-8"
SVG_TYPE = "image/svg+xml"
_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The graph as JSON (docs/graph.md), Mermaid text or SVG",
        "content": {"text/vnd.mermaid": {}, SVG_TYPE: {}},
    },
    404: {"description": "No such stack", **_PROBLEM},
    503: {"description": "format=svg without graphviz's `dot`, or Temporal down", **_PROBLEM},
}


@router.get(
    "/stacks/{name}/graph",
    response_model=StackGraph,
    responses=_RESPONSES,
    dependencies=[OwnsStack],
)
async def stack_graph_route(
    name: StackName,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    org: OrgDep,
    format: GraphFormat = Query(  # noqa: A002 - the parameter users write
        default="json", description="json (docs/graph.md), mermaid (flowchart text) or svg."
    ),
    live: bool = Query(
        default=True, description="Ask the nodes and the proxy now (false: desired graph only)."
    ),
) -> Response:
    """The stack drawn as a graph: the deployed revision (else the current one), each element
    with the state its node reports now; a node that does not answer is `unreachable`."""
    org, stack = org_stack(session, org, name)
    # Temporal is dialled only when there is something to ask: a never-deployed stack and
    # live=false are drawn without it.
    asks = live and runs.last_rollout(session, stack=stack) is not None
    client = await get_temporal(request) if asks else None
    graph = await stack_graph(
        session=session, org=org, stack=stack, client=client, settings=settings
    )
    if format == "mermaid":
        return Response(to_mermaid(graph), media_type=MERMAID_TYPE)
    if format == "svg":
        return Response(await run_in_threadpool(to_svg, graph), media_type=SVG_TYPE)
    return JSONResponse(graph.model_dump(mode="json"))
