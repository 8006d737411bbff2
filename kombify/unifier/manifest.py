"""Per-node service manifests: what the node agent must run on each node."""

from __future__ import annotations

from typing import Any

from kombify.stackkits.resolver import ResolvedNode, ResolvedService, ResolvedStack
from kombify.unifier.routes import networked, proxy_network


def service_fields(service: ResolvedService) -> dict[str, Any]:
    """What a manifest says of one service, whoever runs it (a node's agent or the swarm)."""
    d = service.definition
    return {
        "name": service.name,
        "origin": service.origin,
        "catalog": service.use,
        "image": d.get("image"),
        "command": list(d.get("command", [])),
        "ports": [
            {
                "container": p["container"],
                "host": p.get("host"),
                "protocol": p.get("protocol", "tcp"),
            }
            for p in d.get("ports", [])
        ],
        "volumes": list(d.get("volumes", [])),
        "env": dict(d.get("env", {})),
        "replicas": d.get("replicas", 1),
        "memory": d.get("memory"),
        "healthcheck": d.get("healthcheck"),
    }


def node_manifest(stack: ResolvedStack, node: ResolvedNode) -> dict[str, Any]:
    """The manifest for one node (plain JSON data, deterministic)."""
    k = stack.kombination
    services = []
    # On a swarm kit the swarm runs every service (unifier/swarm.py), not the node's agent.
    swarm = stack.platform.name == "swarm"
    on_network = networked(stack, node.node.name)
    for service in stack.services:
        if swarm or node.node.name not in service.nodes:
            continue
        services.append({**service_fields(service), "global": len(service.nodes) > 1})
        if service.name in on_network:
            # The proxy reaches the service by name there (docs/routes.md).
            services[-1]["networks"] = [proxy_network(stack)]
    return {
        "apiVersion": "kombify.io/v1",
        "kind": "NodeManifest",
        "stack": k.metadata.name,
        "stackkit": {"name": stack.kit.name, "version": stack.kit.version},
        "variant": stack.variant.name,
        "platform": stack.platform.name,
        "domain": k.spec.domain,
        "node": {"name": node.node.name, "role": node.node.role, "provider": node.node.provider},
        "healing": k.spec.healing.model_dump(),
        "services": sorted(services, key=lambda s: str(s["name"])),
    }
