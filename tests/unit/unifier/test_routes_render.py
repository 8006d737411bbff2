"""routes.json and the Caddy config rendered from it: what the proxy is told to route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kombify.specs import load_kombination
from kombify.stackkits.library import load_library
from kombify.unifier import unify
from kombify.unifier.caddy import ADMIN, MissingAddress, caddy_config

MODERN = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {name: lab}
spec:
  stackkit: modern-homelab
  domain: lab.example
%(tls)s  nodes:
    - {name: main, provider: sim}
    - {name: w1, provider: sim, role: worker}
  services:
    dashboard: {enabled: false}
    photos:
      image: kombify-test/httpd:1
      node: main
      ports: [{container: 80}]
      expose: {host: photos, port: 80}
    notes:
      image: kombify-test/httpd:1
      ports: [{container: 8000, host: 8081}]
      expose: {host: notes, port: 8000}
    plain:
      image: kombify-test/httpd:1
"""


def _plan(tls: str = "") -> Any:
    return unify(load_kombination(MODERN % {"tls": tls}))


def test_routes_json_names_each_route_and_where_its_upstreams_run() -> None:
    plan = _plan()
    assert plan.files["routes.json"] == _plan().files["routes.json"]  # byte-identical
    routes = json.loads(plan.files["routes.json"])
    assert routes["proxy"] == {
        "service": "reverse-proxy",
        "node": "main",
        "catalog": "caddy",
        "network": "kombify",
    }
    assert routes["tls"] == {"issuer": "internal", "email": None}
    assert routes["routes"] == [
        {
            "host": "notes.lab.example",
            "service": "notes",
            "port": 8000,
            "upstreams": [{"node": "w1", "local": False, "host_port": 8081}],
        },
        {
            "host": "photos.lab.example",
            "service": "photos",
            "port": 80,
            "upstreams": [{"node": "main", "local": True, "host_port": None}],
        },
    ]


def test_the_proxy_and_its_local_upstreams_join_the_nodes_network() -> None:
    plan = _plan()
    main = {s["name"]: s for s in plan.manifests["main"]["services"]}
    worker = {s["name"]: s for s in plan.manifests["w1"]["services"]}
    assert main["reverse-proxy"]["networks"] == ["kombify"]
    assert main["photos"]["networks"] == ["kombify"]
    # Reached by address and host port, not by name: no network to join.
    assert "networks" not in worker["notes"]
    assert "networks" not in worker["plain"]


def test_the_proxy_joins_the_network_before_anything_is_exposed_beside_it() -> None:
    # Joining later would change its container's spec, i.e. restart it on that apply.
    text = MODERN % {"tls": ""}
    text = text.replace("      node: main\n", "      node: w1\n").replace(
        "[{container: 80}]", "[{container: 80, host: 8080}]"
    )
    main = {s["name"]: s for s in unify(load_kombination(text)).manifests["main"]["services"]}
    assert main["reverse-proxy"]["networks"] == ["kombify"]
    assert set(main) == {"reverse-proxy"}


def test_caddy_config_routes_by_host_and_redirects_plain_http() -> None:
    routes = json.loads(_plan().files["routes.json"])
    config = caddy_config(routes, {"w1": "10.0.0.7"})
    assert config["admin"] == ADMIN
    servers = config["apps"]["http"]["servers"]
    https = servers["kombify-https"]
    assert https["listen"] == [":443"]
    *routed, last = https["routes"]
    assert [(r["match"][0]["host"], r["handle"][0]["upstreams"]) for r in routed] == [
        (["notes.lab.example"], [{"dial": "10.0.0.7:8081"}]),
        (["photos.lab.example"], [{"dial": "photos:80"}]),
    ]
    assert last == {
        "handle": [{"handler": "static_response", "status_code": 404, "body": "no route"}]
    }
    redirect, fallback = servers["kombify-http"]["routes"]
    assert redirect["match"] == [{"host": ["notes.lab.example", "photos.lab.example"]}]
    assert redirect["handle"][0]["status_code"] == 308
    assert redirect["handle"][0]["headers"]["Location"] == [
        "https://{http.request.host}{http.request.uri}"
    ]
    assert fallback["handle"][0]["status_code"] == 404
    policy = config["apps"]["tls"]["automation"]["policies"]
    assert policy == [
        {
            "subjects": ["notes.lab.example", "photos.lab.example"],
            "issuers": [{"module": "internal"}],
        }
    ]


def test_acme_is_rendered_with_the_owners_email() -> None:
    routes = json.loads(
        _plan("  tls: {issuer: acme, email: me@lab.example}\n").files["routes.json"]
    )
    config = caddy_config(routes, {"w1": "fd00::7"})
    (policy,) = config["apps"]["tls"]["automation"]["policies"]
    assert policy["issuers"] == [{"module": "acme", "email": "me@lab.example"}]
    notes = config["apps"]["http"]["servers"]["kombify-https"]["routes"][0]
    assert notes["handle"][0]["upstreams"] == [{"dial": "[fd00::7]:8081"}]


def test_no_routes_leaves_only_the_fallback_and_keeps_the_admin_socket() -> None:
    routes = json.loads(_plan().files["routes.json"])
    config = caddy_config({**routes, "routes": []}, {})
    assert config == {
        "admin": ADMIN,
        "apps": {
            "http": {
                "servers": {
                    "kombify-http": {
                        "listen": [":80"],
                        "automatic_https": {"disable": True},
                        "routes": [
                            {
                                "handle": [
                                    {
                                        "handler": "static_response",
                                        "status_code": 404,
                                        "body": "no route",
                                    }
                                ]
                            }
                        ],
                    }
                }
            }
        },
    }


def test_a_remote_upstream_needs_its_nodes_address() -> None:
    routes = json.loads(_plan().files["routes.json"])
    with pytest.raises(MissingAddress):
        caddy_config(routes, {})


def test_the_catalogs_boot_config_keeps_the_same_admin_socket() -> None:
    caddy = load_library().catalog["caddy"]
    boot = json.loads(caddy.env["KOMBIFY_PROXY_BOOT"])
    assert boot["admin"] == ADMIN
    # The boot server answers the kit's health check (tcp 80) before any route is loaded.
    assert boot["apps"]["http"]["servers"]["boot"]["listen"] == [":80"]
    assert caddy.healthcheck is not None and caddy.healthcheck.tcp == 80
    assert "/run/kombify/proxy:/run/kombify/proxy" in caddy.volumes


def test_modern_homelab_no_longer_ships_dokploy() -> None:
    lib = load_library()
    assert "dokploy" not in lib.catalog and "dokploy" not in lib.platforms
    kit = lib.kit("modern-homelab")
    assert (kit.platform, kit.proxy) == ("docker", "reverse-proxy")
    assert kit.services["reverse-proxy"].use == "caddy"
