"""A WireGuard mesh for a stack: who gets which address, who peers with whom and how.

Pure functions of the stack's nodes, their public keys and where they sit (public, behind a
NAT, on which LAN), so they are tested without a node. The activity that applies the result
(``kombify.activities.vpn``) collects the keys and the places, and keeps the addresses.

Rules (docs/vpn.md):

* every node gets one address of the stack's subnet; an address once given stays with its
  node across applies, and a new node gets the lowest free one;
* every node lists every other node once, with that node's address as a /32;
* a node with a public address is an endpoint: every other node dials it there;
* two nodes on the same LAN dial each other's LAN address;
* a node behind NAT is no endpoint (nobody could reach it): it dials out and keeps its NAT
  mapping open with a persistent keepalive toward each public peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kombify.specs.vpn import DEFAULT_SUBNET, MESH_PORT, check_subnet

__all__ = ["DEFAULT_SUBNET", "check_subnet"]  # re-exported: the mesh's own checks

LISTEN_PORT = MESH_PORT
INTERFACE = "wg-kombify"
# Below the UDP timeouts of common NAT routers (30 s and more), as WireGuard's docs advise.
KEEPALIVE_S = 25


@dataclass(frozen=True)
class MeshNode:
    """One node as the mesh sees it.

    Attributes:
        name: Node name.
        public_key: Its WireGuard public key.
        public_address: An address anyone can reach it at ("" behind NAT).
        lan_address: Its address on its LAN ("" when it has none).
        lan: Which LAN that is (a network, or a name); nodes of one LAN dial each other there.
    """

    name: str
    public_key: str
    public_address: str = ""
    lan_address: str = ""
    lan: str = ""


@dataclass(frozen=True)
class PeerPlan:
    """One peer in one node's configuration."""

    name: str
    public_key: str
    allowed_ips: list[str]
    endpoint: str = ""
    persistent_keepalive: int = 0


@dataclass(frozen=True)
class NodePlan:
    """One node's WireGuard configuration (public data only)."""

    name: str
    address: str  # with the subnet's prefix, e.g. 10.66.0.1/24
    listen_port: int
    peers: list[PeerPlan] = field(default_factory=list)


def allocate(subnet: str, names: Sequence[str], kept: Mapping[str, str]) -> dict[str, str]:
    """An address (no prefix) for every name: kept ones stay, new ones get the lowest free.

    Addresses of nodes no longer in ``names``, and kept ones outside ``subnet`` (the subnet
    changed), are given out again.

    Raises:
        ValueError: The subnet has fewer host addresses than names.
    """
    network = check_subnet(subnet)
    hosts = list(network.hosts())
    valid = {str(h) for h in hosts}
    given: dict[str, str] = {}
    for name in names:
        address = kept.get(name)
        if address in valid and address not in given.values():
            given[name] = address
    taken = set(given.values())
    free = (str(h) for h in hosts if str(h) not in taken)
    for name in names:
        if name not in given:
            address = next(free, None)
            if address is None:
                raise ValueError(f"the mesh subnet {subnet} has no free address for `{name}`")
            given[name] = address
    return {name: given[name] for name in names}


def _route(me: MeshNode, peer: MeshNode, port: int) -> tuple[str, int]:
    """(endpoint, keepalive) of ``peer`` in ``me``'s configuration."""
    if me.lan and me.lan == peer.lan and peer.lan_address:
        return f"{peer.lan_address}:{port}", 0
    if peer.public_address:
        # Behind NAT, ``me`` keeps its mapping open, or ``peer`` could not answer for long.
        return f"{peer.public_address}:{port}", 0 if me.public_address else KEEPALIVE_S
    return "", 0  # behind NAT: it dials ``me`` (or, if both are, no direct path: see below)


def plan_mesh(
    subnet: str,
    nodes: Sequence[MeshNode],
    addresses: Mapping[str, str],
    *,
    port: int = LISTEN_PORT,
) -> list[NodePlan]:
    """Every node's configuration: each other node once, as endpoint, LAN peer or dialler."""
    prefix = check_subnet(subnet).prefixlen
    plans: list[NodePlan] = []
    for me in nodes:
        peers: list[PeerPlan] = []
        for peer in nodes:
            if peer.name == me.name:
                continue
            endpoint, keepalive = _route(me, peer, port)
            peers.append(
                PeerPlan(
                    name=peer.name,
                    public_key=peer.public_key,
                    allowed_ips=[f"{addresses[peer.name]}/32"],
                    endpoint=endpoint,
                    persistent_keepalive=keepalive,
                )
            )
        plans.append(NodePlan(me.name, f"{addresses[me.name]}/{prefix}", port, peers))
    return plans


def unreachable_pairs(nodes: Sequence[MeshNode]) -> list[tuple[str, str]]:
    """Pairs that can never meet: both behind NAT and not on one LAN (no relay here)."""
    pairs: list[tuple[str, str]] = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            if not a.public_address and not b.public_address and not (a.lan and a.lan == b.lan):
                pairs.append((a.name, b.name))
    return pairs


def lan_of(address: str, interfaces: Mapping[str, Sequence[str]]) -> str:
    """The network (CIDR) of the interface ``address`` is on, or "" when none holds it."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return ""
    for cidrs in interfaces.values():
        for cidr in cidrs:
            network = ipaddress.IPv4Interface(cidr).network
            if ip in network:
                return str(network)
    return ""
