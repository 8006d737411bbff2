"""Which services run, with what definition, on which nodes.

Shared by validation (port clashes, memory fit) and the resolver, so both always agree. It
works on plain data because validation calls it before the typed models exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kombify.stackkits.library import KitService, Library, load_library
from kombify.stackkits.merge import merge

Origin = Literal["platform", "kit", "vpn", "custom"]


@dataclass(frozen=True)
class NodeRef:
    """What placement needs to know about a node."""

    name: str
    role: str


@dataclass(frozen=True)
class PlannedService:
    """A service that will run, merged from its layers, with the nodes it runs on.

    ``definition`` holds ``image, command, ports, volumes, env, healthcheck, memory, replicas``
    after merging catalog < kit < user.
    """

    name: str
    origin: Origin
    use: str | None
    user_listed: bool
    nodes: tuple[str, ...]
    definition: dict[str, Any]


_CUSTOM_DEFAULTS: dict[str, Any] = {
    "command": [],
    "ports": [],
    "volumes": [],
    "env": {},
    "healthcheck": None,
    "memory": None,
    "replicas": 1,
}


def kit_services(kit_name: str, *, library: Library | None = None) -> dict[str, KitService]:
    """The services a kit offers by name: its platform's, then its own (kit wins)."""
    lib = library or load_library()
    kit = lib.kit(kit_name)
    return {**lib.platforms[kit.platform].services, **kit.services}


def plan_services(
    kit_name: str,
    nodes: Sequence[NodeRef],
    user_services: Mapping[str, Mapping[str, Any]],
    *,
    vpn_provider: str | None = None,
    library: Library | None = None,
) -> list[PlannedService]:
    """Decide every service of a stack and its placement, deterministically.

    Args:
        kit_name: A known kit.
        nodes: The nodes in file order.
        user_services: ``spec.services`` as written (name -> overrides or custom service).
        vpn_provider: ``headscale``/``wireguard`` if the VPN is enabled, else ``None``.
        library: The StackKit library (default: the shipped one).

    Returns:
        Services in a stable order: kit defaults and listed catalog services (kit order), the
        VPN, then custom services in file order. A service whose ``node:`` names no node gets
        no nodes (validation reports that).
    """
    lib = library or load_library()
    kit = lib.kit(kit_name)
    offered = kit_services(kit_name, library=lib)
    if vpn_provider == "wireguard":
        # The mesh is built by kombify on every node (kombify/activities/vpn.py), not a
        # container on one of them: a lone WireGuard container peered with nobody.
        vpn_provider = None
    if vpn_provider:
        offered = {**offered, "vpn": KitService(use=vpn_provider, default=True)}
        offered["vpn"] = offered["vpn"].model_copy(
            update={"placement": offered["vpn"].placement.model_copy(update={"role": kit.vpn_role})}
        )
    load: dict[str, int] = {n.name: 0 for n in nodes}
    planned: list[PlannedService] = []
    for name, entry in offered.items():
        user = user_services.get(name)
        enabled = user.get("enabled", True) if user is not None else entry.default
        if enabled is not True:
            continue
        catalog = lib.catalog[entry.use].model_dump(exclude={"description"}, exclude_none=True)
        definition = merge(catalog, {"replicas": 1}, _overrides(user))
        if user is not None and "healthcheck" in user:
            definition["healthcheck"] = user["healthcheck"]  # a new check replaces, not merges
        origin: Origin = (
            "vpn"
            if name == "vpn" and vpn_provider
            else ("kit" if name in kit.services else "platform")
        )
        placed = _place(entry, user, nodes, kit.default_role)
        planned.append(
            PlannedService(name, origin, entry.use, user is not None, placed, definition)
        )
        if entry.placement.mode == "single":
            for node in placed:
                load[node] = load.get(node, 0) + 1
    for name, user in user_services.items():
        if name in offered or user.get("enabled", True) is not True:
            continue
        definition = merge(_CUSTOM_DEFAULTS, _overrides(user))
        if isinstance(user.get("node"), str):
            placed = tuple(n.name for n in nodes if n.name == user["node"])[:1]
        else:
            placed = _least_loaded(nodes, kit.app_roles, load)
        for node in placed:
            load[node] = load.get(node, 0) + 1
        planned.append(PlannedService(name, "custom", None, True, placed, definition))
    return planned


def _overrides(user: Mapping[str, Any] | None) -> dict[str, Any]:
    if not user:
        return {}
    return {k: v for k, v in user.items() if k not in ("enabled", "node")}


def _place(
    entry: KitService,
    user: Mapping[str, Any] | None,
    nodes: Sequence[NodeRef],
    default_role: str,
) -> tuple[str, ...]:
    if user is not None and isinstance(user.get("node"), str):
        return tuple(n.name for n in nodes if n.name == user["node"])[:1]
    role = entry.placement.role
    matching = [n.name for n in nodes if role is None or n.role == role]
    if entry.placement.mode == "global":
        return tuple(matching)
    if matching:
        return (matching[0],)
    fallback = [n.name for n in nodes if n.role == default_role] or [n.name for n in nodes]
    return tuple(fallback[:1])


def _least_loaded(
    nodes: Sequence[NodeRef], roles: Sequence[str], load: Mapping[str, int]
) -> tuple[str, ...]:
    for role in roles:
        candidates = [n.name for n in nodes if n.role == role]
        if candidates:
            # min() keeps the first of equals, so ties go to the node written first.
            return (min(candidates, key=lambda name: load.get(name, 0)),)
    return (nodes[0].name,) if nodes else ()
