"""KombiSim's values: what a simulation should be (specs) and what the engine says it is.

Specs are plain frozen dataclasses so they cross the Temporal boundary unchanged; the engine's
answers (:class:`NodeInfo`, :class:`NodeStats`) are built fresh from Docker on every call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kombify.names import SIMULATION_NAME_MAX, is_name

NodeType = Literal["local", "vps"]
NODE_TYPES: tuple[str, ...] = ("local", "vps")
DEFAULT_GROUP = "default"
DEFAULT_USER = "kombify"
DEFAULT_CPUS = 1.0
DEFAULT_MEMORY_MB = 512
LOOPBACK = "127.0.0.1"


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a DNS label of at most 32 characters (simulation/node/group names)."""
    return is_name(name, limit=SIMULATION_NAME_MAX)


@dataclass(frozen=True)
class NodeSpec:
    """One simulated node as wanted.

    Attributes:
        name: Hostname, unique within the simulation.
        group: Group the node belongs to (``lan``, ``cloud``...), for organising only.
        type: ``local`` (on the simulation's LAN network) or ``vps`` (own network, reachable
            only through published ports).
        cpus: CPU limit (Docker ``--cpus``).
        memory_mb: Memory limit in MiB (Docker ``--memory``).
        user: Login user, installed with the simulation's key.
        role: Free-form description (``nas``, ``pi``, ``gateway``), kept for export.
        ports: Extra container TCP ports to publish on 127.0.0.1 (SSH is always published).
    """

    name: str
    group: str = DEFAULT_GROUP
    type: str = "local"
    cpus: float = DEFAULT_CPUS
    memory_mb: int = DEFAULT_MEMORY_MB
    user: str = DEFAULT_USER
    role: str = ""
    ports: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeSpec:
        """The spec from :meth:`to_dict` output (unknown keys ignored, for older labels)."""
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        known["ports"] = [int(port) for port in known.get("ports", [])]
        return cls(**known)


@dataclass(frozen=True)
class SimulationSpec:
    """A whole simulation as wanted.

    Attributes:
        name: Simulation name (a DNS label); prefixes every Docker object it makes.
        nodes: The nodes, in order.
        description: One line for listings and exported templates.
    """

    name: str
    nodes: list[NodeSpec]
    description: str = ""

    @property
    def groups(self) -> list[str]:
        """Group names in first-use order."""
        return list(dict.fromkeys(node.group for node in self.nodes))

    @classmethod
    def uniform(
        cls, name: str, count: int, *, cpus: float = DEFAULT_CPUS,
        memory_mb: int = DEFAULT_MEMORY_MB, prefix: str = "node",
    ) -> SimulationSpec:
        """``count`` identical local nodes named ``node1``..``nodeN`` in group ``lan``."""
        nodes = [
            NodeSpec(name=f"{prefix}{index}", group="lan", cpus=cpus, memory_mb=memory_mb)
            for index in range(1, count + 1)
        ]
        return cls(name=name, nodes=nodes)

    @classmethod
    def named(cls, name: str, node_names: list[str], **node_fields: Any) -> SimulationSpec:
        """Local nodes with the given names in group ``lan`` (for OpenTofu/deploy tests)."""
        fields = {"group": "lan", **node_fields}
        return cls(name=name, nodes=[NodeSpec(name=node, **fields) for node in node_names])


