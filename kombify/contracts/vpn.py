"""The dataclasses of the WireGuard mesh activity (public data only: no private key)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kombify.contracts.deploy import NodeTarget


@dataclass(frozen=True)
class MeshInput:
    """Bring the stack's mesh to its nodes (``state`` "down": take it away from them)."""

    deployment_id: str
    stack_id: str
    workdir: str
    nodes: list[NodeTarget]
    subnet: str = ""
    state: str = "up"  # up | down


@dataclass(frozen=True)
class MeshNodeResult:
    """One node's part of the mesh."""

    name: str
    address: str
    peers: int
    endpoint: str = ""  # where others dial it ("" behind NAT)
    changed: bool = False
    implementation: str = ""  # kernel | wireguard-go


@dataclass(frozen=True)
class MeshResult:
    """What the mesh is after the activity: addresses and peer counts."""

    subnet: str
    nodes: list[MeshNodeResult] = field(default_factory=list)
    # Pairs that have no direct path (both behind NAT, not on one LAN), as "a-b".
    unreachable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VpnQuery:
    """Which deployed revision of which stack to ask about its WireGuard mesh (for graphs)."""

    organisation: str
    stack: str
    revision: int
    simulate: bool = False


@dataclass(frozen=True)
class VpnNodeSeen:
    """One node's mesh interface as ``wg show`` reports it now (public data only).

    Attributes:
        name: Node name.
        answered: Whether the node could be asked.
        error: Why not ("" when it answered).
        interface: Whether the mesh's interface exists on it.
        public_key: The interface's public key ("" without one).
        addresses: The interface's IPv4 addresses (CIDR).
        handshakes: Peer public key -> seconds since the last handshake with it (-1: none
            yet), for every peer the interface lists.
    """

    name: str
    answered: bool
    error: str = ""
    interface: bool = False
    public_key: str = ""
    addresses: list[str] = field(default_factory=list)
    handshakes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VpnSeen:
    """Every node's mesh interface, asked at the same time."""

    interface: str
    nodes: list[VpnNodeSeen] = field(default_factory=list)
