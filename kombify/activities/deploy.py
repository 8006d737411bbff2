"""Deploy activities around the database: prepare a plan on disk, record the outcome.

``prepare`` turns a stored revision into a unified plan in the stack's work directory and
resolves how to reach every node; for ``provider: sim`` nodes (and for every node when the
run rehearses with ``--simulate``) that means a KombiSim simulation named after the stack,
created when missing, whose nodes stand in for the real ones under the same names and roles.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.event_log import EventLog
from kombify.activities.heartbeat import heartbeating
from kombify.activities.hostkeys import pin_targets
from kombify.contracts.deploy import (
    ListStacksInput,
    NodeTarget,
    PreparedDeploy,
    PrepareInput,
    RecordInput,
)
from kombify.db import deployments as runs
from kombify.db import stacks
from kombify.db.engine import get_engine
from kombify.db.models import Event, Stack
from kombify.errors import HostKeyChangedError, KombifyError, NotFoundError, SpecError
from kombify.hostkeys import HostKey
from kombify.names import contained
from kombify.settings import Settings
from kombify.specs import load_kombination
from kombify.specs.models import Kombination
from kombify.specs.models import Node as SpecNode
from kombify.unifier import unify, write_plan
from kombify.unifier.headscale import ENROLL_FILE

if TYPE_CHECKING:  # kombify.sim (docker SDK and all) is imported where it is used
    from kombify.sim.models import SshEndpoint

AGENT_PORT = 7443


def stack_workdir(settings: Settings, organisation: str, stack: str) -> Path:
    """Where a stack's OpenTofu configuration and state live (one per stack, kept).

    Raises:
        InvalidName: The organisation or stack is not a name.
    """
    return contained(settings.home / "stacks", organisation, stack) / "tofu"


def mesh_file(workdir: Path) -> Path:
    """Where a stack's WireGuard mesh keeps its node addresses (beside its tofu directory)."""
    return workdir.parent / "mesh.json"


def simulated_target(name: str, role: str, ep: SshEndpoint) -> NodeTarget:
    """How to reach a simulated node, from its published SSH endpoint."""
    return NodeTarget(
        name, "sim", role, ep.host, ep.port, ep.user, ep.identity_file, simulated=True
    )


def simulation_name(stack: str) -> str:
    """The simulation that stands in for a stack's nodes."""
    return stack


def user_error(exc: KombifyError) -> ApplicationError:
    """A user mistake: no retry will fix it, the message says what to change."""
    return ApplicationError(exc.message, type=exc.code, non_retryable=True)


