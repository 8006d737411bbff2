"""StackKit rules: what a kombination must satisfy beyond its schema.

Every check reads the parsed data defensively (it may be partly invalid, since all problems
are reported at once); checks that need the whole picture (port clashes, memory fit) run only
when the nodes and services passed the schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kombify.hostkeys import ALGORITHMS, HostKey
from kombify.specs.models import CLOUD_PROVIDERS, split_address
from kombify.specs.problem import Problem
from kombify.specs.quantities import format_quantity, parse_duration, parse_quantity
from kombify.specs.route_rules import placed_route_problems, route_problems
from kombify.specs.schema import suggest
from kombify.specs.source import Source, join
from kombify.specs.vpn import check_prefix, check_subnet
from kombify.stackkits.library import Kit, Library, load_library
from kombify.stackkits.placement import NodeRef, PlannedService, kit_services, plan_services

_HOST_KEY_SHAPE = re.compile(
    rf"^({'|'.join(map(re.escape, ALGORITHMS))}) [A-Za-z0-9+/]+={{0,3}}( |$)"
)


@dataclass
class _Ctx:
    source: Source
    lib: Library
    kit: Kit | None
    spec: dict[str, Any]

    def problem(self, path: str, message: str) -> Problem:
        return Problem(path, self.source.line_of(path), message)


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def rule_problems(source: Source, schema_problems: list[Problem]) -> list[Problem]:
    """Every StackKit-rule problem in ``source``; see the module docstring."""
    spec = _as_dict(_as_dict(source.data).get("spec"))
    lib = load_library()
    ctx = _Ctx(source, lib, _kit(spec, lib), spec)
    problems = [*_check_stackkit(ctx), *_check_nodes(ctx), *_check_counts(ctx)]
    problems += [*_check_vpn(ctx), *_check_services(ctx), *_check_healing(ctx)]
    metadata = _as_dict(_as_dict(source.data).get("metadata"))
    problems += route_problems(ctx.problem, ctx.kit, spec, metadata.get("name"))
    broken = any(
        p.path.startswith(("spec.nodes", "spec.services", "spec.network")) for p in schema_problems
    )
    if ctx.kit is not None and not broken and not problems:
        problems += _check_placement(ctx)
    return problems


def _kit(spec: dict[str, Any], lib: Library) -> Kit | None:
    name = spec.get("stackkit")
    if not isinstance(name, str):
        return None
    return lib.kits.get(name.split("@", 1)[0])


def _check_stackkit(ctx: _Ctx) -> Iterator[Problem]:
    kit, spec = ctx.kit, ctx.spec
    if kit is None:
        return
    written = spec["stackkit"]
    if "@" in written:
        want = written.split("@", 1)[1].removeprefix("v")
        if kit.version != want and not kit.version.startswith(want + "."):
            yield ctx.problem(
                "spec.stackkit",
                f"{kit.name} has no version {want} (this kombify ships {kit.version})",
            )
    variant = spec.get("variant")
    if isinstance(variant, str) and variant in ctx.lib.variants and variant not in kit.variants:
        yield ctx.problem(
            "spec.variant",
            f"{kit.name} does not support {variant} (supports {', '.join(kit.variants)})",
        )


def _node_role(ctx: _Ctx, node: dict[str, Any]) -> str | None:
    role = node.get("role")
    if isinstance(role, str):
        return role
    return ctx.kit.default_role if ctx.kit else None


def _check_nodes(ctx: _Ctx) -> Iterator[Problem]:
    first_line: dict[str, int | None] = {}
    for i, raw in enumerate(_as_list(ctx.spec.get("nodes"))):
        node = _as_dict(raw)
        path = f"spec.nodes[{i}]"
        name = node.get("name")
        if isinstance(name, str):
            here = ctx.source.line_of(join(path, "name"))
            if name in first_line:
                yield ctx.problem(
                    join(path, "name"),
                    f'duplicate node name "{name}" (first at line {first_line[name]})',
                )
            else:
                first_line[name] = here
        yield from _check_node(ctx, path, node)


def _check_node(ctx: _Ctx, path: str, node: dict[str, Any]) -> Iterator[Problem]:
    provider = node.get("provider")
    role = node.get("role")
    if ctx.kit is not None and isinstance(role, str) and role not in ctx.kit.roles:
        roles = ", ".join(ctx.kit.roles)
        yield ctx.problem(
            join(path, "role"),
            f'unknown role "{role}" for {ctx.kit.name} (roles: {roles})'
            + suggest(role, ctx.kit.roles),
        )
    address = node.get("address")
    if provider == "local" and "address" not in node:
        yield ctx.problem(join(path, "address"), "required for provider local: host or host:port")
    if provider in CLOUD_PROVIDERS and "address" in node:
        yield ctx.problem(
            join(path, "address"), f"not allowed for provider {provider}: the cloud assigns it"
        )
    if provider in ("local", "sim"):
        for key in ("type", "location"):
            if key in node:
                yield ctx.problem(
                    join(path, key),
                    f"only for cloud providers (hetzner, aws, azure), not {provider}",
                )
    if isinstance(address, str):
        port = split_address(address)[1]
        if port is not None and not 1 <= port <= 65535:
            yield ctx.problem(join(path, "address"), f"port {port} is out of range 1-65535")
        ssh_port = _as_dict(node.get("ssh")).get("port")
        if port is not None and isinstance(ssh_port, int) and ssh_port != port:
            yield ctx.problem(
                join(path, "ssh.port"),
                f"{ssh_port} contradicts the port in address {address!r}; write the port once",
            )
    host_key = _as_dict(node.get("ssh")).get("hostKey")
    # A line of the wrong shape is the schema's to report; here the key data is checked.
    if isinstance(host_key, str) and _HOST_KEY_SHAPE.match(host_key):
        try:
            HostKey.parse(host_key)
        except ValueError as exc:
            yield ctx.problem(join(path, "ssh.hostKey"), str(exc))
    resources = _as_dict(node.get("resources"))
    for key in ("memory", "disk"):
        if parse_quantity(resources.get(key)) == 0:
            yield ctx.problem(join(path, f"resources.{key}"), "must be more than 0")


def _check_counts(ctx: _Ctx) -> Iterator[Problem]:
    kit = ctx.kit
    nodes = [_as_dict(n) for n in _as_list(ctx.spec.get("nodes"))]
    if kit is None or not nodes:
        return
    rules = kit.constraints
    count = len(nodes)
    wrong_count = _count_problem(kit, count)
    if wrong_count:
        yield ctx.problem("spec.nodes", wrong_count)
    roles = [_node_role(ctx, n) for n in nodes]
    for role, rule in rules.roles.items():
        have = roles.count(role)
        if (wrong_count and rules.nodes.max is not None) or not set(roles) <= set(kit.roles):
            # "exactly 1 node" or "unknown role" already says it; a count would only repeat it.
            break
        if have < rule.min or (rule.odd and have % 2 == 0):
            if rule.odd:
                need = f"an odd number (at least {rule.min}) of"
                why = " for a Raft quorum"
            else:
                need, why = f"at least {rule.min}", ""
            yield ctx.problem(
                "spec.nodes", f'{kit.name} needs {need} "{role}" nodes{why}, got {have}'
            )
        elif rule.max is not None and have > rule.max:
            yield ctx.problem(
                "spec.nodes", f'{kit.name} allows at most {rule.max} "{role}" node(s), got {have}'
            )
    providers = [n.get("provider") for n in nodes]
    if rules.requires_local and not any(p in ("local", "sim") for p in providers):
        yield ctx.problem("spec.nodes", f"{kit.name} needs at least one local or sim node")
    if rules.requires_cloud and not any(p in CLOUD_PROVIDERS for p in providers):
        yield ctx.problem(
            "spec.nodes", f"{kit.name} needs at least one cloud node (hetzner, aws or azure)"
        )


def _count_problem(kit: Kit, count: int) -> str | None:
    rule = kit.constraints.nodes
    if rule.max is not None and rule.min == rule.max != count:
        plural = "s" if rule.min != 1 else ""
        return f"{kit.name} takes exactly {rule.min} node{plural}, got {count}"
    if count < rule.min:
        return f"{kit.name} needs at least {rule.min} nodes, got {count}"
    if rule.max is not None and count > rule.max:
        return f"{kit.name} takes at most {rule.max} nodes, got {count}"
    return None


def _vpn(spec: dict[str, Any]) -> dict[str, Any]:
    return _as_dict(_as_dict(spec.get("network")).get("vpn"))


def _vpn_provider(spec: dict[str, Any]) -> str | None:
    """The VPN's provider when it is enabled (wireguard unless said otherwise), else None."""
    vpn = _vpn(spec)
    return str(vpn.get("provider", "wireguard")) if vpn.get("enabled") is True else None


