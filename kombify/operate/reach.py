"""Reaching the node agents of a deployed stack, from any process (API or worker).

The same way the deploy and ``kombify status`` reach them: the deployed revision's nodes as
they can be reached now (a simulated node through its published SSH port), each held to its
host key pin, an SSH session, a tunnel to the agent's loopback port, and mutual TLS with the
control plane's client certificate. What this adds is the question "where does service X
run?": on a container kit, the nodes whose manifest has it. A swarm kit's Swarm services are
recognised, and refused for now (docs/services.md, "Limits").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from kombify.activities.agent import AgentActivities, node_identity
from kombify.activities.deploy import DeployActivities, simulation_name
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.models import Stack
from kombify.errors import AgentError, ConflictError, NotFoundError
from kombify.settings import Settings
from kombify.specs import Kombination, load_kombination
from kombify.unifier import unify

# How long connecting to one node (SSH, tunnel, mTLS) may take before it counts as unreachable.
CONNECT_TIMEOUT = 20.0


class ServiceNotFoundError(NotFoundError):
    """The stack's deployed revision has no service of that name."""

    code = "service-not-found"


@dataclass(frozen=True)
class DeployedStack:
    """A deployed stack's nodes and what each should run (its deployed revision's plan).

    Attributes:
        organisation: The organisation's slug.
        name: The stack's name.
        revision: The revision the last rollout deployed.
        targets: How to reach each node now (unpinned); a node missing here cannot be
            reached (a stopped simulated node).
        manifests: Each node's services as the plan has them, by node name.
        swarm: The swarm manifest of a swarm kit, else None.
    """

    organisation: str
    name: str
    revision: int
    targets: dict[str, NodeTarget]
    manifests: dict[str, dict[str, Any]]
    swarm: dict[str, Any] | None
    stack_row: Stack = field(repr=False)
    kombination: Kombination = field(repr=False)
    instances: dict[str, str] = field(repr=False, default_factory=dict)

    def services(self) -> list[str]:
        """Every service of the deployed revision, sorted."""
        names = {s["name"] for m in self.manifests.values() for s in m.get("services", [])}
        if self.swarm:
            names |= {str(s["name"]) for s in self.swarm.get("services", [])}
        return sorted(names)

    def is_swarm_service(self, service: str) -> bool:
        """Whether ``service`` runs as a Swarm service (a swarm kit's application)."""
        return bool(self.swarm) and any(
            s["name"] == service for s in (self.swarm or {}).get("services", [])
        )

    def nodes_of(self, service: str) -> list[str]:
        """The nodes whose manifest has ``service`` (a container kit's placement), sorted.

        Raises:
            ServiceNotFoundError: No service of that name in the deployed revision.
        """
        found = sorted(
            node
            for node, manifest in self.manifests.items()
            if any(s["name"] == service for s in manifest.get("services", []))
        )
        if not found and not self.is_swarm_service(service):
            known = ", ".join(f"`{s}`" for s in self.services()) or "none"
            raise ServiceNotFoundError(
                f"stack `{self.name}` has no service `{service}` in its deployed revision "
                f"{self.revision} (services: {known})"
            )
        return found


@asynccontextmanager
async def node_agent(
    agents: AgentActivities, organisation: str, stack: str, target: NodeTarget
) -> AsyncIterator[Any]:
    """An agent client of one node of a stack, through an SSH session to ``target``.

    ``target`` is used as given: pin it first (:meth:`StackReach.agent` does).

    Raises:
        AgentError: The node agent does not run, or does not answer as that node.
        SshError: SSH to the node failed.
    """
    async with node_session(target) as session:
        if not await agents._agent_running(session):
            raise AgentError(
                f"node `{target.name}`: its node agent is not running (the next apply starts it)"
            )
        identity = node_identity(organisation, stack, target.name)
        async with agents.agent(session, identity) as client:
            yield client


class StackReach:
    """Reaches the agents of deployed stacks with this installation's settings.

    Args:
        settings: Where the database, the PKI and the stacks' work directories are.
    """

    def __init__(self, settings: Settings, agents: AgentActivities | None = None) -> None:
        self.settings = settings
        self.agents = agents or AgentActivities(settings, DeployActivities(settings))
        self.deploy = self.agents.deploy

    def _locate(self, organisation: str, stack: str) -> DeployedStack:
        with self.deploy._session() as session:
            org = store.get_organisation(session, slug=organisation)
            row = store.get_stack(session, organisation_id=org.id, name=stack)
            deployed = runs.last_rollout(session, stack=row)
            if deployed is None:
                raise ConflictError(
                    f"stack `{stack}` is not deployed (never, or destroyed since): "
                    "deploy it first with `kombify apply`"
                )
            source = store.get_revision(session, stack=row, revision=deployed.revision).source
            simulate = runs.simulated(deployed)
            session.expunge(row)
        k = load_kombination(source, filename=f"{stack}.yaml")
        plan = unify(k)
        rewritten, targets, instances = self.deploy._targets(k, simulate, create=False)
        return DeployedStack(
            organisation=organisation,
            name=stack,
            revision=deployed.revision,
            targets={t.name: t for t in targets},
            manifests=dict(plan.manifests),
            swarm=plan.swarm,
            stack_row=row,
            kombination=rewritten,
            instances=instances,
        )

    async def locate(self, organisation: str, stack: str) -> DeployedStack:
        """The deployed stack ``stack`` of ``organisation``: its nodes and their plan.

        Raises:
            NotFoundError: No such organisation or stack.
            ConflictError: The stack is not deployed.
            SpecError: A node cannot be reached by kombify at all (a cloud node, no key).
        """
        return await asyncio.to_thread(self._locate, organisation, stack)

    async def _pinned(self, deployed: DeployedStack, target: NodeTarget) -> NodeTarget:
        _, pinned, _ = await asyncio.to_thread(
            self.deploy._pin, deployed.stack_row, deployed.kombination, [target], deployed.instances
        )
        return pinned[0]

    def target(self, deployed: DeployedStack, node: str) -> NodeTarget:
        """How to reach ``node`` now.

        Raises:
            AgentError: It cannot be reached now (a stopped simulated node).
        """
        target = deployed.targets.get(node)
        if target is None:
            raise AgentError(
                f"node `{node}` cannot be reached: its simulated node is not running "
                f"(`kombify sim start {simulation_name(deployed.name)}`)"
            )
        return target

    @asynccontextmanager
    async def agent(self, deployed: DeployedStack, node: str) -> AsyncIterator[Any]:
        """An :class:`~kombify.agent.client.AgentClient` of ``node``'s agent, ready to call.

        Raises:
            AgentError: The node cannot be reached, or its agent does not run.
            SshError: SSH to the node failed (HostKeyChangedError: not the pinned node).
        """
        target = await self._pinned(deployed, self.target(deployed, node))
        async with node_agent(self.agents, deployed.organisation, deployed.name, target) as client:
            yield client