def _memory_mb(quantity: str | None) -> int | None:
    if not quantity:
        return None
    from kombify.specs.quantities import parse_quantity

    size = parse_quantity(quantity)
    return max(64, size // (1024 * 1024)) if size else None


def _host_ports(plan_manifests: dict[str, dict[str, Any]]) -> dict[str, list[int]]:
    """Per node, the host ports its services publish (so the simulation exposes them too)."""
    ports: dict[str, list[int]] = {}
    for node, manifest in plan_manifests.items():
        found = sorted(
            {p["host"] for s in manifest.get("services", []) for p in s["ports"] if p.get("host")}
        )
        ports[node] = found
    return ports


def _swarm_host_ports(swarm: dict[str, Any] | None, ports: dict[str, list[int]]) -> None:
    """Adds the swarm's published ports to every node that may run one of its tasks."""
    for service in (swarm or {}).get("services", []):
        published = {p["host"] for p in service["ports"] if p.get("host")}
        for node in service.get("nodes", []):
            ports[node] = sorted(set(ports.get(node, [])) | published)


def _check_keys(stack: str, endpoints: dict[str, Any], simulate: bool) -> None:
    """Refuse a simulation whose key this home cannot read, naming the command that re-keys it.

    Raises:
        SpecError: A node's key file cannot be read.
    """
    for node, endpoint in sorted(endpoints.items()):
        if not os.access(endpoint.identity_file, os.R_OK):
            flag = " --simulate" if simulate else ""
            raise SpecError(
                f"node `{node}`: simulation `{stack}` was made by another KOMBIFY_HOME (its key "
                f"`{endpoint.identity_file}` cannot be read here); re-key it with "
                f"`kombify apply{flag} <the stack's kombination file>`, then run this again"
            )


def tofu_level(line: str) -> str:
    """The level of an OpenTofu output line: its diagnostics start ``Error:`` or ``Warning:``
    (inside its box drawing when it draws one)."""
    text = line.lstrip("│╷╵ ")
    if text.startswith("Error:"):
        return "error"
    if text.startswith("Warning:"):
        return "warning"
    return "info"


class DeployActivities:
    """Activities that read and write kombify's database and the stacks' work directories."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._url = settings.resolved_database_url
        self._deployment_of_stack: dict[str, str] = {}
        self.events = EventLog(self._session)

    # ---- helpers ---------------------------------------------------------------------------

    def _session(self) -> Session:
        return Session(get_engine(self._url))

    def log(self, deployment_id: str, source: str, message: str, level: str = "info") -> None:
        """Store one output line with the deployment (the live stream reads these).

        Queued, not written here: callers run on the event loop (see :mod:`.event_log`).
        """
        self.events.add(
            Event(
                subject=f"deployment/{deployment_id}",
                source=source,
                level=level,
                message=message,
            )
        )

    def tofu_sink(self, stack_id: str, line: str) -> None:
        """Receives every (masked) OpenTofu line; files it under the stack's running deploy."""
        deployment_id = self._deployment_of_stack.get(stack_id)
        if deployment_id is None:
            with self._session() as session:
                deployment_id = runs.newest_deployment_id(session, stack_id=stack_id)
            if deployment_id is None:
                return
        self.log(deployment_id, "tofu", line, tofu_level(line))

    def _load(self, request: PrepareInput) -> tuple[Stack, Kombination]:
        with self._session() as session:
            org = stacks.get_organisation(session, slug=request.organisation)
            stack = stacks.get_stack(session, organisation_id=org.id, name=request.stack)
            source = stacks.get_revision(session, stack=stack, revision=request.revision).source
            session.expunge(stack)
        kombination = load_kombination(source, filename=f"{request.stack}.yaml")
        with self._session() as session:
            # The API makes a newly sent revision current once its run started; doing it here
            # too keeps that true when the API died right after starting the run.
            stacks.promote_revision(
                session,
                stack_id=stack.id,
                revision=request.revision,
                stackkit=kombination.spec.stackkit,
            )
        return stack, kombination

    # ---- nodes -----------------------------------------------------------------------------

    def _simulated(self, k: Kombination, simulate: bool) -> list[SpecNode]:
        return [n for n in k.spec.nodes if simulate or n.provider == "sim"]

    def _ensure_simulation(
        self,
        k: Kombination,
        nodes: list[SpecNode],
        host_ports: dict[str, list[int]],
        report: Callable[[str], None] | None = None,
    ) -> tuple[dict[str, Any], dict[str, str], dict[str, HostKey]]:
        """Create the stack's simulation, or make the one there match the stack (ports,
        limits, this home's key: see :meth:`SimEngine.create`); SSH endpoints, containers and
        the host keys the nodes presented to the wait's login, by node."""
        from kombify.sim import SimulationSpec, create_simulation
        from kombify.sim.models import NodeSpec

        specs = []
        for node in nodes:
            extra: dict[str, Any] = {}
            resources = node.resources
            if resources and resources.cpus:
                extra["cpus"] = float(resources.cpus)
            memory = _memory_mb(resources.memory if resources else None)
            if memory:
                extra["memory_mb"] = memory
            specs.append(
                NodeSpec(
                    name=node.name,
                    group="cloud" if node.is_cloud else "lan",
                    type="vps" if node.is_cloud else "local",
                    role=node.role,
                    ports=host_ports.get(node.name, []),
                    **extra,
                )
            )
        spec = SimulationSpec(
            name=simulation_name(k.metadata.name),
            nodes=specs,
            description=f"rehearsal of stack {k.metadata.name}",
        )
        info = create_simulation(
            spec.name, spec, wait=True, timeout=180, converge=True, report=report
        )
        return (
            {n.name: n.ssh for n in info.nodes if n.ssh is not None},
            {n.name: n.container_id for n in info.nodes},
            {n.name: HostKey.parse(n.host_key) for n in info.nodes if n.host_key},
        )

    @staticmethod
    def _running_simulation(name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The stack's simulation as it runs (none: empty): endpoints and containers by node."""
        from kombify.sim import SimEngine, docker_client

        client = docker_client()
        try:
            info = SimEngine(client).info(name)
        except NotFoundError:
            return {}, {}
        finally:
            client.close()
        return (
            {n.name: n.ssh for n in info.nodes if n.ssh is not None},
            {n.name: n.container_id for n in info.nodes},
        )

    def _targets(
        self,
        k: Kombination,
        simulate: bool,
        *,
        create: bool,
        report: Callable[[str], None] | None = None,
        stopped: list[str] | None = None,
        presented: dict[str, HostKey] | None = None,
    ) -> tuple[Kombination, list[NodeTarget], dict[str, str]]:
        """The nodes to reach, the kombination rewritten to reach simulated ones, and the
        container of each simulated node. Simulated nodes that ``create`` waited for add the
        host key they presented to ``presented``."""
        simulated = self._simulated(k, simulate)
        endpoints: dict[str, Any] = {}
        instances: dict[str, str] = {}
        if simulated:
            if create:
                plan0 = unify(k)
                ports = _host_ports(plan0.manifests)
                _swarm_host_ports(plan0.swarm, ports)
                endpoints, instances, seen = self._ensure_simulation(k, simulated, ports, report)
                if presented is not None:
                    presented.update(seen)
            else:
                endpoints, instances = self._running_simulation(simulation_name(k.metadata.name))
                _check_keys(k.metadata.name, endpoints, simulate)
        targets: list[NodeTarget] = []
        nodes: list[SpecNode] = []
        for node in k.spec.nodes:
            if node in simulated:
                ep = endpoints.get(node.name)
                if ep is None:
                    # Gone with its simulation: nothing left on it. A stopped node still holds
                    # its containers: the caller hears of it (``stopped``).
                    if node.name in instances and stopped is not None:
                        stopped.append(node.name)
                    continue
                node = node.model_copy(
                    update={
                        "provider": "sim",
                        "address": f"{ep.host}:{ep.port}",
                        # ``address`` carries the published port kombify dials; sshd inside
                        # the node listens on its usual port, which the firewall keeps open.
                        "ssh": node.ssh.model_copy(
                            update={
                                "user": ep.user,
                                "port": 22,
                                "identity_file": ep.identity_file,
                                "host_key": None,  # the real node's key, not its stand-in's
                            }
                        ),
                        "type": None,
                        "location": None,
                    }
                )
                targets.append(simulated_target(node.name, node.role, ep))
            elif node.is_cloud:
                raise SpecError(
                    f"node `{node.name}` is a {node.provider} server: creating cloud servers needs "
                    "the provider's OpenTofu plugin and credentials, which this installation does "
                    "not have; rehearse the stack with `kombify apply --simulate`"
                )
            else:
                if not node.ssh.identity_file:
                    raise SpecError(
                        f"node `{node.name}`: set spec.nodes[].ssh.identityFile to the key kombify "
                        "logs in with"
                    )
                targets.append(
                    NodeTarget(
                        node.name,
                        node.provider,
                        node.role,
                        node.host or "",
                        node.ssh_port,
                        node.ssh.user,
                        str(Path(node.ssh.identity_file).expanduser()),
                    )
                )
            nodes.append(node)
        spec = k.spec.model_copy(update={"nodes": nodes})
        return k.model_copy(update={"spec": spec}), targets, instances

    def resolve_targets(
        self, k: Kombination, simulate: bool
    ) -> tuple[list[NodeTarget], dict[str, str]]:
        """The nodes of ``k`` as they can be reached now, unpinned (creates nothing).

        Raises:
            SpecError: A node cannot be reached by kombify (a cloud node, no key).
        """
        _, targets, instances = self._targets(k, simulate, create=False)
        return targets, instances

    def _pin(
        self,
        stack: Stack,
        k: Kombination,
        targets: list[NodeTarget],
        instances: dict[str, str],
        presented: dict[str, HostKey] | None = None,
    ) -> tuple[Kombination, list[NodeTarget], list[str]]:
        """Hold every node to its host key pin (recording first contacts); see hostkeys.
        ``presented``: keys nodes showed moments ago (a simulation's wait), not read again."""
        stated = {n.name: HostKey.parse(n.ssh.host_key) for n in k.spec.nodes if n.ssh.host_key}
        pinned, lines = pin_targets(
            self._session,
            stack_id=stack.id,
            stack=stack.name,
            targets=targets,
            stated=stated,
            instances=instances,
            presented=presented,
        )
        # OpenTofu's connection verifies the same key: the plan carries every pin.
        keys = {t.name: t.host_key for t in pinned}
        nodes = [
            n.model_copy(update={"ssh": n.ssh.model_copy(update={"host_key": keys[n.name]})})
            if n.name in keys
            else n
            for n in k.spec.nodes
        ]
        spec = k.spec.model_copy(update={"nodes": nodes})
        return k.model_copy(update={"spec": spec}), pinned, lines

    def _prepare(self, request: PrepareInput, *, create: bool) -> PreparedDeploy:
        try:
            stack, k = self._load(request)
            stopped: list[str] = []
            presented: dict[str, HostKey] = {}
            rewritten, targets, instances = self._targets(
                k,
                request.simulate,
                create=create,
                report=lambda line: self.log(request.deployment_id, "kombisim", line),
                stopped=stopped,
                presented=presented,
            )
            if stopped and request.refuse_stopped:
                raise SpecError(
                    f"simulated node(s) {', '.join(f'`{n}`' for n in stopped)} of stack "
                    f"`{request.stack}` are stopped, so what runs on them cannot be removed: "
                    f"start them (`kombify sim start {simulation_name(request.stack)}`) and run "
                    f"it again, or `kombify destroy {request.stack} --force` to leave them"
                )
            rewritten, targets, pin_lines = self._pin(
                stack, rewritten, targets, instances, presented
            )
            plan = unify(rewritten)
            workdir = stack_workdir(self.settings, request.organisation, request.stack)
        except (SpecError, NotFoundError, HostKeyChangedError) as exc:
            raise user_error(exc) from exc
        self._deployment_of_stack[stack.id] = request.deployment_id
        for line in pin_lines:
            self.log(request.deployment_id, "ssh", line)
        if create:
            write_plan(plan, workdir)
            self.log(
                request.deployment_id,
                "kombify",
                f"plan {plan.fingerprint[-12:]} for {len(targets)} node(s) written to {workdir}",
            )
        vpn = rewritten.spec.network.vpn
        mesh = vpn.enabled and vpn.provider == "wireguard"
        return PreparedDeploy(
            stack_id=stack.id,
            workdir=str(workdir),
            nodes=targets,
            plan_hash=plan.fingerprint,
            skipped=[f"{name}: the simulated node is stopped" for name in stopped],
            platform="swarm" if plan.swarm is not None else "",
            vpn="wireguard" if mesh else ("down" if mesh_file(workdir).exists() else ""),
            vpn_subnet=vpn.subnet if mesh else "",
            headscale=ENROLL_FILE in plan.files,
        )

    @activity.defn(name="PrepareDeployment")
    async def prepare(self, request: PrepareInput) -> PreparedDeploy:
        """Validate the revision, reach or create its nodes, write the unified plan.

        Building the node image or waiting for new nodes' SSH takes minutes at times: the
        activity heartbeats all along, so only a dead worker runs into its heartbeat timeout.
        """
        async with heartbeating("preparing"):
            return await asyncio.to_thread(self._prepare, request, create=True)

    @activity.defn(name="ResolveStackNodes")
    async def stack_nodes(self, request: PrepareInput) -> PreparedDeploy:
        """The nodes of a deployed stack, as they can be reached now (for destroy)."""
        async with heartbeating("resolving nodes"):
            return await asyncio.to_thread(self._prepare, request, create=False)

    @activity.defn(name="ListDeployedStacks")
    def deployed_stacks(self, _: ListStacksInput) -> list[PrepareInput]:
        """Every stack that is deployed (no destroy since its last good deploy), as deployed."""
        found: list[PrepareInput] = []
        with self._session() as session:
            for org, stack in stacks.all_stacks(session):
                last = runs.last_good_deploy(session, stack=stack)
                if last is None:
                    continue
                options = last.summary.get("options", {})
                found.append(
                    PrepareInput(
                        deployment_id=last.id,
                        organisation=org.slug,
                        stack=stack.name,
                        revision=last.revision,
                        simulate=bool(options.get("simulate", False)),
                    )
                )
        return found

    # ---- outcome ---------------------------------------------------------------------------

    @activity.defn(name="RecordDeployment")
    def record(self, request: RecordInput) -> None:
        """Store the run's outcome and the nodes' last known state."""
        if request.error:  # the run's own last line says why it failed
            level = "warning" if request.state == "cancelled" else "error"
            self.log(request.deployment_id, "kombify", f"{request.state}: {request.error}", level)
        self.events.flush()  # the run's output is complete once its outcome is
        summary = {
            "plan": request.plan,
            "error": request.error,
            "nodes": {
                n.name: {"state": n.state, "services": n.services, "healthy": n.healthy}
                for n in request.nodes
            },
        }
        nodes = {
            n.name: {
                "provider": n.provider,
                "role": n.role,
                "state": n.state,
                "services": {
                    name: {
                        "state": state,
                        "healthy": n.healthy.get(name, False),
                        "containers": n.containers.get(name, []),
                    }
                    for name, state in n.services.items()
                },
            }
            for n in request.nodes
        }
        try:
            with self._session() as session:
                runs.record_outcome(
                    session,
                    deployment_id=request.deployment_id,
                    state=request.state,
                    summary=summary,
                    nodes=nodes,
                    forget_nodes=request.forget_nodes,
                )
        except NotFoundError as exc:
            raise ApplicationError(
                f"deployment {request.deployment_id} is not recorded", non_retryable=True
            ) from exc
