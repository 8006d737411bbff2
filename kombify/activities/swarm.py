"""Swarm activities: form a stack's swarm, roll its services out, dissolve it.

All of it goes through the node agents (gRPC over mTLS inside SSH tunnels). The join tokens
are read from a manager and handed to the joining agents inside :meth:`SwarmActivities.form`:
they never enter an activity's input or result, a log line, or an error message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import (
    AgentActivities,
    node_identity,
    service_reports,
    to_proto_manifest,
)
from kombify.activities.ssh import NodeSession, node_session
from kombify.contracts.deploy import NodeTarget
from kombify.contracts.swarm import SwarmFormed, SwarmInput, SwarmMember, SwarmRollout
from kombify.errors import AgentError, KombifyError
from kombify.unifier.swarm import NODE_LABEL, SWARM_MANIFEST_FILE

# How long a rollout may take before ApplySwarm gives up on a service (the agent's wait).
ROLLOUT_TIMEOUT_MS = 300_000


def read_swarm_manifest(workdir: str) -> dict[str, Any]:
    """The plan's swarm manifest (``manifests/_swarm.json``)."""
    data: dict[str, Any] = json.loads((Path(workdir) / SWARM_MANIFEST_FILE).read_text())
    return data


def swarm_proto_manifest(data: dict[str, Any], *, revision: str, publish_mode: str) -> Any:
    """The unifier's swarm manifest as the agent's ``SwarmManifest`` message."""
    from kombify.agent.proto import pb

    specs = to_proto_manifest(data, revision).services
    by_name = {s["name"]: s for s in data.get("services", [])}
    return pb.SwarmManifest(
        stack=data["stack"],
        revision=revision,
        network=data.get("network", ""),
        publish_mode=publish_mode,
        timeout_ms=ROLLOUT_TIMEOUT_MS,
        services=[
            pb.SwarmServiceSpec(
                spec=spec,
                mode=by_name[spec.name].get("mode", "replicated"),
                constraints=list(by_name[spec.name].get("constraints", [])),
            )
            for spec in specs
        ],
    )


def refuse_unplaceable(data: dict[str, Any]) -> None:
    """Refuses replicas a host-mode port cannot place: one task per node may hold the port.

    Without the ingress mesh (no IPVS on the nodes) the swarm would leave the extra tasks
    pending for ever; the owner hears it now, with the field to change.

    Raises:
        ApplicationError: Non-retryable, naming ``spec.services.<name>.replicas``.
    """
    for service in data.get("services", []):
        published = [p["host"] for p in service.get("ports", []) if p.get("host")]
        eligible = service.get("nodes", [])
        replicas = int(service.get("replicas") or 1)
        if published and service.get("mode") != "global" and replicas > len(eligible):
            raise ApplicationError(
                f"spec.services.{service['name']}.replicas: {replicas} replicas publish host "
                f"port {published[0]}, but only {len(eligible)} node(s) may run them and these "
                "nodes have no ingress routing mesh (no IPVS), so each node holds the port for "
                "one replica: lower replicas, or drop the host port",
                type="SpecError",
                non_retryable=True,
            )


def _application_error(exc: KombifyError) -> ApplicationError:
    return ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent)


def _as_wanted(member: Any, role: str, labels: dict[str, str]) -> bool:
    """Whether a swarm node already has the role, kombify's labels and is active."""
    ours = {k: v for k, v in member.labels.items() if k.startswith("io.kombify.")}
    return member.role == role and member.availability == "active" and ours == labels


class _Node:
    """A reachable node of the stack: its target, SSH session and agent client."""

    def __init__(self, target: NodeTarget, session: NodeSession, agent: Any) -> None:
        self.target = target
        self.session = session
        self.agent = agent

    @property
    def name(self) -> str:
        return self.target.name


