"""The Caddy JSON config kombify loads into a kit's reverse proxy (``POST /load``).

Rendered from ``routes.json`` once the addresses of the nodes that run remote upstreams are
known. The whole config is loaded every time, so a route that is gone from ``routes.json``
is gone from the proxy; Caddy swaps configs without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Where the admin API listens: a unix socket in a host directory the proxy container
# bind-mounts, so only the node (its agent) reaches it. The catalog's caddy entry boots with
# the same block (KOMBIFY_PROXY_BOOT), and every config loaded keeps it: a config without
# it would move the admin API to Caddy's default address, out of the agent's reach.
ADMIN_SOCKET = "/run/kombify/proxy/admin.sock"
# Caddy checks the Host header of admin requests even on a unix socket; the agent sends this.
ADMIN_ORIGIN = "kombify-agent"
ADMIN: dict[str, Any] = {"listen": f"unix/{ADMIN_SOCKET}", "origins": [ADMIN_ORIGIN]}
NO_ROUTE = {"handler": "static_response", "status_code": 404, "body": "no route"}


class MissingAddress(LookupError):
    """A remote upstream's node has no known address (the activity could not ask it)."""


def dial(host: str, port: int) -> str:
    """``host:port`` for Caddy's ``dial`` (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _upstreams(route: Mapping[str, Any], addresses: Mapping[str, str]) -> list[dict[str, str]]:
    out = []
    for upstream in route["upstreams"]:
        if upstream["local"]:
            # By name on the node's Docker network: every replica answers to the service.
            out.append({"dial": dial(str(route["service"]), int(route["port"]))})
            continue
        node = str(upstream["node"])
        if node not in addresses:
            raise MissingAddress(node)
        out.append({"dial": dial(addresses[node], int(upstream["host_port"]))})
    return out


def caddy_config(routes: Mapping[str, Any], addresses: Mapping[str, str]) -> dict[str, Any]:
    """The proxy's whole config for ``routes`` (the ``routes.json`` document).

    Args:
        routes: The document :func:`kombify.unifier.routes.routes_document` wrote.
        addresses: Node name -> the address the proxy's node reaches it at, for every node
            running a remote upstream.

    Raises:
        MissingAddress: A remote upstream's node is not in ``addresses``.
    """
    hosts = [str(r["host"]) for r in routes["routes"]]
    http_routes: list[dict[str, Any]] = []
    if hosts:
        # Plain HTTP answers every known name with a redirect to HTTPS (same host and path).
        redirect = {
            "handler": "static_response",
            "status_code": 308,
            "headers": {"Location": ["https://{http.request.host}{http.request.uri}"]},
        }
        http_routes.append({"match": [{"host": hosts}], "handle": [redirect], "terminal": True})
    http_routes.append({"handle": [NO_ROUTE]})
    servers: dict[str, Any] = {
        "kombify-http": {
            "listen": [":80"],
            "automatic_https": {"disable": True},
            "routes": http_routes,
        }
    }
    apps: dict[str, Any] = {"http": {"servers": servers}}
    if hosts:
        servers["kombify-https"] = {
            "listen": [":443"],
            # The redirects are kombify-http's; Caddy's own would fight it for port 80.
            "automatic_https": {"disable_redirects": True},
            "routes": [
                {
                    "match": [{"host": [str(route["host"])]}],
                    "handle": [
                        {"handler": "reverse_proxy", "upstreams": _upstreams(route, addresses)}
                    ],
                    "terminal": True,
                }
                for route in routes["routes"]
            ]
            # A name the proxy still holds a certificate for (Caddy keeps them in storage)
            # but no longer routes gets a 404, not Caddy's empty 200 for "no route matched".
            + [{"handle": [NO_ROUTE]}],
        }
        apps["tls"] = {
            "automation": {"policies": [{"subjects": hosts, "issuers": [_issuer(routes)]}]}
        }
    return {"admin": ADMIN, "apps": apps}


def _issuer(routes: Mapping[str, Any]) -> dict[str, Any]:
    tls = routes.get("tls") or {}
    if tls.get("issuer") == "acme":
        return {"module": "acme", "email": tls["email"]}
    return {"module": "internal"}
