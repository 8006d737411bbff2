"""The swarm manifest: every service of a ``swarm`` platform kit, run by the swarm's managers.

On a swarm kit (ha-homelab) the nodes' own manifests carry no services: the swarm decides
which node runs each task, within the placement written here. Placement becomes Swarm
constraints on the node labels kombify sets when it forms the swarm
(``io.kombify.node``, ``io.kombify.role``), not on host names, which a real machine may
not share with its kombination name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kombify.stackkits.placement import kit_services
from kombify.stackkits.resolver import ResolvedService, ResolvedStack
from kombify.unifier.manifest import service_fields

SWARM_MANIFEST_FILE = "manifests/_swarm.json"  # "_" is not allowed in node names: no clash
PLATFORM = "swarm"
NODE_LABEL = "io.kombify.node"
ROLE_LABEL = "io.kombify.role"


def is_swarm(stack: ResolvedStack) -> bool:
    """Whether the stack's kit runs its services as Swarm services."""
    return stack.platform.name == PLATFORM


def _placement(stack: ResolvedStack, service: ResolvedService) -> tuple[str, list[str]]:
    """Swarm mode and constraints of a service, from ``node:`` or the kit's placement."""
    user = stack.kombination.spec.services.get(service.name)
    if user is not None and user.node:
        return "replicated", [f"node.labels.{NODE_LABEL}=={user.node}"]
    entry = kit_services(stack.kit.name).get(service.name)
    if entry is None:  # a custom service: anywhere the swarm sees fit, spread over nodes
        return "replicated", []
    mode = "global" if entry.placement.mode == "global" else "replicated"
    role = entry.placement.role
    return mode, [f"node.labels.{ROLE_LABEL}=={role}"] if role else []


def _eligible(stack: ResolvedStack, constraints: list[str]) -> list[str]:
    """Nodes that may run a task of the service: where its image must be staged."""
    names = []
    for rnode in stack.nodes:
        labels = {NODE_LABEL: rnode.node.name, ROLE_LABEL: rnode.node.role}
        if all(_holds(c, labels) for c in constraints):
            names.append(rnode.node.name)
    return names


def _holds(constraint: str, labels: dict[str, str]) -> bool:
    key, _, value = constraint.removeprefix("node.labels.").partition("==")
    return labels.get(key) == value


def node_labels(stack: ResolvedStack) -> dict[str, dict[str, str]]:
    """The swarm node labels kombify sets, by node: its name, role and the stack's labels."""
    extra = {f"io.kombify.label.{k}": v for k, v in stack.kombination.metadata.labels.items()}
    return {
        r.node.name: {NODE_LABEL: r.node.name, ROLE_LABEL: r.node.role, **extra}
        for r in stack.nodes
    }


def swarm_manifest(stack: ResolvedStack) -> dict[str, Any]:
    """The stack's Swarm services with placement, replicas and mode (plain, deterministic)."""
    k = stack.kombination
    services = []
    for service in stack.services:
        mode, constraints = _placement(stack, service)
        services.append(
            {
                **service_fields(service),
                "mode": mode,
                "constraints": constraints,
                "nodes": _eligible(stack, constraints),
            }
        )
    network = (stack.settings.get("platform") or {}).get("network", "kombify-overlay")
    return {
        "apiVersion": "kombify.io/v1",
        "kind": "SwarmManifest",
        "stack": k.metadata.name,
        "stackkit": {"name": stack.kit.name, "version": stack.kit.version},
        "network": network,
        "nodes": [
            {"name": r.node.name, "role": r.node.role, "labels": node_labels(stack)[r.node.name]}
            for r in stack.nodes
        ],
        "services": sorted(services, key=lambda s: str(s["name"])),
    }


def swarm_images(workdir: Path, node: str) -> set[str]:
    """Images of the swarm services a node may run, from a written plan (none: empty)."""
    path = workdir / SWARM_MANIFEST_FILE
    if not path.exists():
        return set()
    data = json.loads(path.read_text())
    return {s["image"] for s in data.get("services", []) if s.get("image") and node in s["nodes"]}
