"""Rules for ``expose`` and ``spec.tls``: what routing through the kit's reverse proxy needs.

Like the other rules they read the parsed data defensively (it may be partly invalid).
:func:`route_problems` needs no placement; :func:`placed_route_problems` runs once placement
is known (which node runs each service, with which ports).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kombify.specs.problem import Problem
from kombify.stackkits.library import Kit
from kombify.stackkits.placement import PlannedService

ProblemAt = Callable[[str, str], Problem]
# Names that never resolve on the public internet, so no public CA can validate them.
LOCAL_ONLY_SUFFIXES = (".home.arpa", ".lan", ".local")


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _exposed(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, service, expose) of every service that says ``expose``, in file order."""
    for name, raw in _as_dict(spec.get("services")).items():
        service = _as_dict(raw)
        if "expose" in service:
            yield str(name), service, _as_dict(service.get("expose"))


def domain_of(spec: dict[str, Any], stack: object) -> str:
    """``spec.domain``, or the default every stack gets (``<metadata.name>.home.arpa``)."""
    domain = spec.get("domain")
    return domain if isinstance(domain, str) else f"{stack}.home.arpa"


def route_problems(
    problem: ProblemAt, kit: Kit | None, spec: dict[str, Any], stack: object
) -> Iterator[Problem]:
    """Problems of ``expose`` and ``spec.tls`` that need no placement."""
    if kit is None:
        return
    services = _as_dict(spec.get("services"))
    proxy_off = kit.proxy is not None and _as_dict(services.get(kit.proxy)).get("enabled") is False
    hosts: dict[str, str] = {}
    for name, service, expose in _exposed(spec):
        path = f"spec.services.{name}.expose"
        if kit.proxy is None:
            yield problem(
                path,
                f"{kit.name} has no reverse proxy kombify configures, so a service cannot be "
                "exposed by domain (base-homelab and modern-homelab route through theirs)",
            )
            continue
        if name == kit.proxy:
            yield problem(
                path, f"{name} is the reverse proxy itself; expose the services behind it"
            )
            continue
        if proxy_off:
            yield problem(
                path,
                f"the reverse proxy is turned off (spec.services.{kit.proxy}.enabled: false), "
                "and exposed services are reached through it",
            )
        if service.get("enabled") is False:
            yield problem(path, f"{name} is turned off (enabled: false), so it cannot be exposed")
        host = expose.get("host")
        if isinstance(host, str):
            if host in hosts:
                yield problem(f"{path}.host", f'host "{host}" is already exposed by {hosts[host]}')
            else:
                hosts[host] = name
    yield from _tls_problems(problem, kit, spec, stack)


def _tls_problems(
    problem: ProblemAt, kit: Kit, spec: dict[str, Any], stack: object
) -> Iterator[Problem]:
    if "tls" not in spec:
        return
    tls = _as_dict(spec.get("tls"))
    if kit.proxy is None:
        yield problem(
            "spec.tls",
            f"{kit.name} has no reverse proxy kombify configures, so there is no TLS to set",
        )
        return
    issuer = tls.get("issuer", "internal")
    if issuer == "acme":
        if "email" not in tls:
            yield problem(
                "spec.tls.email",
                "required with issuer acme: the ACME account's contact (expiry notices)",
            )
        domain = domain_of(spec, stack)
        if domain.endswith(LOCAL_ONLY_SUFFIXES):
            yield problem(
                "spec.tls.issuer",
                f"acme needs a public domain that resolves to the proxy, and {domain} is "
                f"local-only ({', '.join(LOCAL_ONLY_SUFFIXES)}): use issuer internal, or set "
                "spec.domain to a domain you own",
            )
    elif issuer == "internal" and "email" in tls:
        yield problem(
            "spec.tls.email", "only used with issuer acme (internal certificates have no account)"
        )


def placed_route_problems(
    problem: ProblemAt, kit: Kit, spec: dict[str, Any], planned: list[PlannedService]
) -> Iterator[Problem]:
    """Problems of ``expose`` that depend on where services run and what they publish."""
    by_name = {s.name: s for s in planned}
    proxy = by_name.get(kit.proxy) if kit.proxy else None
    if proxy is None or not proxy.nodes:
        return
    proxy_node = proxy.nodes[0]
    for name, _, expose in _exposed(spec):
        service = by_name.get(name)
        port = expose.get("port")
        if service is None or not isinstance(port, int):
            continue
        path = f"spec.services.{name}.expose.port"
        tcp = [
            p
            for p in service.definition.get("ports", [])
            if isinstance(p, dict) and p.get("protocol", "tcp") == "tcp"
        ]
        matching = [p for p in tcp if p.get("container") == port]
        if not matching:
            have = ", ".join(f"{p.get('container')}/tcp" for p in tcp) or "none"
            yield problem(
                path,
                f"{port} is not a container port of {name} (its ports: {have}); declare it "
                f"under ports, e.g. {{container: {port}}}",
            )
            continue
        remote = [n for n in service.nodes if n != proxy_node]
        if remote and not any(isinstance(p.get("host"), int) for p in matching):
            yield problem(
                path,
                f'{name} runs on node "{remote[0]}" and the proxy on "{proxy_node}": publish '
                f"container port {port} on a host port (ports: [{{container: {port}, host: "
                f"...}}]); the proxy reaches it as <node address>:<host port>",
            )
