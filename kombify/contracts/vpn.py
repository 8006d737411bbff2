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
