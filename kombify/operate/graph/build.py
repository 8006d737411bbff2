"""Building a stack's graph: the unifier's plan for its revision, joined with what runs now.

The desired half comes from the same plan a deploy rolls out (:func:`kombify.unifier.unify`):
per-node manifests (or the swarm manifest), ``routes.json`` and the VPN settings. The live half
is what the nodes answered (``ObserveStack``) and what the proxy routes (``ObserveRoutes``),
never the record of the last run.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kombify.contracts.observe import NodeSeen, ServiceSeen, StackSeen, SwarmSeen
from kombify.contracts.routes import RoutesSeen
from kombify.contracts.vpn import VpnNodeSeen, VpnSeen
from kombify.operate.graph.model import (
    GraphEdge,
    GraphElement,
    GraphVpn,
    Source,
    StackGraph,
)
from kombify.specs.models import Kombination
from kombify.unifier import unify
from kombify.unifier.mesh import INTERFACE
from kombify.unifier.plan import Plan
from kombify.unifier.routes import ROUTES_FILE

NOT_DEPLOYED = "not-deployed"
UNKNOWN = "unknown"
# Worst first: a service's state is the worst of its placements (a mix of good and bad is
# "degraded").
_SEVERITY = ("missing", "stopped", "unhealthy", "degraded", UNKNOWN, "running", "healthy")
_GOOD = {"running", "healthy"}
HEADSCALE_PREFIX = "100.64.0.0/10"
# WireGuard starts a new handshake every 2 minutes while packets flow; older means none flowed.
HANDSHAKE_FRESH_S = 180
TAILSCALE_INTERFACE = "tailscale0"


@dataclass(frozen=True)
class Observed:
    """What the stack's nodes and proxy answered, asked now.

    Attributes:
        stack: The nodes' answers (``ObserveStack``); None when they could not be asked.
        routes: The proxy's answer (``ObserveRoutes``); None when not asked (no route).
        error: Why the nodes could not be asked at all.
        observed_at: When they were asked (UTC, RFC 3339).
        routes_error: Why the proxy could not be asked.
        vpn: The nodes' mesh interfaces (``ObserveVpn``); None when not asked.
        vpn_error: Why they could not be asked.
    """

    stack: StackSeen | None
    routes: RoutesSeen | None = None
    error: str | None = None
    observed_at: str | None = None
    routes_error: str | None = None
    vpn: VpnSeen | None = None
    vpn_error: str | None = None


class _Mode:
    """How a state is decided: not deployed, not asked, or from the answers."""

    def __init__(self, deployed: bool, observed: Observed | None) -> None:
        self.deployed = deployed
        self.observed = observed
        self.nodes: dict[str, NodeSeen] = {}
        self.swarm: SwarmSeen | None = None
        if observed is not None and observed.stack is not None:
            self.nodes = {n.name: n for n in observed.stack.nodes}
            self.swarm = observed.stack.swarm

    @property
    def asked(self) -> bool:
        return self.deployed and self.observed is not None and self.observed.stack is not None

    def unasked(self) -> tuple[str, str | None]:
        """The state (and why) of everything when the nodes were not asked."""
        if not self.deployed:
            return NOT_DEPLOYED, None
        if self.observed is None:
            return UNKNOWN, "not asked (live=false)"
        return UNKNOWN, self.observed.error or "the nodes were not asked"


def build_graph(
    k: Kombination,
    *,
    revision: int,
    source: Source,
    deployed: bool,
    observed: Observed | None,
    plan: Plan | None = None,
) -> StackGraph:
    """The graph of ``k``'s revision ``revision``, with live states from ``observed``.

    Args:
        k: The revision's kombination.
        revision: Its number.
        source: Whether it is the deployed revision or the current one (never deployed).
        deployed: Whether anything of the stack is deployed (else every state is
            ``not-deployed``).
        observed: What the nodes answered; None when they were not asked (``live=false``).
        plan: ``unify(k)`` when the caller has it already.
    """
    plan = plan or unify(k)
    mode = _Mode(deployed, observed)
    elements: list[GraphElement] = []
    edges: list[GraphEdge] = []
    elements += _nodes(k, mode)
    services, placements = (
        _swarm_services(plan, mode) if plan.swarm is not None else _node_services(plan, mode)
    )
    elements += services
    edges += placements
    networks, memberships = _networks(plan, mode, placements)
    elements += networks
    edges += memberships
    routes, route_edges = _routes(plan, mode, {e.id for e in elements})
    elements += routes
    edges += route_edges
    vpn, links = _vpn(k, mode)
    edges += links
    return StackGraph(
        stack=k.metadata.name,
        revision=revision,
        source=source,
        stackkit=k.spec.stackkit,
        platform="swarm" if plan.swarm is not None else "docker",
        domain=k.spec.domain,
        live=mode.asked,
        observed_at=observed.observed_at if observed is not None and deployed else None,
        error=observed.error if observed is not None and deployed else None,
        vpn=vpn,
        elements=elements,
        edges=edges,
    )


def _nodes(k: Kombination, mode: _Mode) -> list[GraphElement]:
    found = []
    for node in k.spec.nodes:
        state, detail = mode.unasked()
        seen = mode.nodes.get(node.name)
        if mode.asked:
            if seen is None:
                state, detail = UNKNOWN, "not among the nodes asked"
            elif seen.answered:
                state, detail = "running", None
            else:
                state, detail = "unreachable", seen.error
        attrs: dict[str, Any] = {"role": node.role, "provider": node.provider}
        if node.address:
            attrs["address"] = node.address
        label = f"{node.name} ({node.role}, {node.provider})"
        found.append(
            GraphElement(
                id=node_id(node.name),
                kind="node",
                label=label,
                state=state,
                detail=detail,
                attrs=attrs,
            )
        )
    return found


def node_id(name: str) -> str:
    """The element id of a node."""
    return f"node:{name}"


def service_id(name: str) -> str:
    """The element id of a service."""
    return f"service:{name}"


def _placement_state(seen: ServiceSeen) -> tuple[str, str | None, int]:
    """(state, detail, running) of a service on a node that answered."""
    running = [c for c in seen.containers if c.state == "running"]
    if seen.desired_replicas == 0:
        return "not-wanted", "left over: the next apply removes it", len(running)
    if not seen.containers:
        return "missing", "no container", 0
    if not running:
        states = sorted({c.state for c in seen.containers})
        return "stopped", f"container {', '.join(states)}", 0
    if len(running) < seen.desired_replicas:
        return "degraded", f"{len(running)} of {seen.desired_replicas} running", len(running)
    health = {c.health for c in running}
    if "unhealthy" in health:
        return "unhealthy", "health check failing", len(running)
    if health and health <= {"healthy"}:
        return "healthy", None, len(running)
    return "running", None, len(running)


def _combined(states: Iterable[str]) -> str:
    """One word for a service from the states of its placements."""
    words = set(states)
    if not words:
        return "missing"
    if len(words) == 1:
        return words.pop()
    if words <= _GOOD:
        return "running"
    if words & _GOOD:
        return "degraded"
    ranked = [w for w in _SEVERITY if w in words]
    return ranked[0] if ranked else sorted(words)[0]


def _service_element(
    name: str, fields: dict[str, Any] | None, state: str, detail: str | None, **extra: Any
) -> GraphElement:
    attrs: dict[str, Any] = dict(extra)
    if fields is not None:
        attrs |= {
            "image": fields.get("image"),
            "replicas": fields.get("replicas", 1),
            "ports": [
                f"{p['host']}:{p['container']}/{p['protocol']}"
                if p.get("host")
                else f"{p['container']}/{p['protocol']}"
                for p in fields.get("ports", [])
            ],
        }
    return GraphElement(
        id=service_id(name), kind="service", label=name, state=state, detail=detail, attrs=attrs
    )


def _node_services(plan: Plan, mode: _Mode) -> tuple[list[GraphElement], list[GraphEdge]]:
    """Services each node's agent runs (docker platform): one placement per node."""
    desired: dict[str, dict[str, Any]] = {}
    placements: list[GraphEdge] = []
    per_service: dict[str, list[GraphEdge]] = {}
    for node, manifest in plan.manifests.items():
        seen = {s.name: s for s in (mode.nodes[node].services if node in mode.nodes else [])}
        answered = node in mode.nodes and mode.nodes[node].answered
        names = {s["name"] for s in manifest["services"]} | (set(seen) if answered else set())
        for service in manifest["services"]:
            desired.setdefault(service["name"], service)
        for name in sorted(names):
            wanted = next((s for s in manifest["services"] if s["name"] == name), None)
            replicas = int(wanted.get("replicas") or 1) if wanted else 0
            state, detail = mode.unasked()
            running: int | None = None
            if mode.asked:
                if not answered:
                    why = mode.nodes[node].error if node in mode.nodes else "not asked"
                    state, detail = UNKNOWN, f"node `{node}` did not answer: {why}"
                else:
                    state, detail, running = _placement_state(
                        seen.get(name) or ServiceSeen(name, replicas, "")
                    )
            edge = GraphEdge(
                id=f"placement:{service_id(name)}->{node_id(node)}",
                kind="placement",
                source=service_id(name),
                target=node_id(node),
                label=_replica_label(replicas, running),
                state=state,
                detail=detail,
                replicas=replicas,
                running=running,
            )
            placements.append(edge)
            per_service.setdefault(name, []).append(edge)
    elements = []
    for name in sorted(per_service):
        edges = per_service[name]
        fields = desired.get(name)
        if not mode.asked:
            state, detail = mode.unasked()
        elif fields is None:
            state, detail = "not-wanted", "left over: the next apply removes it"
        else:
            state = _combined(e.state for e in edges if e.replicas)
            detail = _first_detail(edges, state)
        running = sum(e.running or 0 for e in edges) if mode.asked else None
        elements.append(
            _service_element(
                name,
                fields,
                state,
                detail,
                mode="container",
                replicas_total=sum(e.replicas or 0 for e in edges),
                running=running,
            )
        )
    return elements, placements


