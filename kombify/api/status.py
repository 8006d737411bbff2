"""Turning what the nodes said (``StackSeen``) into the status the API and CLI show."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from kombify.api.stack_runs import not_asked
from kombify.contracts.observe import NodeSeen, ObserveInput, ServiceSeen, StackSeen, SwarmSeen
from kombify.db.models import (
    ContainerStatus,
    NodeStatus,
    ServiceStatus,
    SwarmServiceStatus,
    SwarmStatus,
    SwarmTaskStatus,
)
from kombify.settings import Settings
from kombify.workflows.observe import ObserveStackWorkflow, observe_workflow_id

# How long a status request waits for the worker's answer (each node has its own, shorter,
# limit inside ObserveStack, so one dead node never hides the others).
OBSERVE_WAIT = timedelta(seconds=40)
_HEALTHY = ("healthy", "none")


def _state(service: ServiceSeen, answered: bool) -> str:
    if not answered:
        return "unknown"
    running = [c for c in service.containers if c.state == "running"]
    if service.desired_replicas == 0:
        return "not-wanted" if service.containers else "removed"
    if not running and service.stopped_by_owner:
        return "stopped-by-owner"
    if not service.containers:
        return "missing"
    if not running:
        return service.containers[0].state
    return "running" if len(running) >= service.desired_replicas else "degraded"


def _health(service: ServiceSeen, answered: bool) -> str:
    running = [c for c in service.containers if c.state == "running"]
    if not answered or not running:
        return "unknown"
    words = {c.health for c in running}
    if words <= {"none"}:
        return "none"
    return "healthy" if words <= set(_HEALTHY) else "unhealthy"


def service_status(service: ServiceSeen, *, answered: bool) -> ServiceStatus:
    """One service's status word, health and containers, from its node's answer."""
    state = _state(service, answered)
    health = _health(service, answered)
    return ServiceStatus(
        state=state,
        healthy=state == "running" and health in _HEALTHY,
        health=health,
        desired_replicas=service.desired_replicas,
        image=service.image,
        containers=[c.id for c in service.containers],
        details=[
            ContainerStatus(id=c.id, state=c.state, health=c.health, image=c.image, since=c.since)
            for c in service.containers
        ],
        endpoints=service.endpoints,
        stopped_by_owner=service.stopped_by_owner,
    )


def node_status(node: NodeSeen) -> NodeStatus:
    """A node's status from its answer (or the reason it gave none)."""
    return NodeStatus(
        name=node.name,
        answered=node.answered,
        error=node.error or None,
        observed_at=node.observed_at,
        services={s.name: service_status(s, answered=node.answered) for s in node.services},
    )


def swarm_status(swarm: SwarmSeen) -> SwarmStatus:
    """A swarm kit's swarm from its manager's answer (or the reason none answered)."""
    return SwarmStatus(
        manager=swarm.manager,
        answered=swarm.answered,
        error=swarm.error or None,
        quorum=swarm.quorum,
        managers=swarm.managers,
        reachable_managers=swarm.reachable_managers,
        nodes=swarm.nodes,
        nodes_ready=swarm.nodes_ready,
        services={
            s.name: SwarmServiceStatus(
                mode=s.mode,
                wanted=s.wanted,
                running=s.running,
                healthy=s.running >= s.wanted > 0,
                publish_mode=s.publish_mode,
                image=s.image,
                tasks=[SwarmTaskStatus(node=t.node, state=t.state, error=t.error) for t in s.tasks],
                endpoints=s.endpoints,
                update_state=s.update_state,
                update_message=s.update_message,
            )
            for s in swarm.services
        },
    )


async def ask_nodes(
    client: Client, settings: Settings, request: ObserveInput
) -> tuple[StackSeen | None, str | None]:
    """What the nodes report now (ObserveStack), or why they could not be asked."""
    try:
        seen: StackSeen = await client.execute_workflow(
            ObserveStackWorkflow.run,
            request,
            id=observe_workflow_id(request.organisation, request.stack, uuid.uuid4().hex[:12]),
            task_queue=settings.task_queue,
            execution_timeout=OBSERVE_WAIT,
        )
    except (WorkflowFailureError, RPCError) as exc:
        return None, not_asked("the nodes", exc)
    return seen, None
