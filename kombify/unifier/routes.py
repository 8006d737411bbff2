"""The stack's routes: which domain name reaches which service, through which proxy.

The unifier writes them as ``routes.json`` beside the manifests (byte-identical for the same
input). It is the intent only: a remote upstream is a node and a host port, because the
node's address is known at apply time (the ApplyRoutes activity asks the node), and the
proxy's own config is rendered from it then (:mod:`kombify.unifier.caddy`).
"""

from __future__ import annotations

from typing import Any

from kombify.stackkits.resolver import ResolvedService, ResolvedStack

ROUTES_FILE = "routes.json"
DEFAULT_NETWORK = "kombify"


def proxy_service(stack: ResolvedStack) -> ResolvedService | None:
    """The kit's reverse proxy as it runs in this stack; None without one (or turned off)."""
    name = stack.kit.proxy
    return next((s for s in stack.services if s.name == name and s.nodes), None)


def proxy_network(stack: ResolvedStack) -> str:
    """The node's Docker network the proxy shares with the services it reaches by name."""
    platform = stack.settings.get("platform")
    network = platform.get("network") if isinstance(platform, dict) else None
    return network if isinstance(network, str) else DEFAULT_NETWORK


def networked(stack: ResolvedStack, node: str) -> set[str]:
    """Services on ``node`` that join the proxy's network: the proxy and the services it
    reaches there by name (``<service>:<port>``).

    The proxy joins whether or not anything is exposed on its node yet: a network is part of
    its container's spec, so joining later would replace (restart) the proxy.
    """
    proxy = proxy_service(stack)
    if proxy is None or proxy.nodes[0] != node:
        return set()
    local = {s.name for s in stack.services if _expose(s) is not None and node in s.nodes}
    return {proxy.name} | local


def _expose(service: ResolvedService) -> dict[str, Any] | None:
    expose = service.definition.get("expose")
    return expose if isinstance(expose, dict) else None


def _host_port(service: ResolvedService, port: int) -> int | None:
    for p in service.definition.get("ports", []):
        if p.get("container") == port and p.get("protocol", "tcp") == "tcp" and p.get("host"):
            return int(p["host"])
    return None


def routes_document(stack: ResolvedStack) -> dict[str, Any]:
    """``routes.json``: the proxy (or null), the TLS issuer and one route per exposed service.

    Always written, also without routes: the activity then clears what an earlier apply
    loaded into the proxy, so a service that is no longer exposed loses its route.
    """
    k = stack.kombination
    proxy = proxy_service(stack)
    routes = []
    for service in stack.services:
        expose = _expose(service)
        if proxy is None or expose is None or not service.nodes:
            continue
        port = int(expose["port"])
        upstreams = [
            {
                "node": node,
                "local": node == proxy.nodes[0],
                "host_port": None if node == proxy.nodes[0] else _host_port(service, port),
            }
            for node in service.nodes
        ]
        routes.append(
            {
                "host": f"{expose['host']}.{k.spec.domain}",
                "service": service.name,
                "port": port,
                "upstreams": upstreams,
            }
        )
    return {
        "apiVersion": "kombify.io/v1",
        "kind": "Routes",
        "stack": k.metadata.name,
        "domain": k.spec.domain,
        "proxy": None
        if proxy is None
        else {
            "service": proxy.name,
            "node": proxy.nodes[0],
            "catalog": proxy.use,
            "network": proxy_network(stack),
        },
        "tls": {"issuer": k.spec.tls.issuer, "email": k.spec.tls.email},
        "routes": sorted(routes, key=lambda r: str(r["host"])),
    }