def _first_detail(edges: list[GraphEdge], state: str) -> str | None:
    for edge in edges:
        if edge.state == state and edge.detail:
            return f"{edge.target.removeprefix('node:')}: {edge.detail}"
    return next((e.detail for e in edges if e.detail and e.state not in _GOOD), None)


def _replica_label(replicas: int | None, running: int | None) -> str:
    if running is None:
        return "may run" if replicas is None else f"x{replicas}"
    return f"{running} running" if replicas is None else f"{running}/{replicas}"


def _swarm_services(plan: Plan, mode: _Mode) -> tuple[list[GraphElement], list[GraphEdge]]:
    """A swarm kit's services: placements are the nodes each may run on (the swarm decides)."""
    assert plan.swarm is not None
    swarm = mode.swarm
    live = {s.name: s for s in swarm.services} if swarm is not None and swarm.answered else {}
    elements: list[GraphElement] = []
    placements: list[GraphEdge] = []
    desired = {s["name"]: s for s in plan.swarm["services"]}
    for name in sorted(desired.keys() | live.keys()):
        fields = desired.get(name)
        seen = live.get(name)
        state, detail = mode.unasked()
        if mode.asked:
            state, detail = _swarm_state(swarm, seen, wanted=fields is not None)
        eligible = list(fields["nodes"]) if fields else []
        tasks: dict[str, list[str]] = {}
        for task in seen.tasks if seen is not None else []:
            tasks.setdefault(task.node, []).append(task.state)
        for node in eligible + sorted(set(tasks) - set(eligible)):
            on_node = tasks.get(node, [])
            running = on_node.count("running") if mode.asked and seen is not None else None
            replicas = 1 if fields and fields["mode"] == "global" else None
            edge_state, edge_detail = mode.unasked()
            if mode.asked:
                edge_state, edge_detail = _task_state(state, on_node, running)
            placements.append(
                GraphEdge(
                    id=f"placement:{service_id(name)}->{node_id(node)}",
                    kind="placement",
                    source=service_id(name),
                    target=node_id(node),
                    label=_replica_label(replicas, running),
                    state=edge_state,
                    detail=edge_detail,
                    replicas=replicas,
                    running=running,
                    attrs={"eligible": node in eligible},
                )
            )
        elements.append(
            _service_element(
                name,
                fields,
                state,
                detail,
                mode=fields["mode"] if fields else (seen.mode if seen else ""),
                running=seen.running if seen is not None else (0 if mode.asked else None),
                network=plan.swarm["network"],
            )
        )
    return elements, placements


