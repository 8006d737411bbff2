"""The swarm half of ``kombify status`` on a swarm kit: asked live from a manager's agent.

Which node each task runs on, replicas running against wanted and the publish mode come from
the swarm itself (``ListSwarmServices``), never from the last deploy's record.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kombify.activities.agent import AgentActivities, node_identity
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget
from kombify.contracts.observe import SwarmSeen, SwarmServiceSeen, SwarmTaskSeen
from kombify.errors import KombifyError
from kombify.unifier.swarm import NODE_LABEL

NODE_TIMEOUT = 20.0


async def _ask(
    agents: AgentActivities, organisation: str, stack: str, target: NodeTarget
) -> tuple[Any, Any]:
    async with node_session(target) as session:
        identity = node_identity(organisation, stack, target.name)
        async with agents.agent(session, identity) as client:
            status = await client.swarm_status()
            if not status.is_manager or not status.quorum:
                raise KombifyError(
                    f"{target.name}: swarm {status.state}, manager {status.is_manager}, "
                    f"quorum {status.quorum}"
                )
            return status, await client.list_swarm_services(stack)


def _endpoints(
    service: Any, targets: dict[str, NodeTarget], sim_ports: dict[str, dict[int, int]]
) -> list[str]:
    running = sorted({t.node for t in service.tasks if t.state == "running"})
    # Host mode: a port answers only on the nodes running a task; ingress: on every node.
    nodes = running if service.publish_mode == "host" else sorted(targets)
    found = []
    for port in service.ports:
        where = f"{port.container_port}/{port.protocol or 'tcp'}"
        for name in nodes:
            target = targets.get(name)
            if target is None:
                continue
            if target.simulated:
                published = sim_ports.get(name, {}).get(port.host_port)
                if published:
                    found.append(f"127.0.0.1:{published} -> {where} ({name})")
            else:
                found.append(f"{target.host}:{port.host_port} -> {where} ({name})")
    return found


async def observe_swarm(
    agents: AgentActivities,
    *,
    organisation: str,
    stack: str,
    targets: list[NodeTarget],
    sim_ports: dict[str, dict[int, int]],
) -> SwarmSeen:
    """The swarm's nodes and the stack's services, from the first manager that answers."""
    last = "no manager of the stack is reachable"
    for target in (t for t in targets if t.role == "manager"):
        try:
            async with asyncio.timeout(NODE_TIMEOUT):
                status, listed = await _ask(agents, organisation, stack, target)
        except TimeoutError:
            last = f"{target.name}: did not answer within {NODE_TIMEOUT:.0f} s"
            continue
        except KombifyError as exc:
            last = exc.message
            continue
        by_name = {t.name: t for t in targets}
        # Swarm knows nodes by host name; kombify's node label says which node of the stack.
        names = {n.hostname: n.labels.get(NODE_LABEL, n.hostname) for n in status.nodes}
        for service in listed.services:
            for task in service.tasks:
                task.node = names.get(task.node, task.node)
        return SwarmSeen(
            manager=target.name,
            answered=True,
            error="",
            quorum=status.quorum,
            managers=status.managers,
            reachable_managers=status.reachable_managers,
            nodes=len(status.nodes),
            nodes_ready=sum(1 for n in status.nodes if n.state == "ready"),
            services=[
                SwarmServiceSeen(
                    name=s.name,
                    mode=s.mode,
                    wanted=s.replicas_wanted,
                    running=s.replicas_running,
                    publish_mode=s.publish_mode,
                    image=s.image,
                    tasks=[SwarmTaskSeen(t.node, t.state, t.error) for t in s.tasks],
                    endpoints=_endpoints(s, by_name, sim_ports),
                    update_state=s.update_state,
                    update_message=s.update_message,
                )
                for s in listed.services
            ],
        )
    return SwarmSeen(manager="", answered=False, error=last)
