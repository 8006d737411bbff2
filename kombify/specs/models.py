"""Pydantic models of a validated kombination, with defaults filled in.

Build them with :func:`kombify.specs.load_kombination`, which validates first: the models
trust their input's shape and only describe it for the rest of the code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kombify.specs.vpn import DEFAULT_SUBNET

Provider = Literal["local", "sim", "hetzner", "aws", "azure"]
CLOUD_PROVIDERS: frozenset[str] = frozenset({"hetzner", "aws", "azure"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Ssh(_Model):
    """How kombify logs in to a node."""

    user: str = "root"
    port: int = 22
    identity_file: str | None = Field(default=None, alias="identityFile")
    # The node's SSH host public key (``ssh-ed25519 AAAA...``): stated, it is the pin;
    # unset, kombify pins the key the node presents on first contact.
    host_key: str | None = Field(default=None, alias="hostKey")


class Resources(_Model):
    """What a node has; quantities stay as written (``4Gi``)."""

    cpus: float | None = None
    memory: str | None = None
    disk: str | None = None


class Node(_Model):
    """One machine of the homelab."""

    name: str
    provider: Provider
    role: str
    address: str | None = None
    ssh: Ssh = Ssh()
    resources: Resources | None = None
    type: str | None = None
    location: str | None = None

    @property
    def is_cloud(self) -> bool:
        """Whether kombify creates this node at a cloud provider."""
        return self.provider in CLOUD_PROVIDERS

    @property
    def host(self) -> str | None:
        """The address without a port (``192.168.1.10:2222`` -> ``192.168.1.10``)."""
        return split_address(self.address)[0] if self.address else None

    @property
    def ssh_port(self) -> int:
        """The SSH port: the one in ``address`` if written there, else ``ssh.port``."""
        if self.address:
            port = split_address(self.address)[1]
            if port is not None:
                return port
        return self.ssh.port


class Port(_Model):
    """A published port."""

    container: int
    host: int | None = None
    protocol: Literal["tcp", "udp"] = "tcp"


class Healthcheck(_Model):
    """How the node agent decides a service is healthy."""

    http: str | None = None
    tcp: int | None = None
    cmd: str | None = None
    interval: str = "30s"
    timeout: str | None = None
    retries: int | None = None
    start_period: str | None = None


class Expose(_Model):
    """How a service is reached through the kit's reverse proxy: ``https://<host>.<domain>``."""

    host: str
    port: int


class Service(_Model):
    """A service as the user wrote it: a catalog service's overrides, or a custom service."""

    image: str | None = None
    enabled: bool | None = None
    node: str | None = None
    ports: list[Port] | None = None
    env: dict[str, str | int | float | bool] | None = None
    volumes: list[str] | None = None
    command: list[str] | None = None
    replicas: int | None = None
    memory: str | None = None
    healthcheck: Healthcheck | None = None
    expose: Expose | None = None


class Vpn(_Model):
    """The overlay network joining nodes."""

    enabled: bool = False
    # wireguard: a mesh kombify builds on every node (docs/vpn.md); headscale: its server as
    # a container on the kit's vpn role, configured by kombify, every node enrolled in it.
    provider: Literal["headscale", "wireguard"] = "wireguard"
    # The mesh's private range (wireguard): each node gets one address of it, kept. With
    # headscale: its prefixes.v4 when given (else 100.64.0.0/10, kombify.unifier.headscale).
    subnet: str = DEFAULT_SUBNET


class Discovery(_Model):
    """Local service discovery."""

    mdns: bool = False


class Network(_Model):
    """Network settings."""

    vpn: Vpn = Vpn()
    discovery: Discovery = Discovery()


class Healing(_Model):
    """Self-healing settings."""

    enabled: bool = True
    every: str = "5m"
    strategy: Literal["restart", "redeploy", "reschedule"] = "restart"


class Tls(_Model):
    """Where the reverse proxy's certificates come from (docs/routes.md)."""

    issuer: Literal["internal", "acme"] = "internal"
    email: str | None = None


class Metadata(_Model):
    """Name and labels of the stack."""

    name: str
    labels: dict[str, str] = {}


class Spec(_Model):
    """What the homelab is made of. ``variant`` and ``domain`` are always filled in."""

    stackkit: str
    variant: str
    domain: str
    nodes: list[Node]
    services: dict[str, Service] = {}
    network: Network = Network()
    healing: Healing = Healing()
    tls: Tls = Tls()

    @property
    def stackkit_name(self) -> str:
        """The StackKit without its ``@version`` pin."""
        return self.stackkit.split("@", 1)[0]

    def node(self, name: str) -> Node:
        """The node called ``name`` (KeyError if there is none)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


class Kombination(_Model):
    """A whole kombination file, validated, with defaults filled in."""

    api_version: Literal["kombify.io/v1"] = Field(alias="apiVersion")
    kind: Literal["Kombination"]
    metadata: Metadata
    spec: Spec


def split_address(address: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` into host and port."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        return host, int(port) if port.isdigit() else None
    return address, None