def _swarm_state(swarm: SwarmSeen | None, seen: Any, *, wanted: bool) -> tuple[str, str | None]:
    if swarm is None or not swarm.answered:
        return UNKNOWN, (swarm.error if swarm is not None else "the swarm was not asked")
    if not wanted:
        return "not-wanted", "left over: the next apply removes it"
    if seen is None:
        return "missing", "no such swarm service"
    if seen.wanted > 0 and seen.running >= seen.wanted:
        return "running", None
    errors = sorted({t.error for t in seen.tasks if t.error})
    why = f"{seen.running} of {seen.wanted} running" + (f": {errors[0]}" if errors else "")
    return ("degraded" if seen.running else "stopped"), why


def _task_state(
    service_state: str, tasks: list[str], running: int | None
) -> tuple[str, str | None]:
    if service_state in (UNKNOWN, "missing"):
        return service_state, None
    if running:
        return "running", None
    if tasks:
        return "stopped", f"task {', '.join(sorted(set(tasks)))}"
    return "idle", "may run here; no task placed here now"


def _networks(
    plan: Plan, mode: _Mode, placements: list[GraphEdge]
) -> tuple[list[GraphElement], list[GraphEdge]]:
    """Docker networks kombify makes: the swarm overlay, or the proxy's network on its node.

    Networks are not asked for themselves: Docker starts no container without its networks,
    so a network is ``running`` while one of its containers runs.
    """
    members: dict[str, tuple[str, str | None, list[str]]] = {}  # id -> (label, node, services)
    if plan.swarm is not None:
        name = str(plan.swarm["network"])
        members[f"network:{name}"] = (name, None, [s["name"] for s in plan.swarm["services"]])
    for node, manifest in plan.manifests.items():
        for service in manifest["services"]:
            for name in service.get("networks", []):
                key = f"network:{node}/{name}"
                members.setdefault(key, (name, node, []))[2].append(service["name"])
    by_edge = {(e.source, e.target): e for e in placements}
    elements, edges = [], []
    for key, (name, on_node, services) in members.items():
        state, detail = mode.unasked()
        why: str | None = detail
        if mode.asked:
            live = [
                by_edge.get((service_id(s), n))
                for s in services
                for n in ([node_id(on_node)] if on_node else [e.target for e in placements])
            ]
            up = any(e is not None and (e.running or 0) > 0 for e in live)
            state = "running" if up else UNKNOWN
            why = None if up else "no container on it runs, so it may not exist"
        attrs: dict[str, Any] = {"scope": "node" if on_node else "swarm", "name": name}
        if on_node:
            attrs["node"] = on_node
        label = f"{name} on {on_node}" if on_node else f"{name} (overlay)"
        elements.append(
            GraphElement(id=key, kind="network", label=label, state=state, detail=why, attrs=attrs)
        )
        for service in services:
            edges.append(
                GraphEdge(
                    id=f"network:{service_id(service)}->{key}",
                    kind="network",
                    source=service_id(service),
                    target=key,
                    label="",
                    state=state,
                )
            )
    return elements, edges