@dataclass(frozen=True)
class SshEndpoint:
    """How to reach one node's sshd from this machine.

    Attributes:
        host: Always a loopback address: nodes are reached only through published ports.
        port: The published port (Docker picks it; it may change after stop/start).
        user: Login user.
        identity_file: Path of the simulation's private key.
        known_hosts_file: Per-simulation known_hosts used by ``kombify sim ssh``.
    """

    host: str
    port: int
    user: str
    identity_file: str
    known_hosts_file: str

    def command(self) -> list[str]:
        """A ready ``ssh`` command line."""
        return [
            "ssh",
            "-i", self.identity_file,
            "-p", str(self.port),
            "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={self.known_hosts_file}",
            "-o", "IdentitiesOnly=yes",
            "-o", "LogLevel=ERROR",
            f"{self.user}@{self.host}",
        ]

    def to_public(self) -> dict[str, Any]:
        """The JSON shape of ``--json`` output and the API (camelCase like ssh_config)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identityFile": self.identity_file,
            "command": " ".join(self.command()),
        }


@dataclass(frozen=True)
class NodeInfo:
    """One node as the engine reports it now.

    Attributes:
        spec: The node's spec (read back from the container's labels).
        state: Docker container state (``running``, ``exited``, ``created``...).
        container_id: Docker container id.
        ssh: Where sshd answers; None while the container is not running.
        ports: Extra published ports, container port -> host port on 127.0.0.1.
        host_key: The SSH host key the node presented to the login a create waited for
            (an OpenSSH public key line); empty when nothing logged in.
    """

    spec: NodeSpec
    state: str
    container_id: str
    ssh: SshEndpoint | None
    ports: dict[int, int] = field(default_factory=dict)
    host_key: str = ""

    @property
    def name(self) -> str:
        """The node's name."""
        return self.spec.name

    def to_public(self) -> dict[str, Any]:
        """The JSON shape of ``kombify sim info --json`` and the API."""
        return {
            "name": self.spec.name,
            "state": self.state,
            "type": self.spec.type,
            "group": self.spec.group,
            "role": self.spec.role,
            "cpus": self.spec.cpus,
            "memoryMb": self.spec.memory_mb,
            "containerId": self.container_id[:12],
            "ssh": self.ssh.to_public() if self.ssh else None,
            "ports": {str(key): value for key, value in self.ports.items()},
        }


@dataclass(frozen=True)
class SimulationInfo:
    """A simulation as the engine reports it now.

    Attributes:
        name: Simulation name.
        description: Description recorded at create.
        nodes: Every node found, in creation order.
    """

    name: str
    description: str
    nodes: list[NodeInfo]

    @property
    def state(self) -> str:
        """``running`` when all nodes run, ``stopped`` when none does, else ``partial``."""
        running = sum(node.state == "running" for node in self.nodes)
        if self.nodes and running == len(self.nodes):
            return "running"
        return "stopped" if running == 0 else "partial"

    def node(self, name: str) -> NodeInfo | None:
        """The node called ``name``, if any."""
        return next((node for node in self.nodes if node.name == name), None)

    def to_public(self) -> dict[str, Any]:
        """The JSON shape of ``kombify sim info --json`` and the API."""
        return {
            "name": self.name,
            "description": self.description,
            "state": self.state,
            "groups": list(dict.fromkeys(node.spec.group for node in self.nodes)),
            "nodes": [node.to_public() for node in self.nodes],
        }


@dataclass(frozen=True)
class NodeStats:
    """One node's resource use, sampled from the engine.

    Attributes:
        name: Node name.
        cpu_percent: CPU use over the sample, in percent of one CPU.
        memory_bytes: Memory in use (page cache excluded).
        memory_limit_bytes: Memory limit.
        rx_bytes: Bytes received over all interfaces.
        tx_bytes: Bytes sent over all interfaces.
    """

    name: str
    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int
    rx_bytes: int
    tx_bytes: int

    def to_public(self) -> dict[str, Any]:
        """The JSON shape of ``kombify sim stats --json`` and the API."""
        return {
            "name": self.name,
            "cpuPercent": round(self.cpu_percent, 2),
            "memoryBytes": self.memory_bytes,
            "memoryLimitBytes": self.memory_limit_bytes,
            "rxBytes": self.rx_bytes,
            "txBytes": self.tx_bytes,
        }


@dataclass(frozen=True)
class NodeEvent:
    """A node's state change, read from Docker's event stream.

    Attributes:
        simulation: Simulation name.
        node: Node name.
        action: Docker action (``start``, ``die``, ``stop``, ``destroy``...).
        time: Unix time of the event.
    """

    simulation: str
    node: str
    action: str
    time: float
