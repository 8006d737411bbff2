"""The dataclasses that cross the boundary of the swarm activities (no secrets: join tokens
stay inside FormSwarm)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kombify.contracts.deploy import NodeTarget, ServiceReport


@dataclass(frozen=True)
class SwarmInput:
    """One stack's swarm: its plan on disk and the nodes to reach."""

    deployment_id: str
    stack_id: str
    workdir: str
    nodes: list[NodeTarget]
    # ApplySwarm: "host" or "ingress", as FormSwarm chose it.
    publish_mode: str = "host"
    # ApplySwarm: StageImages shipped every node's images already (no probe needed).
    images_staged: bool = False


@dataclass(frozen=True)
class SwarmMember:
    """One node of the swarm as its managers see it."""

    name: str  # the kombination's node name ("" for a node kombify does not know)
    hostname: str
    role: str  # manager | worker
    state: str  # ready | down | unknown ...
    availability: str  # active | pause | drain
    leader: bool = False


@dataclass(frozen=True)
class SwarmFormed:
    """What FormSwarm did and found."""

    managers: int
    workers: int
    publish_mode: str  # host | ingress
    quorum: bool
    initialised: bool = False  # a new swarm was made on the first manager
    joined: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)
    demoted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # hostnames drained and removed
    members: list[SwarmMember] = field(default_factory=list)


@dataclass(frozen=True)
class SwarmRollout:
    """How the swarm's services ended (through which manager)."""

    manager: str
    services: list[ServiceReport]


@dataclass(frozen=True)
class SwarmHealth:
    """What HealSwarm found: whether the stack has a swarm, its quorum, nodes joined again."""

    swarm: bool
    quorum: bool = True
    rejoined: list[str] = field(default_factory=list)
    detail: str = ""