def _routes(plan: Plan, mode: _Mode, known: set[str]) -> tuple[list[GraphElement], list[GraphEdge]]:
    """One element per domain name the proxy serves, and its edge to the service behind it."""
    document = json.loads(plan.files[ROUTES_FILE])
    proxy = document["proxy"]
    seen = mode.observed.routes if mode.observed is not None and mode.asked else None
    live = {r.url: r for r in seen.routes} if seen is not None else {}
    wanted = {f"https://{r['host']}": r for r in document["routes"]}
    elements, edges = [], []
    for url in sorted(wanted.keys() | live.keys()):
        route = wanted.get(url)
        host = url.removeprefix("https://")
        state, detail = mode.unasked()
        if mode.asked:
            if seen is None:
                why = mode.observed.routes_error if mode.observed is not None else None
                state, detail = UNKNOWN, why or "the proxy was not asked"
            elif url in live:
                state, detail = live[url].state, (seen.error or None)
            else:
                state, detail = "missing", "the proxy does not route it"
        service = route["service"] if route else (live[url].service if url in live else "")
        attrs: dict[str, Any] = {"url": url, "host": host}
        if route:
            attrs |= {
                "port": route["port"],
                "upstreams": [u["node"] for u in route["upstreams"]],
                "proxy": proxy["service"] if proxy else None,
                "proxy_node": proxy["node"] if proxy else None,
            }
        key = f"route:{host}"
        elements.append(
            GraphElement(id=key, kind="route", label=host, state=state, detail=detail, attrs=attrs)
        )
        if service and service_id(service) in known:
            edges.append(
                GraphEdge(
                    id=f"route:{key}->{service_id(service)}",
                    kind="route",
                    source=key,
                    target=service_id(service),
                    label=f":{route['port']}" if route else "",
                    state=state,
                )
            )
    return elements, edges


