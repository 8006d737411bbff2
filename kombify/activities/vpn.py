"""MeshVpn: the stack's WireGuard mesh, built through every node's agent.

Keys are made on the nodes and only their public halves travel (agent → here → other
agents); addresses are kept per stack in ``<stack>/mesh.json`` so a node keeps its address
across applies. Where a node sits (public, behind NAT, on which LAN) comes from what kombify
knows of it: a cloud node's address is public; a home node is behind NAT and on the LAN of
its address; a simulated node's place is its KombiSim network (kombify/sim/internet.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import AgentActivities, node_identity
from kombify.activities.deploy import mesh_file, simulation_name
from kombify.activities.heartbeat import heartbeating
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget
from kombify.contracts.vpn import MeshInput, MeshNodeResult, MeshResult
from kombify.errors import KombifyError
from kombify.specs.models import CLOUD_PROVIDERS
from kombify.unifier.mesh import (
    INTERFACE,
    LISTEN_PORT,
    MeshNode,
    NodePlan,
    allocate,
    lan_of,
    plan_mesh,
    unreachable_pairs,
)

_T = TypeVar("_T")
# A home node whose LAN cannot be told from its address (a host name) is taken to share the
# one home LAN with the stack's other home nodes: a kombination describes one homelab.
HOME_LAN = "home"


def _place_real(node: NodeTarget, interfaces: dict[str, list[str]]) -> tuple[str, str, str]:
    """(public address, LAN address, LAN) of a node that is not simulated."""
    if node.provider in CLOUD_PROVIDERS:
        return node.host, "", ""
    return "", node.host, lan_of(node.host, interfaces) or HOME_LAN


def _place_simulated(stack: str, names: list[str]) -> dict[str, tuple[str, str, str]]:
    """(public, LAN address, LAN) of each simulated node, from the networks it is on."""
    from kombify.sim import docker_client, labels

    sim = simulation_name(stack)
    client = docker_client()
    places: dict[str, tuple[str, str, str]] = {}
    try:
        for name in names:
            attrs = client.api.inspect_container(labels.container_name(sim, name))
            networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
            kind = (attrs.get("Config", {}).get("Labels") or {}).get(labels.TYPE, "local")
            online = (networks.get(labels.internet_network(sim)) or {}).get("IPAddress", "")
            lan = labels.lan_network(sim)
            if kind == "vps":
                places[name] = (online, "", "")
            else:
                lan_ip = (networks.get(lan) or {}).get("IPAddress", "")
                places[name] = ("", lan_ip, lan if lan_ip else "")
    finally:
        client.close()
    return places


def _load_addresses(path: Path, subnet: str) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("subnet") != subnet:
        return {}  # a new subnet: every node gets an address of it
    return {str(k): str(v) for k, v in (data.get("addresses") or {}).items()}


def _save_addresses(path: Path, subnet: str, addresses: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"subnet": subnet, "addresses": addresses}, indent=2) + "\n")
    os.replace(tmp, path)


class VpnActivities:
    """The mesh activity; reaches agents the way rollouts do (SSH tunnel, mTLS)."""

    def __init__(self, agents: AgentActivities) -> None:
        self.agents = agents

    def _log(self, request: MeshInput, message: str) -> None:
        self.agents.deploy.log(request.deployment_id, "vpn", message)

    async def _on_agent(
        self, request: MeshInput, node: NodeTarget, call: Callable[[Any], Awaitable[_T]]
    ) -> _T:
        parts = Path(request.workdir).parts  # .../stacks/<organisation>/<stack>/tofu
        identity = node_identity(parts[-3], parts[-2], node.name)
        async with (
            node_session(node) as session,
            self.agents.agent(session, identity) as client,
        ):
            return await call(client)

    async def _all(
        self,
        request: MeshInput,
        call: Callable[[NodeTarget, Any], Awaitable[_T]],
        *,
        nodes: list[NodeTarget] | None = None,
    ) -> list[_T]:
        """``call`` with each node's agent client, all at once; results in node order."""

        async def one(node: NodeTarget) -> _T:
            async def on_client(client: Any) -> _T:
                return await call(node, client)

            return await self._on_agent(request, node, on_client)

        targets = request.nodes if nodes is None else nodes
        return list(await asyncio.gather(*(one(node) for node in targets)))

    @activity.defn(name="MeshVpn")
    async def mesh(self, request: MeshInput) -> MeshResult:
        """Collect every node's public key, plan the mesh, apply it through every agent."""
        try:
            async with heartbeating("building the WireGuard mesh"):
                if request.state == "down":
                    return await self._down(request)
                return await self._up(request)
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent) from exc
        except ValueError as exc:  # the subnet is full: a user's change fixes it
            raise ApplicationError(str(exc), type="spec-error", non_retryable=True) from exc

    async def _up(self, request: MeshInput) -> MeshResult:
        keys = await self._all(request, lambda _, client: client.vpn_key(INTERFACE))
        simulated = [n.name for n in request.nodes if n.simulated]
        stack = Path(request.workdir).parts[-2]
        places = await asyncio.to_thread(_place_simulated, stack, simulated) if simulated else {}
        members: list[MeshNode] = []
        for node, key in zip(request.nodes, keys, strict=True):
            interfaces = {i.name: list(i.addresses) for i in key.interfaces}
            public, lan_address, lan = places.get(node.name) or _place_real(node, interfaces)
            members.append(MeshNode(node.name, key.public_key, public, lan_address, lan))
        path = mesh_file(Path(request.workdir))
        addresses = allocate(
            request.subnet,
            [m.name for m in members],
            _load_addresses(path, request.subnet),
        )
        # Kept before anything is applied, so a retry gives every node the same address.
        await asyncio.to_thread(_save_addresses, path, request.subnet, addresses)
        plans = {p.name: p for p in plan_mesh(request.subnet, members, addresses)}
        # Endpoints first: a node behind NAT greets its public peers as soon as it is
        # configured, and a greeting from a node its peer does not know yet is dropped (the
        # next try comes 5 s later, WireGuard's handshake retry).
        endpoints = {m.name for m in members if m.public_address}
        by_name: dict[str, Any] = {}
        for first in (True, False):
            wave = [n for n in request.nodes if (n.name in endpoints) == first]
            replies = await self._all(
                request,
                lambda node, client: client.apply_vpn(_request(plans[node.name])),
                nodes=wave,
            )
            by_name.update(zip((n.name for n in wave), replies, strict=True))
        replies = [by_name[m.name] for m in members]
        results = []
        for member, reply in zip(members, replies, strict=True):
            plan = plans[member.name]
            endpoint = f"{member.public_address}:{LISTEN_PORT}" if member.public_address else ""
            results.append(
                MeshNodeResult(
                    name=member.name,
                    address=plan.address,
                    peers=len(plan.peers),
                    endpoint=endpoint,
                    changed=reply.changed,
                    implementation=reply.implementation,
                )
            )
            where = f"endpoint {endpoint}" if endpoint else "behind NAT, no endpoint"
            self._log(
                request,
                f"{member.name}: {plan.address} on {INTERFACE} ({reply.implementation}), "
                f"{len(plan.peers)} peer(s), {where}" + ("" if reply.changed else ", unchanged"),
            )
        lonely = [f"{a}-{b}" for a, b in unreachable_pairs(members)]
        for pair in lonely:
            self._log(
                request,
                f"{pair.replace('-', ' and ')} are both behind NAT on different LANs: "
                "no direct tunnel between them",
            )
        return MeshResult(subnet=request.subnet, nodes=results, unreachable=lonely)

    async def _down(self, request: MeshInput) -> MeshResult:
        from kombify.agent.proto import pb

        down = pb.ApplyVpnRequest(interface=INTERFACE, down=True)
        replies = await self._all(request, lambda _, client: client.apply_vpn(down))
        for node, reply in zip(request.nodes, replies, strict=True):
            if reply.changed:
                self._log(request, f"{node.name}: {INTERFACE} removed (the stack has no VPN)")
        mesh_file(Path(request.workdir)).unlink(missing_ok=True)
        return MeshResult(subnet="")


def _request(plan: NodePlan) -> Any:
    from kombify.agent.proto import pb

    return pb.ApplyVpnRequest(
        interface=INTERFACE,
        address=plan.address,
        listen_port=plan.listen_port,
        peers=[
            pb.VpnPeer(
                public_key=p.public_key,
                allowed_ips=p.allowed_ips,
                endpoint=p.endpoint,
                persistent_keepalive=p.persistent_keepalive,
            )
            for p in plan.peers
        ],
    )
