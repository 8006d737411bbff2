"""How an existing node container differs from its spec, and what converging it takes.

Docker cannot change a container's published ports, environment or labels: a node whose
ports, login, network type or key differ is re-created (its volumes, SSH host key and what
kombify wrote under /etc are carried over, see :meth:`SimEngine._recreate`). CPU and memory
limits are changed in place with the engine's update call: the node keeps running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from kombify.sim import labels
from kombify.sim.keys import SimKeys
from kombify.sim.models import NodeSpec

MIB = 1024 * 1024
# Files of a node's root filesystem that a re-created node keeps: its SSH host key (so its
# pinned identity holds) and what kombify's bootstrap and agent install wrote under /etc.
# Everything else kombify puts on a node lives on its volumes (/var/lib/docker, /var/lib/kombify).
CARRIED_PATHS: tuple[str, ...] = (
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/kombify",
    "/etc/docker",
)


@dataclass(frozen=True)
class Drift:
    """What differs between a node container and its spec.

    Attributes:
        recreate: Why the container must be re-created (empty: it need not be).
        limits: Human changes of CPU/memory limits to apply in place (empty: none).
        nano_cpus: The wanted CPU limit in the engine's unit.
        memory: The wanted memory limit in bytes.
        host_ports: Container port -> loopback host port now published (kept on re-create).
    """

    recreate: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    nano_cpus: int = 0
    memory: int = 0
    host_ports: dict[int, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether anything must be done."""
        return bool(self.recreate or self.limits)


def _env(attrs: dict[str, Any]) -> dict[str, str]:
    pairs = (item.partition("=") for item in attrs.get("Config", {}).get("Env") or [])
    return {key: value for key, _, value in pairs}


def published_ports(attrs: dict[str, Any]) -> dict[int, int]:
    """Container port -> loopback host port, as the container was created to publish them."""
    found: dict[int, int] = {}
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    live = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for key, wanted in bindings.items():
        port = int(key.split("/")[0])
        # The live binding has the port Docker picked; the wanted one is empty then.
        for binding in (live.get(key) or []) + (wanted or []):
            if binding.get("HostPort"):
                found[port] = int(binding["HostPort"])
                break
        else:
            found[port] = 0
    return found


def _ports_text(ports: list[int]) -> str:
    return ", ".join(str(p) for p in ports) or "none"


def _identity(node: NodeSpec) -> NodeSpec:
    """``node`` without what is compared on its own (ports) or changed in place (limits)."""
    return replace(node, ports=[], cpus=0.0, memory_mb=0)


def drift(attrs: dict[str, Any], node: NodeSpec, keys: SimKeys) -> Drift:
    """Compare a node container (``docker inspect`` output) with ``node`` and this home's keys."""
    tags = attrs.get("Config", {}).get("Labels") or {}
    try:
        current = NodeSpec.from_dict(json.loads(tags.get(labels.SPEC, "{}")))
    except (TypeError, ValueError):
        current = NodeSpec(name=node.name, group="?")
    host_ports = published_ports(attrs)
    reasons: list[str] = []
    have = sorted(p for p in host_ports if p != 22)
    want = sorted(set(node.ports))
    if have != want:
        reasons.append(f"publish ports {_ports_text(want)} (was {_ports_text(have)})")
    if _env(attrs).get("KOMBIFY_AUTHORIZED_KEY", "").strip() != keys.public_key.strip():
        made_with = tags.get(labels.IDENTITY, "an unknown key")
        reasons.append(
            "accept this KOMBIFY_HOME's key (it accepted one this home does not hold, "
            f"`{made_with}`)"
        )
    # Labels say what a node is (type, user, group, role): a node that is something else is
    # made again, so what the engine reports about it stays true.
    if _identity(current) != _identity(node):
        reasons.append("change its type, login user, group or role")
    host = attrs.get("HostConfig") or {}
    nano_cpus, memory = int(node.cpus * 1e9), node.memory_mb * MIB
    limits: list[str] = []
    if int(host.get("NanoCpus") or 0) != nano_cpus:
        limits.append(f"cpus {int(host.get('NanoCpus') or 0) / 1e9:g} -> {node.cpus:g}")
    if int(host.get("Memory") or 0) != memory:
        limits.append(f"memory {int(host.get('Memory') or 0) // MIB} MiB -> {node.memory_mb} MiB")
    return Drift(reasons, limits, nano_cpus, memory, host_ports)


def limits_of(attrs: dict[str, Any]) -> tuple[float, int] | None:
    """The CPU and memory (MiB) limits a container runs with now, when both are set."""
    host = attrs.get("HostConfig") or {}
    nano, memory = int(host.get("NanoCpus") or 0), int(host.get("Memory") or 0)
    if not nano or not memory:
        return None
    return nano / 1e9, memory // MIB