def _vpn(k: Kombination, mode: _Mode) -> tuple[GraphVpn | None, list[GraphEdge]]:
    """The VPN and a link between every two nodes (WireGuard's mesh peers every pair)."""
    vpn = k.spec.network.vpn
    if not vpn.enabled:
        return None, []
    if vpn.provider == "headscale":
        subnet = vpn.subnet if "subnet" in vpn.model_fields_set else HEADSCALE_PREFIX
        info = GraphVpn(provider="headscale", subnet=subnet, interface=TAILSCALE_INTERFACE)
    else:
        info = GraphVpn(provider="wireguard", subnet=vpn.subnet, interface=INTERFACE)
    links = []
    for a, b in itertools.combinations([n.name for n in k.spec.nodes], 2):
        state, detail = mode.unasked()
        if mode.asked:
            state, detail = _link_state(mode, info, a, b)
        links.append(
            GraphEdge(
                id=f"vpn-link:{a}--{b}",
                kind="vpn-link",
                source=node_id(a),
                target=node_id(b),
                label=info.provider,
                state=state,
                detail=detail,
            )
        )
    return info, links


def _link_state(mode: _Mode, info: GraphVpn, a: str, b: str) -> tuple[str, str | None]:
    """A mesh link from both ends' ``wg show`` (asked over SSH, whatever their agents say):
    up (a recent handshake), idle, or down."""
    observed = mode.observed
    if info.provider != "wireguard" or observed is None:
        down = [n for n in (a, b) if n not in mode.nodes or not mode.nodes[n].answered]
        if down:
            return UNKNOWN, f"node `{down[0]}` did not answer"
        return UNKNOWN, "kombify does not ask Tailscale for its peers yet"
    if observed.vpn is None:
        return UNKNOWN, observed.vpn_error or "the mesh was not asked"
    ends = {n.name: n for n in observed.vpn.nodes}
    for name in (a, b):
        end = ends.get(name)
        if end is None or not end.answered:
            why = end.error if end else "not asked"
            return UNKNOWN, f"node `{name}` did not answer: {why}"
        if not end.interface:
            return "down", f"no {info.interface} on `{name}`"
    return _handshake_state(ends[a], ends[b])


def _handshake_state(a: VpnNodeSeen, b: VpnNodeSeen) -> tuple[str, str | None]:
    for me, peer in ((a, b), (b, a)):
        if peer.public_key not in me.handshakes:
            return "down", f"`{me.name}` does not list `{peer.name}` as a peer"
    ages = [age for age in (a.handshakes[b.public_key], b.handshakes[a.public_key]) if age >= 0]
    if not ages:
        return "idle", "no handshake yet (no packet between them since the tunnel came up)"
    age = min(ages)
    if age <= HANDSHAKE_FRESH_S:
        return "up", f"last handshake {age} s ago"
    return "idle", f"last handshake {age} s ago (no packet since, or the peer cannot be reached)"
