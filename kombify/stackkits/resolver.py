"""Resolve a kombination against its StackKit: merged settings, services, per-node bootstrap.

Layers merge in this order, later winning (see :mod:`kombify.stackkits.merge`)::

    core < platform < kit < variant < user

``user`` is what the kombination says: ``spec.domain``, ``spec.healing``, ``spec.network``
as settings, and each ``spec.services.<name>`` over the catalog entry of that service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombify.specs.models import Kombination, Node
from kombify.specs.vpn import MESH_PORT
from kombify.stackkits.library import Kit, Library, Platform, Step, Variant, load_library
from kombify.stackkits.merge import merge
from kombify.stackkits.placement import NodeRef, PlannedService, plan_services
from kombify.stackkits.render import render


@dataclass(frozen=True)
class ResolvedService:
    """A service with its final definition and the nodes it runs on."""

    name: str
    origin: str
    use: str | None
    nodes: tuple[str, ...]
    definition: dict[str, Any]


@dataclass(frozen=True)
class ResolvedNode:
    """A node with what it must have: its settings, bootstrap script and services."""

    node: Node
    settings: dict[str, Any]
    bootstrap: str
    services: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedStack:
    """Everything the unifier needs to write a plan."""

    kombination: Kombination
    kit: Kit
    platform: Platform
    variant: Variant
    settings: dict[str, Any]
    services: tuple[ResolvedService, ...]
    nodes: tuple[ResolvedNode, ...]


def layer_settings(
    kit_name: str, variant: str, *, library: Library | None = None
) -> dict[str, Any]:
    """Settings merged from core, platform, kit and variant (no user layer)."""
    lib = library or load_library()
    kit = lib.kit(kit_name)
    return merge(
        lib.core.settings,
        lib.platforms[kit.platform].settings,
        kit.settings,
        lib.variants[variant].settings,
    )


def user_settings(k: Kombination) -> dict[str, Any]:
    """The user layer: what the kombination says that is a setting."""
    spec = k.spec
    return {
        "stack": k.metadata.name,
        "domain": spec.domain,
        "healing": spec.healing.model_dump(),
        "network": spec.network.model_dump(),
    }


def resolve(k: Kombination, *, library: Library | None = None) -> ResolvedStack:
    """Merge the layers for ``k`` and decide services, placement and bootstrap per node."""
    lib = library or load_library()
    kit = lib.kit(k.spec.stackkit_name)
    platform = lib.platforms[kit.platform]
    variant = lib.variants[k.spec.variant]
    settings = merge(layer_settings(kit.name, variant.name, library=lib), user_settings(k))
    vpn = k.spec.network.vpn
    if vpn.enabled and vpn.provider == "wireguard":
        # Every node of the mesh takes WireGuard's UDP port (kombify/unifier/mesh.py).
        firewall = settings.get("firewall", {})
        allow_udp = sorted({*firewall.get("allow_udp", []), MESH_PORT})
        settings = merge(settings, {"firewall": {"allow_udp": allow_udp}})
    user_services = {
        name: service.model_dump(exclude_none=True, by_alias=True)
        for name, service in k.spec.services.items()
    }
    planned = plan_services(
        kit.name,
        [NodeRef(n.name, n.role) for n in k.spec.nodes],
        user_services,
        vpn_provider=vpn.provider if vpn.enabled else None,
        library=lib,
    )
    services = tuple(_resolved(p) for p in planned)
    steps = [*lib.core.bootstrap, *platform.bootstrap, *kit.bootstrap]
    nodes = tuple(
        _resolve_node(node, settings, steps, services, platform, kit, variant)
        for node in k.spec.nodes
    )
    return ResolvedStack(k, kit, platform, variant, settings, services, nodes)


def _resolved(planned: PlannedService) -> ResolvedService:
    definition = dict(planned.definition)
    definition["env"] = {str(k): _env_text(v) for k, v in definition.get("env", {}).items()}
    return ResolvedService(planned.name, planned.origin, planned.use, planned.nodes, definition)


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _published(
    services: tuple[ResolvedService, ...], node: str | None
) -> tuple[list[int], list[int]]:
    tcp: set[int] = set()
    udp: set[int] = set()
    for service in services:
        if node is not None and node not in service.nodes:
            continue
        for port in service.definition.get("ports", []):
            if isinstance(port.get("host"), int):
                (udp if port.get("protocol") == "udp" else tcp).add(port["host"])
    return sorted(tcp), sorted(udp)


def _resolve_node(
    node: Node,
    settings: dict[str, Any],
    steps: list[Step],
    services: tuple[ResolvedService, ...],
    platform: Platform,
    kit: Kit,
    variant: Variant,
) -> ResolvedNode:
    # With a routing mesh (swarm) every node accepts every published port.
    scope_node = None if platform.port_scope == "cluster" else node.name
    tcp, udp = _published(services, scope_node)
    firewall = settings.get("firewall", {})
    # SSH stays open on the port kombify dials (``address`` may carry a forwarded port, as
    # with a NAT rule or a KombiSim node) and on the port sshd listens on (``ssh.port``): a
    # firewall that shuts the owner out of their own box is the one mistake not to make.
    ssh_ports = {node.ssh_port, node.ssh.port}
    tcp_ports = sorted({*ssh_ports, *firewall.get("allow_tcp", []), *tcp})
    udp_ports = sorted({*firewall.get("allow_udp", []), *udp})
    udp_list = ", ".join(map(str, udp_ports))
    node_settings = merge(
        settings,
        {
            "node": {"name": node.name, "role": node.role, "provider": node.provider},
            "firewall": {
                "tcp_ports": ", ".join(map(str, tcp_ports)),
                "tcp_list": [str(p) for p in tcp_ports],
                "udp_list": [str(p) for p in udp_ports],
                "udp_rule": f"udp dport {{ {udp_list} }} accept" if udp_ports else "",
            },
        },
    )
    lines = [
        "#!/bin/sh",
        f"# Written by kombify for node {node.name} ({kit.name} {kit.version}, {variant.name}).",
        "# Safe to run again: every step checks before it changes anything.",
        "set -eu",
    ]
    for step in steps:
        if node.provider in step.skip_on or (
            step.roles is not None and node.role not in step.roles
        ):
            continue
        lines.append(f"echo 'kombify: {step.id}'")
        lines.append(render(step.script, node_settings).rstrip("\n"))
    hosted = tuple(s.name for s in services if node.name in s.nodes)
    return ResolvedNode(node, node_settings, "\n".join(lines) + "\n", hosted)
