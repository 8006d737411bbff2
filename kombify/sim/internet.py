"""The network that stands in for the internet in a simulation that has ``vps`` nodes.

A rented server is reachable from anywhere; a home server sits behind its router's NAT: it
reaches out, nothing reaches in. KombiSim models both on one extra bridge network,
``kombisim-<sim>-internet``: every node joins it (a vps beside its own network, a home node
beside the LAN), and a home node's boot script drops every connection from that network that
the node did not start (``KOMBIFY_NAT_FROM``, see :data:`kombify.sim.bootfiles.NODE_INIT`).
So a WireGuard tunnel from home to cloud comes up (the home node starts it and keeps it open
with keepalives), while the cloud node can reach no address of the home node but the tunnel's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombify.sim import labels
from kombify.sim.models import NodeSpec, SimulationSpec


@dataclass(frozen=True)
class Internet:
    """The simulated internet of one simulation.

    Attributes:
        network: Docker network name.
        subnet: Its IPv4 subnet (``172.19.0.0/16``).
        gateway: The bridge's own address: this machine, which published ports arrive from.
    """

    network: str
    subnet: str
    gateway: str


def wanted(spec: SimulationSpec) -> bool:
    """Whether ``spec`` has an internet network: it has at least one ``vps`` node."""
    return any(node.type == "vps" for node in spec.nodes)


def from_network(attrs: dict[str, Any]) -> Internet:
    """An :class:`Internet` from ``docker network inspect`` output of that network."""
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    ipv4: dict[str, Any] = next((c for c in configs if ":" not in str(c.get("Subnet", ""))), {})
    return Internet(
        network=str(attrs.get("Name", "")),
        subnet=str(ipv4.get("Subnet", "")),
        gateway=str(ipv4.get("Gateway", "")),
    )


def node_env(node: NodeSpec, internet: Internet | None) -> dict[str, str]:
    """Environment a node container boots with for its place on the internet."""
    if internet is None or node.type == "vps":
        return {}
    return {"KOMBIFY_NAT_FROM": internet.subnet, "KOMBIFY_NAT_GATEWAY": internet.gateway}


def drift_reason(attrs: dict[str, Any], node: NodeSpec, internet: Internet | None) -> str:
    """Why a node container must be re-created for the internet (empty: it need not be).

    A node made before its simulation had a vps is not on the internet network, and a home
    node's NAT rule is set at boot from its environment: both take a new container.
    """
    if internet is None:
        return ""
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    env = dict(item.partition("=")[::2] for item in (attrs.get("Config") or {}).get("Env") or [])
    want = node_env(node, internet)
    have = {key: env.get(key, "") for key in ("KOMBIFY_NAT_FROM", "KOMBIFY_NAT_GATEWAY")}
    if internet.network not in networks or {k: v for k, v in have.items() if v} != want:
        behind = "" if node.type == "vps" else " behind NAT"
        return f"join the simulated internet{behind}"
    return ""


def network_name(sim: str) -> str:
    """Name of ``sim``'s internet network."""
    return labels.internet_network(sim)