class SwarmActivities:
    """FormSwarm, ApplySwarm, DissolveSwarm and the swarm part of status."""

    def __init__(self, agents: AgentActivities) -> None:
        self.agents = agents
        self.deploy = agents.deploy

    @asynccontextmanager
    async def _connected(
        self, request: SwarmInput, names: list[str] | None = None, *, reachable_only: bool = False
    ) -> AsyncIterator[list[_Node]]:
        """Agent clients of every node (or of ``names``), opened at once.

        ``reachable_only``: leave out nodes that cannot be reached now (a heal pass looks at
        what answers) instead of failing.
        """
        organisation, stack = Path(request.workdir).parts[-3:-1]
        cert = self.agents.control_cert()
        targets = [n for n in request.nodes if names is None or n.name in names]
        async with AsyncExitStack() as stack_:

            async def open_one(target: NodeTarget) -> _Node | None:
                try:
                    session = await stack_.enter_async_context(node_session(target))
                    identity = node_identity(organisation, stack, target.name)
                    client = await stack_.enter_async_context(
                        self.agents.agent(session, identity, cert)
                    )
                    if reachable_only:
                        await client.health()  # an agent not up yet counts as unreachable
                except KombifyError:
                    if not reachable_only:
                        raise
                    return None
                return _Node(target, session, client)

            opened = await asyncio.gather(*(open_one(t) for t in targets))
            yield [n for n in opened if n is not None]

    def _log(self, request: SwarmInput, line: str) -> None:
        if request.deployment_id:  # a heal pass has none: its incidents say what it did
            self.deploy.log(request.deployment_id, "swarm", line)

    # ---- FormSwarm -------------------------------------------------------------------------

    @activity.defn(name="FormSwarm")
    async def form(self, request: SwarmInput) -> SwarmFormed:
        """Init or find the swarm, join every node in its role, label them, drop leavers.

        Idempotent: a node already in the swarm is left as it is, roles and labels are set
        to what the kombination says, so a retry (or the next apply) converges.
        """
        labels = {n["name"]: n["labels"] for n in read_swarm_manifest(request.workdir)["nodes"]}
        try:
            async with self._connected(request) as nodes:
                return await self._form(request, nodes, labels)
        except KombifyError as exc:
            raise _application_error(exc) from exc

    async def _form(
        self, request: SwarmInput, nodes: list[_Node], labels: dict[str, dict[str, str]]
    ) -> SwarmFormed:
        statuses = dict(
            zip(
                [n.name for n in nodes],
                await asyncio.gather(*(n.agent.swarm_status() for n in nodes)),
                strict=True,
            )
        )
        managers = [n for n in nodes if n.target.role == "manager"]
        if not managers:
            raise ApplicationError(
                "a swarm needs at least one node with role `manager`",
                type="SpecError",
                non_retryable=True,
            )
        # The swarm of the stack: the one an active manager of the stack is in, preferring the
        # first manager in the kombination.
        leader = next(
            (
                n
                for n in managers
                if statuses[n.name].state == "active" and statuses[n.name].is_manager
            ),
            None,
        )
        initialised = False
        if leader is None:
            leader = managers[0]
            if statuses[leader.name].state != "inactive":
                await leader.agent.swarm_leave(force=True)
            statuses[leader.name] = await leader.agent.swarm_init(statuses[leader.name].address)
            initialised = True
            self._log(
                request, f"swarm initialised on {leader.name} ({statuses[leader.name].address})"
            )
        cluster = statuses[leader.name].cluster_id
        joined = await self._join_all(request, nodes, leader, statuses, cluster, labels)
        after, *own = await asyncio.gather(
            leader.agent.swarm_status(), *(n.agent.swarm_status() for n in nodes)
        )
        ids = {n.name: status.node_id for n, status in zip(nodes, own, strict=True)}
        promoted, demoted = await self._set_roles_and_labels(leader, nodes, ids, after, labels)
        removed = await self._drop_leavers(request, leader, ids, set(labels), after)
        final = await leader.agent.swarm_status()
        by_id = {v: k for k, v in ids.items()}
        mesh = all(s.ingress_mesh for s in statuses.values())
        publish_mode = "ingress" if mesh else "host"
        members = [
            SwarmMember(
                name=by_id.get(m.id, ""),
                hostname=m.hostname,
                role=m.role,
                state=m.state,
                availability=m.availability,
                leader=m.leader,
            )
            for m in final.nodes
        ]
        formed = SwarmFormed(
            managers=final.managers,
            workers=sum(1 for m in final.nodes if m.role == "worker"),
            publish_mode=publish_mode,
            quorum=final.quorum,
            initialised=initialised,
            joined=joined,
            promoted=promoted,
            demoted=demoted,
            removed=removed,
            members=members,
        )
        why = (
            "every node has IPVS"
            if mesh
            else "no IPVS on "
            + ", ".join(sorted(n for n, s in statuses.items() if not s.ingress_mesh))
        )
        self._log(
            request,
            f"swarm of {formed.managers} manager(s) and {formed.workers} worker(s), quorum "
            f"{'held' if formed.quorum else 'LOST'}; ports published in {publish_mode} mode "
            f"({why})",
        )
        return formed

    async def _join_all(
        self,
        request: SwarmInput,
        nodes: list[_Node],
        leader: _Node,
        statuses: dict[str, Any],
        cluster: str,
        labels: dict[str, dict[str, str]],
    ) -> list[str]:
        """Joins every node not in the leader's swarm; the tokens live only in this frame.

        A node that joined gets its labels from the leader at once, beside the joins still
        to come (a head start: :meth:`_set_roles_and_labels` afterwards sets whatever is not
        as wanted, so a label update that fails here only costs that one later).
        """
        # A worker's engine does not know the cluster's id: the leader's node list decides.
        members = {m.id for m in statuses[leader.name].nodes}

        def inside(status: Any) -> bool:
            return status.state == "active" and (
                status.cluster_id == cluster or status.node_id in members
            )

        outside = [n for n in nodes if n is not leader and not inside(statuses[n.name])]
        if not outside:
            return []
        tokens = await leader.agent.swarm_join_tokens()
        joined: list[str] = []
        labelling: list[asyncio.Task[None]] = []

        async def label(node: _Node, node_id: str) -> None:
            role = "manager" if node.target.role == "manager" else "worker"
            try:
                await leader.agent.swarm_update_node(
                    node_id, role=role, labels=labels.get(node.name, {}), availability="active"
                )
            except KombifyError:
                pass  # the pass after the joins sets them

        async def join(node: _Node) -> None:
            if statuses[node.name].state == "active":  # another swarm's member: it leaves first
                await node.agent.swarm_leave(force=True)
            token = tokens.manager_token if node.target.role == "manager" else tokens.worker_token
            status = await node.agent.swarm_join(tokens.manager_addr, token)
            joined.append(node.name)
            self._log(request, f"{node.name} joined the swarm as {node.target.role}")
            if status.node_id:
                labelling.append(asyncio.create_task(label(node, status.node_id)))

        async def managers_in_turn() -> None:
            for node in (n for n in outside if n.target.role == "manager"):
                await join(node)

        # Managers one at a time (each join changes the Raft membership, and a second one
        # before the first settled may cost the quorum); workers are no Raft members, so they
        # join at once, beside the managers, through the leader that was there before them.
        outcomes = await asyncio.gather(
            managers_in_turn(),
            *(join(n) for n in outside if n.target.role != "manager"),
            return_exceptions=True,  # none left joining behind a failure: all end, then it
        )
        await asyncio.gather(*labelling)  # each one swallows its own failure
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return sorted(joined)

    async def _set_roles_and_labels(
        self,
        leader: _Node,
        nodes: list[_Node],
        ids: dict[str, str],
        status: Any,
        labels: dict[str, dict[str, str]],
    ) -> tuple[list[str], list[str]]:
        current = {m.id: m for m in status.nodes}
        promoted: list[str] = []
        demoted: list[str] = []
        label_only: list[_Node] = []

        async def update(node: _Node, want: str) -> None:
            await leader.agent.swarm_update_node(
                ids[node.name],
                role=want,
                labels=labels.get(node.name, {}),
                availability="active",
            )

        for node in nodes:
            member = current.get(ids[node.name])
            want = "manager" if node.target.role == "manager" else "worker"
            if member is not None and _as_wanted(member, want, labels.get(node.name, {})):
                continue  # each update is a Raft write: none where nothing changes
            if member is not None and member.role == want:
                label_only.append(node)
                continue
            if member is not None:
                (promoted if want == "manager" else demoted).append(node.name)
            # A role change moves the Raft membership: one at a time, like the joins.
            await update(node, want)
        # Labels and availability touch one node object each (its own version), so they need
        # no order among them and go at once: a fresh swarm's 5 Raft writes together.
        await asyncio.gather(
            *(update(n, "manager" if n.target.role == "manager" else "worker") for n in label_only)
        )
        return promoted, demoted

    async def _drop_leavers(
        self,
        request: SwarmInput,
        leader: _Node,
        ids: dict[str, str],
        stack_nodes: set[str],
        status: Any,
    ) -> list[str]:
        """Drains, demotes and removes swarm nodes that are not nodes of the stack now.

        A node of the stack that could not be reached now (stopped) keeps its place: it
        rejoins by itself when it starts. An entry of a reached node under an old id (the
        node's engine was made anew) is stale and goes.
        """
        removed = []
        ours = set(ids.values())
        for member in status.nodes:
            name = member.labels.get(NODE_LABEL, "")
            if member.id in ours or (name in stack_nodes and name not in ids):
                continue
            await leader.agent.swarm_update_node(member.id, availability="drain")
            if member.role == "manager":
                await leader.agent.swarm_update_node(member.id, role="worker")
            await leader.agent.swarm_remove_node(member.id, force=True)
            removed.append(member.hostname)
            self._log(
                request,
                f"swarm node {member.hostname} ({member.state}) is not in the kombination: "
                "drained and removed",
            )
        return removed

    # ---- ApplySwarm ------------------------------------------------------------------------

    async def _manager(self, nodes: list[_Node]) -> _Node:
        """A manager of the stack whose agent answers and whose swarm has quorum."""
        last = "no node with role `manager` answers"
        for node in (n for n in nodes if n.target.role == "manager"):
            try:
                status = await node.agent.swarm_status()
            except AgentError as exc:
                last = exc.message
                continue
            if status.is_manager and status.quorum:
                return node
            last = (
                f"{node.name}: swarm {status.state}, manager {status.is_manager}, "
                f"quorum {status.quorum}"
            )
        raise AgentError(f"no swarm manager with quorum answers ({last})")

    @asynccontextmanager
    async def _first_manager(self, request: SwarmInput) -> AsyncIterator[_Node]:
        """What :meth:`_manager` finds, but each manager's connection opened only when the ones
        before it had no quorum: the rollout needs one, and every SSH session and mTLS
        handshake more costs the control host CPU beside the nodes' own rollouts.

        A manager that cannot be reached fails the activity as :meth:`_connected` does.
        """
        last = "no node with role `manager` answers"
        for target in (n for n in request.nodes if n.role == "manager"):
            opened = AsyncExitStack()
            [node] = await opened.enter_async_context(self._connected(request, [target.name]))
            try:
                status = await node.agent.swarm_status()
            except AgentError as exc:
                last = exc.message
                await opened.aclose()
                continue
            except BaseException:
                await opened.aclose()
                raise
            if status.is_manager and status.quorum:
                async with opened:
                    yield node
                return
            last = (
                f"{node.name}: swarm {status.state}, manager {status.is_manager}, "
                f"quorum {status.quorum}"
            )
            await opened.aclose()
        raise AgentError(f"no swarm manager with quorum answers ({last})")

    @activity.defn(name="ApplySwarm")
    async def apply(self, request: SwarmInput) -> SwarmRollout:
        """Ships the images the swarm needs where they lack, then converges the services."""
        data = read_swarm_manifest(request.workdir)
        if request.publish_mode == "host":
            refuse_unplaceable(data)
        revision = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
        manifest = swarm_proto_manifest(data, revision=revision, publish_mode=request.publish_mode)

        def on_line(line: str) -> None:
            activity.heartbeat(line[:80])
            self._log(request, line)

        def on_event(event: Any) -> None:
            if event.message:
                on_line(f"{event.service}: {event.message}" if event.service else event.message)

        try:
            if request.images_staged:
                # With every node's images staged beside the agent install, one manager is all
                # it needs.
                async with self._first_manager(request) as manager:
                    result = await manager.agent.apply_swarm(manifest, on_event)
            else:
                async with self._connected(request) as nodes:
                    await self._ship(nodes, data, on_line)
                    manager = await self._manager(nodes)
                    result = await manager.agent.apply_swarm(manifest, on_event)
        except KombifyError as exc:
            raise _application_error(exc) from exc
        return SwarmRollout(
            manager=manager.name,
            services=service_reports(result),
        )

    async def _ship(
        self, nodes: list[_Node], data: dict[str, Any], on_line: Callable[[str], None]
    ) -> None:
        """Every node that may run a task gets the service's image (no registry here)."""
        wanted: dict[str, set[str]] = {}
        for service in data.get("services", []):
            for name in service.get("nodes", []):
                if service.get("image"):
                    wanted.setdefault(name, set()).add(service["image"])
        await asyncio.gather(
            *(
                self.agents._ship_images(n.session, n.agent, sorted(wanted[n.name]), on_line)
                for n in nodes
                if n.name in wanted
            )
        )

    # ---- DissolveSwarm ---------------------------------------------------------------------

    @activity.defn(name="DissolveSwarm")
    async def dissolve(self, request: SwarmInput) -> list[str]:
        """Removes the stack's services and network, then every node leaves (workers first,
        the last manager by force), so no swarm state stays behind; the nodes that left."""
        stack = read_swarm_manifest(request.workdir)["stack"]
        left: list[str] = []
        try:
            async with self._connected(request) as nodes:
                statuses = await asyncio.gather(*(n.agent.swarm_status() for n in nodes))
                members = [
                    (n, s) for n, s in zip(nodes, statuses, strict=True) if s.state != "inactive"
                ]
                # A manager with quorum removes the services; without one (its managers lost
                # the quorum) the swarm cannot, and each node's forced leave below takes its
                # own tasks with it.
                manager = next((n for n, s in members if s.is_manager and s.quorum), None)
                if manager is not None:
                    removed = await manager.agent.remove_swarm_services(stack, remove_network=True)
                    if removed:
                        self._log(request, f"swarm services removed: {', '.join(removed)}")
                elif members:
                    self._log(request, "no swarm manager has quorum: every node leaves by force")
                workers = [n for n, s in members if not s.is_manager]
                await asyncio.gather(*(n.agent.swarm_leave(force=True) for n in workers))
                # Every other manager is demoted first (the swarm keeps its quorum while they
                # go), then leaves; the one that removed the services goes last.
                for node, status in members:
                    if status.is_manager and node is not manager:
                        if manager is not None:
                            await self._demote_if_it_may(request, manager, node, status.node_id)
                        await node.agent.swarm_leave(force=True)
                if manager is not None:
                    await manager.agent.swarm_leave(force=True)
                left = sorted(n.name for n, _ in members)
        except KombifyError as exc:
            raise _application_error(exc) from exc
        if left:
            self._log(request, f"swarm dissolved: {', '.join(left)} left it")
        return left

    async def _demote_if_it_may(
        self, request: SwarmInput, manager: _Node, node: _Node, node_id: str
    ) -> None:
        """Demote a manager before it leaves, which keeps the quorum while the swarm shrinks.

        Only a courtesy on the way out: the swarm refuses it when the Raft members left would
        lose their quorum (a manager that re-joined under another address leaves its old member
        behind, unreachable), and then the node leaves by force like the others; the swarm is
        going away either way.
        """
        try:
            await manager.agent.swarm_update_node(node_id, role="worker")
        except KombifyError as exc:
            self._log(
                request, f"{node.name} not demoted ({exc.message[-160:]}): it leaves by force"
            )

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register."""
        return [self.form, self.apply, self.dissolve]