def _check_mesh(ctx: _Ctx) -> Iterator[Problem]:
    """The WireGuard mesh's subnet, and no `vpn` service beside the mesh."""
    provider = _vpn_provider(ctx.spec)
    subnet = _vpn(ctx.spec).get("subnet")
    if provider == "headscale" and isinstance(subnet, str):
        try:
            check_prefix(subnet)  # Headscale's prefixes.v4
        except ValueError as exc:
            yield ctx.problem("spec.network.vpn.subnet", str(exc))
    vpn_service = _as_dict(_as_dict(ctx.spec.get("services")).get("vpn"))
    if provider == "headscale" and vpn_service.get("enabled") is False:
        # Headscale's server is what enrolls the nodes: without it nothing joins them.
        yield ctx.problem(
            "spec.services.vpn.enabled",
            "with provider: headscale the vpn service is the Headscale server kombify enrolls "
            "the nodes in: keep it (set spec.network.vpn.enabled to false to go without a VPN)",
        )
    if provider != "wireguard":
        return
    if isinstance(subnet, str):
        try:
            check_subnet(subnet)
        except ValueError as exc:
            yield ctx.problem("spec.network.vpn.subnet", str(exc))
    if "vpn" in _as_dict(ctx.spec.get("services")):
        yield ctx.problem(
            "spec.services.vpn",
            "the wireguard VPN is a mesh kombify builds on every node, not a service: remove "
            "this entry (set spec.network.vpn.enabled to false to go without it)",
        )


