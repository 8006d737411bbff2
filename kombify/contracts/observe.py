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
    """

    name: str
    desired_replicas: int
    image: str
    containers: list[ContainerSeen] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)


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
    """Every node of a stack, asked at the same time."""

    nodes: list[NodeSeen] = field(default_factory=list)
