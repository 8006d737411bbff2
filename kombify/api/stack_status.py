"""A stack's status asked live from its nodes: what the JSON route and the live stream answer."""

from __future__ import annotations

from sqlmodel import Session
from temporalio.client import Client

from kombify.api.status import ask_nodes, node_status, swarm_status
from kombify.contracts.observe import ObserveInput
from kombify.db import deployments as runs
from kombify.db.models import NodeStatus, Organisation, Stack, StackStatus, SwarmStatus
from kombify.operate.start_run import deployment_public
from kombify.settings import Settings


async def observe_status(
    *, session: Session, client: Client, settings: Settings, org: Organisation, stack: Stack
) -> StackStatus:
    """What runs on the stack's nodes now, asked through a worker (``ObserveStack``).

    A node that does not answer is listed with the reason; Temporal or the worker failing is
    the answer's ``error`` (``observed`` false), never an exception.
    """
    last = runs.latest_deployment(session, stack=stack)
    deployed = runs.last_rollout(session, stack=stack)
    nodes: list[NodeStatus] = []
    swarm: SwarmStatus | None = None
    error: str | None = None
    if deployed is not None:
        request = ObserveInput(org.slug, stack.name, deployed.revision, runs.simulated(deployed))
        seen, error = await ask_nodes(client, settings, request)
        if seen is not None:
            nodes = [node_status(n) for n in seen.nodes]
            swarm = swarm_status(seen.swarm) if seen.swarm is not None else None
    return StackStatus(
        stack=stack.name,
        revision=stack.current_revision,
        deployed_revision=deployed.revision if deployed else None,
        observed=deployed is not None and error is None,
        error=error,
        last_deployment=deployment_public(stack, last, None) if last else None,
        nodes=nodes,
        swarm=swarm,
    )