def _check_vpn(ctx: _Ctx) -> Iterator[Problem]:
    yield from _check_mesh(ctx)
    if ctx.kit is None or not ctx.kit.constraints.requires_vpn:
        return
    if _vpn(ctx.spec).get("enabled") is not True:
        yield ctx.problem(
            "spec.network.vpn.enabled",
            f"{ctx.kit.name} joins home and cloud nodes over a VPN: set it to true",
        )
    elif _vpn_provider(ctx.spec) != "wireguard":
        # kombify generates Headscale's config and enrolls nodes with pre-auth keys, but never
        # ran that end to end (no Headscale or Tailscale binaries where it is built; see
        # docs/vpn.md): a kit whose nodes must reach each other takes the mesh that was.
        yield ctx.problem(
            "spec.network.vpn.provider",
            f"{ctx.kit.name} joins home and cloud nodes over a VPN, and kombify's headscale "
            "enrollment has not been exercised end to end (no headscale or tailscale binaries "
            "where it is built): use provider: wireguard (the default), a mesh kombify builds "
            "on every node",
        )


# A HealStack pass asks every node and plans with OpenTofu: more often than this only loads
# the nodes (a failed service is noticed at once anyway, through the agents' event streams).
MIN_HEALING_SECONDS = 10


def _check_healing(ctx: _Ctx) -> Iterator[Problem]:
    healing = _as_dict(ctx.spec.get("healing"))
    every = parse_duration(healing.get("every"))
    if every is not None and every < MIN_HEALING_SECONDS:
        yield ctx.problem(
            "spec.healing.every",
            f"at least {MIN_HEALING_SECONDS}s: a failed service is healed as soon as its node "
            "reports it; `every` paces the checks of whole nodes and drift",
        )
    nodes = _as_list(ctx.spec.get("nodes"))
    if healing.get("strategy") == "reschedule" and len(nodes) < 2:
        yield ctx.problem(
            "spec.healing.strategy",
            "reschedule moves the services of a node that stays down to other nodes, and this "
            "stack has one node: use restart or redeploy",
        )


def _check_services(ctx: _Ctx) -> Iterator[Problem]:
    services = _as_dict(ctx.spec.get("services"))
    node_names = [n.get("name") for n in map(_as_dict, _as_list(ctx.spec.get("nodes")))]
    names = [n for n in node_names if isinstance(n, str)]
    offered = set(kit_services(ctx.kit.name, library=ctx.lib)) if ctx.kit else set()
    if ctx.kit and _vpn_provider(ctx.spec) not in (None, "wireguard"):
        offered.add("vpn")
    for name, raw in services.items():
        service = _as_dict(raw)
        path = join("spec.services", str(name))
        if name == "vpn" and _vpn_provider(ctx.spec) == "wireguard":
            continue  # _check_mesh says what is wrong with it
        if ctx.kit is not None and name not in offered and "image" not in service:
            yield ctx.problem(
                join(path, "image"),
                f'"{name}" is not in the {ctx.kit.name} catalog ({", ".join(sorted(offered))}), '
                f"so it needs an image{suggest(str(name), offered)}",
            )
        node = service.get("node")
        if isinstance(node, str) and names and node not in names:
            yield ctx.problem(
                join(path, "node"),
                f'unknown node "{node}" (nodes: {", ".join(names)}){suggest(node, names)}',
            )
        checks = [k for k in ("http", "tcp", "cmd") if k in _as_dict(service.get("healthcheck"))]
        if len(checks) > 1:
            yield ctx.problem(
                join(path, "healthcheck"),
                f"give one of http, tcp or cmd, not {' and '.join(checks)}",
            )


