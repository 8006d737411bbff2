"""What a stack's nodes report when asked now: the live half of ``kombify status``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ObserveInput:
    """Which deployed revision of which stack to observe.

    Attributes:
        organisation: The organisation's slug.
        stack: The stack's name.
        revision: The revision the last deploy rolled out (its services are the desired state).
        simulate: Whether that deploy ran on simulated nodes.
    """

    organisation: str
    stack: str
    revision: int
    simulate: bool = False


@dataclass(frozen=True)
class ContainerSeen:
    """One container as the node's engine reports it.

    Attributes:
        id: Full container id.
        state: Docker's state (running, exited, restarting ...).
        health: healthy, unhealthy or none (no health check), probed now.
        image: The image it runs.
        since: When it entered its state (RFC 3339), or empty.
    """

    id: str
    state: str
    health: str
    image: str
    since: str = ""


@dataclass(frozen=True)
class ServiceSeen:
    """A service on a node: what the spec wants beside what runs.

    Attributes:
        name: Service name.
        desired_replicas: Replicas the deployed revision wants here (0: not wanted any more).
        image: The image the deployed revision wants ("" when not wanted).
        containers: What runs (or stopped) on the node for it.
        endpoints: Where a user reaches it: ``host:port -> container port/protocol``.
        stopped_by_owner: Its owner stopped it (``kombify service stop``): held stopped on
            purpose, not healed, until ``start`` or the next apply.
    """

    name: str
    desired_replicas: int
    image: str
    containers: list[ContainerSeen] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    stopped_by_owner: bool = False


@dataclass(frozen=True)
class NodeSeen:
    """One node's answer, or why it gave none.

    Attributes:
        name: Node name.
        answered: Whether its agent answered.
        error: Why not, in the user's words ("" when it answered).
        observed_at: When it was asked (UTC, RFC 3339).
        services: Desired and running services; only desired ones when it did not answer.
    """

    name: str
    answered: bool
    error: str
    observed_at: str
    services: list[ServiceSeen] = field(default_factory=list)


@dataclass(frozen=True)
class StackSeen:
    """Every node of a stack, asked at the same time (and its swarm, on a swarm kit)."""

    nodes: list[NodeSeen] = field(default_factory=list)
    swarm: SwarmSeen | None = None


@dataclass(frozen=True)
class SwarmTaskSeen:
    """One task of a Swarm service: the node it runs on and Docker's task state."""

    node: str
    state: str
    error: str = ""


@dataclass(frozen=True)
class SwarmServiceSeen:
    """A Swarm service as a manager reports it now.

    Attributes:
        endpoints: Where it answers: ``host:port -> port/protocol`` on each node running a
            task (host-mode publishing), or on every node (ingress mesh).
    """

    name: str
    mode: str
    wanted: int
    running: int
    publish_mode: str
    image: str
    tasks: list[SwarmTaskSeen] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    update_state: str = ""
    update_message: str = ""


@dataclass(frozen=True)
class SwarmSeen:
    """A swarm kit's swarm, asked from one of its managers (or why none answered)."""

    manager: str
    answered: bool
    error: str
    quorum: bool = False
    managers: int = 0
    reachable_managers: int = 0
    nodes: int = 0
    nodes_ready: int = 0
    services: list[SwarmServiceSeen] = field(default_factory=list)
