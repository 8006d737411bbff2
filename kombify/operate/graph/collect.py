"""A stack's graph as the API answers it: its revision, and its nodes and proxy asked now.

The nodes are asked the way ``GET /v1/stacks/{name}/status`` asks them (``ObserveStack``
through a worker) and the proxy the way ``GET /v1/stacks/{name}/routes`` does
(``ObserveRoutes``), both at once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from sqlmodel import Session
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from kombify.api.stack_runs import not_asked
from kombify.api.status import OBSERVE_WAIT, ask_nodes
from kombify.contracts.observe import ObserveInput
from kombify.contracts.routes import RoutesQuery, RoutesSeen
from kombify.contracts.vpn import VpnQuery, VpnSeen
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.models import Organisation, Stack
from kombify.operate.graph.build import Observed, build_graph
from kombify.operate.graph.model import StackGraph
from kombify.settings import Settings
from kombify.specs import load_kombination
from kombify.unifier import unify
from kombify.unifier.routes import ROUTES_FILE
from kombify.workflows.observe import (
    ObserveVpnWorkflow,
    vpn_workflow_id,
)
from kombify.workflows.routes import (
    OBSERVE_ROUTES_TIMEOUT,
    ObserveRoutesWorkflow,
    routes_workflow_id,
)


async def _ask_proxy(
    client: Client, settings: Settings, query: RoutesQuery
) -> tuple[RoutesSeen | None, str | None]:
    try:
        seen: RoutesSeen = await client.execute_workflow(
            ObserveRoutesWorkflow.run,
            query,
            id=routes_workflow_id(query.organisation, query.stack, uuid.uuid4().hex[:12]),
            task_queue=settings.task_queue,
            execution_timeout=OBSERVE_ROUTES_TIMEOUT,
        )
    except (WorkflowFailureError, RPCError) as exc:
        return None, not_asked("the proxy", exc)
    return seen, None


async def _ask_mesh(
    client: Client, settings: Settings, query: VpnQuery
) -> tuple[VpnSeen | None, str | None]:
    try:
        seen: VpnSeen = await client.execute_workflow(
            ObserveVpnWorkflow.run,
            query,
            id=vpn_workflow_id(query.organisation, query.stack, uuid.uuid4().hex[:12]),
            task_queue=settings.task_queue,
            execution_timeout=OBSERVE_WAIT,
        )
    except (WorkflowFailureError, RPCError) as exc:
        return None, not_asked("the mesh", exc)
    return seen, None


async def stack_graph(
    *,
    session: Session,
    org: Organisation,
    stack: Stack,
    client: Client | None,
    settings: Settings,
) -> StackGraph:
    """The graph of the stack's deployed revision (else its current one), with live states.

    Args:
        session: The database.
        org: The stack's organisation.
        stack: The stack.
        client: Temporal, to ask the nodes through a worker; None draws the desired graph
            only (``live=false``: every state of a deployed stack is ``unknown``).
        settings: The task queue.
    """
    deployed = runs.last_rollout(session, stack=stack)
    if deployed is not None:
        row = store.get_revision(session, stack=stack, revision=deployed.revision)
    else:
        row = store.current_revision(session, stack=stack)
    k = load_kombination(row.source, filename=f"{stack.name}@{row.revision}")
    plan = unify(k)
    observed: Observed | None = None
    if deployed is not None and client is not None:
        simulate = runs.simulated(deployed)
        observed_at = datetime.now(UTC).isoformat(timespec="seconds")
        wants_routes = bool(json.loads(plan.files[ROUTES_FILE])["routes"])
        nodes_request = ObserveInput(org.slug, stack.name, deployed.revision, simulate)
        routes_query = RoutesQuery(org.slug, stack.name, deployed.revision, simulate)
        vpn = k.spec.network.vpn
        wants_mesh = vpn.enabled and vpn.provider == "wireguard"
        mesh_query = VpnQuery(org.slug, stack.name, deployed.revision, simulate)
        (seen, error), (routes, routes_error), (mesh, mesh_error) = await asyncio.gather(
            ask_nodes(client, settings, nodes_request),
            _ask_proxy(client, settings, routes_query) if wants_routes else _nothing(),
            _ask_mesh(client, settings, mesh_query) if wants_mesh else _nothing(),
        )
        observed = Observed(
            seen,
            routes,
            error,
            observed_at,
            routes_error=routes_error,
            vpn=mesh,
            vpn_error=mesh_error,
        )
    return build_graph(
        k,
        revision=row.revision,
        source="deployed" if deployed is not None else "current",
        deployed=deployed is not None,
        observed=observed,
        plan=plan,
    )


async def _nothing() -> tuple[None, None]:
    return None, None