def _check_placement(ctx: _Ctx) -> list[Problem]:
    assert ctx.kit is not None
    nodes = [_as_dict(n) for n in _as_list(ctx.spec.get("nodes"))]
    refs = [NodeRef(str(n["name"]), _node_role(ctx, n) or "") for n in nodes]
    provider = _vpn_provider(ctx.spec)
    planned = plan_services(
        ctx.kit.name,
        refs,
        _as_dict(ctx.spec.get("services")),
        vpn_provider=provider,
        library=ctx.lib,
    )
    scope = ctx.lib.platforms[ctx.kit.platform].port_scope
    return [
        *_port_clashes(ctx, planned, scope),
        *_memory_fit(ctx, planned, nodes),
        *placed_route_problems(ctx.problem, ctx.kit, ctx.spec, planned),
    ]


def _port_clashes(ctx: _Ctx, planned: list[PlannedService], scope: str) -> Iterator[Problem]:
    written = _as_dict(ctx.spec.get("services"))
    owners: dict[tuple[str, str, int], tuple[PlannedService, str]] = {}
    for service in planned:
        user_ports = "ports" in _as_dict(written.get(service.name))
        where = ["*"] if scope == "cluster" else list(service.nodes)
        for i, port in enumerate(service.definition.get("ports", [])):
            host = port.get("host")
            if not isinstance(host, int):
                continue
            path = f"spec.services.{service.name}" + (f".ports[{i}].host" if user_ports else "")
            proto = str(port.get("protocol", "tcp"))
            for node in where:
                key = (node, proto, host)
                if key not in owners:
                    owners[key] = (service, path)
                    continue
                other, other_path = owners[key]
                if other.name == service.name:
                    continue
                on = "in the swarm" if node == "*" else f'on node "{node}"'
                if service.user_listed:
                    first = _owner_words(ctx, other, other_path)
                    yield ctx.problem(
                        path, f"host port {host}/{proto} {on} is already used by {first}"
                    )
                elif other.user_listed:
                    yield ctx.problem(
                        other_path,
                        f"host port {host}/{proto} {on} is also used by {service.name} "
                        "(StackKit default)",
                    )


def _owner_words(ctx: _Ctx, service: PlannedService, path: str) -> str:
    if service.user_listed:
        return f"{service.name} (line {ctx.source.line_of(path)})"
    return f"{service.name} (StackKit default)"


def _memory_fit(
    ctx: _Ctx, planned: list[PlannedService], nodes: list[dict[str, Any]]
) -> Iterator[Problem]:
    reserve = parse_quantity(_reserved_memory(ctx)) or 0
    for i, node in enumerate(nodes):
        have = parse_quantity(_as_dict(node.get("resources")).get("memory"))
        if have is None:
            continue
        needs = [(s.name, _service_memory(s)) for s in planned if node["name"] in s.nodes]
        total = reserve + sum(m for _, m in needs)
        if total <= have:
            continue
        path = f"spec.nodes[{i}].resources.memory"
        for name, memory in needs:
            if memory + reserve > have:
                yield ctx.problem(
                    path,
                    f"service {name} needs {format_quantity(memory)} "
                    f"(plus {format_quantity(reserve)} for the system)"
                    f' but node "{node["name"]}" has {format_quantity(have)}',
                )
                break
        else:
            parts = ", ".join(f"{n} {format_quantity(m)}" for n, m in needs if m)
            yield ctx.problem(
                path,
                f'node "{node["name"]}" has {format_quantity(have)} but needs '
                f"{format_quantity(total)}: system {format_quantity(reserve)}, {parts}",
            )


def _service_memory(service: PlannedService) -> int:
    per_replica = parse_quantity(service.definition.get("memory")) or 0
    replicas = service.definition.get("replicas", 1)
    return per_replica * (replicas if isinstance(replicas, int) else 1)


def _reserved_memory(ctx: _Ctx) -> object:
    assert ctx.kit is not None
    layers = (ctx.kit.settings, ctx.lib.platforms[ctx.kit.platform].settings, ctx.lib.core.settings)
    for settings in layers:  # latest layer first: the first one that says wins
        if "reserved_memory" in settings:
            return settings["reserved_memory"]
    return None
