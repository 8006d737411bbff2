"""ObserveStack: ask every node's agent what runs now, beside what the deployed spec wants.

This is where ``kombify status`` gets its truth: the node agents, asked live (containers,
state, health probed now), never the record of the last run. A node that does not answer is
reported with the reason, and its desired services are still listed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import AgentActivities
from kombify.activities.deploy import simulation_name, user_error
from kombify.activities.observe_swarm import observe_swarm
from kombify.contracts.deploy import NodeTarget, PrepareInput
from kombify.contracts.observe import (
    ContainerSeen,
    NodeSeen,
    ObserveInput,
    ServiceSeen,
    StackSeen,
)
from kombify.errors import KombifyError, NotFoundError, SpecError
from kombify.operate.reach import node_agent
from kombify.unifier import unify

# One node may take this long to answer (SSH, tunnel, mTLS, a health probe per container).
NODE_TIMEOUT = 20.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _endpoints(
    service: dict[str, Any], target: NodeTarget | None, sim_ports: dict[int, int]
) -> list[str]:
    found = []
    for port in service.get("ports", []):
        host_port = port.get("host")
        if not host_port or target is None:
            continue
        where = f"{port['container']}/{port.get('protocol', 'tcp')}"
        if target.simulated:
            # A simulated node's host ports are published again on this machine's loopback.
            published = sim_ports.get(int(host_port))
            if published:
                found.append(f"127.0.0.1:{published} -> {where}")
        else:
            found.append(f"{target.host}:{host_port} -> {where}")
    return found


def _services(
    manifest: dict[str, Any],
    target: NodeTarget | None,
    sim_ports: dict[int, int],
    reply: Any | None,
) -> list[ServiceSeen]:
    desired = {s["name"]: s for s in manifest.get("services", [])}
    running: dict[str, list[ContainerSeen]] = {}
    for c in reply.containers if reply is not None else []:
        running.setdefault(c.service, []).append(
            ContainerSeen(
                id=c.container_id, state=c.state, health=c.health, image=c.image, since=c.since
            )
        )
    held = set(reply.stopped_by_owner) if reply is not None else set()
    seen = []
    for name in sorted(desired.keys() | running.keys()):
        wanted = desired.get(name)
        seen.append(
            ServiceSeen(
                name=name,
                desired_replicas=int(wanted.get("replicas") or 1) if wanted else 0,
                image=str(wanted.get("image") or "") if wanted else "",
                containers=running.get(name, []),
                endpoints=_endpoints(wanted, target, sim_ports) if wanted else [],
                stopped_by_owner=name in held,
            )
        )
    return seen


class ObserveActivities:
    """Live observation of deployed stacks, through the node agents.

    Args:
        agent: The agent activities (their SSH tunnel and control-plane certificate).
    """

    def __init__(self, agent: AgentActivities) -> None:
        self.agent = agent
        self.deploy = agent.deploy

    def _sim_ports(self, stack: str) -> dict[str, dict[int, int]]:
        from kombify.sim.client import docker_client
        from kombify.sim.engine import SimEngine

        client = docker_client()
        try:
            info = SimEngine(client).find(simulation_name(stack))
        finally:
            client.close()
        return {n.name: dict(n.ports) for n in info.nodes} if info else {}

    async def _ask(self, request: ObserveInput, target: NodeTarget) -> Any:
        async with node_agent(self.agent, request.organisation, request.stack, target) as client:
            return await client.list_services(probe_health=True)

    async def _pinned(
        self, stack: Any, k: Any, instances: dict[str, str], target: NodeTarget
    ) -> NodeTarget:
        # Held to its host key pin like every deploy connection; a changed key is that node's
        # answer, not the whole status's.
        _, pinned, _ = await asyncio.to_thread(self.deploy._pin, stack, k, [target], instances)
        return pinned[0]

    async def _node(
        self,
        request: ObserveInput,
        pin: Callable[[NodeTarget], Awaitable[NodeTarget]],
        name: str,
        target: NodeTarget | None,
        manifest: dict[str, Any],
        sim_ports: dict[int, int],
    ) -> NodeSeen:
        observed_at = _now()
        if target is None:  # only a simulated node that is not running has no target
            why = f"the simulated node is not running: `kombify sim start {request.stack}`"
            return NodeSeen(name, False, why, observed_at, _services(manifest, None, {}, None))
        try:
            async with asyncio.timeout(NODE_TIMEOUT):
                reply = await self._ask(request, await pin(target))
        except TimeoutError:
            error = f"did not answer within {NODE_TIMEOUT:.0f} s"
        except KombifyError as exc:
            error = exc.message
        else:
            return NodeSeen(
                name, True, "", observed_at, _services(manifest, target, sim_ports, reply)
            )
        return NodeSeen(
            name, False, error, observed_at, _services(manifest, target, sim_ports, None)
        )

    @activity.defn(name="ObserveStack")
    async def observe(self, request: ObserveInput) -> StackSeen:
        """Every node of the stack's deployed revision, asked at once."""
        prepare = PrepareInput(
            "", request.organisation, request.stack, request.revision, request.simulate
        )
        try:
            stack, k = await asyncio.to_thread(self.deploy._load, prepare)
            _, targets, instances = await asyncio.to_thread(
                self.deploy._targets, k, request.simulate, create=False
            )
            # What each node should run does not depend on how it is reached, and a node that
            # cannot be reached now (left out of the targets) still has its services listed.
            plan = unify(k)
        except (SpecError, NotFoundError) as exc:
            raise user_error(exc) from exc
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code) from exc
        simulated = request.simulate or any(n.provider == "sim" for n in k.spec.nodes)
        sim_ports = await asyncio.to_thread(self._sim_ports, request.stack) if simulated else {}
        by_name = {t.name: t for t in targets}
        pin = functools.partial(self._pinned, stack, k, instances)
        nodes = await asyncio.gather(
            *(
                self._node(
                    request,
                    pin,
                    node.name,
                    by_name.get(node.name),
                    plan.manifests.get(node.name, {}),
                    sim_ports.get(node.name, {}),
                )
                for node in k.spec.nodes
            )
        )
        swarm = None
        if plan.swarm is not None:
            swarm = await observe_swarm(
                self.agent,
                organisation=request.organisation,
                stack=request.stack,
                targets=[await pin(t) for t in targets],
                sim_ports=sim_ports,
            )
        return StackSeen(nodes=list(nodes), swarm=swarm)
