"""The graph of each kit's example: what its plan deploys, drawn before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kombify.operate.graph import StackGraph, build_graph
from kombify.specs import load_kombination

EXAMPLES = Path(__file__).parents[2] / "data" / "spec" / "examples"
DOCS = Path(__file__).parents[3] / "docs" / "examples"


def desired(path: Path) -> StackGraph:
    k = load_kombination(path.read_text(), filename=str(path))
    return build_graph(k, revision=1, source="current", deployed=False, observed=None)


def placements(graph: StackGraph) -> dict[tuple[str, str], int | None]:
    """(service, node) -> replicas wanted there, for every placement edge."""
    return {
        (e.source.removeprefix("service:"), e.target.removeprefix("node:")): e.replicas
        for e in graph.edges_of("placement")
    }


def labels(graph: StackGraph, kind: str) -> list[str]:
    return [e.label for e in graph.of_kind(kind)]


def test_base_homelab_one_node_its_services_and_the_proxy_network() -> None:
    graph = desired(EXAMPLES / "base-homelab.yaml")

    assert graph.version == 1 and graph.stack == "home-lab" and graph.platform == "docker"
    assert labels(graph, "node") == ["nas (main, local)"]
    assert placements(graph) == {
        ("dashboard", "nas"): 1,
        ("reverse-proxy", "nas"): 1,
        ("whoami", "nas"): 1,
    }
    (network,) = graph.of_kind("network")
    assert network.id == "network:nas/kombify" and network.attrs["scope"] == "node"
    assert [(e.source, e.target) for e in graph.edges_of("network")] == [
        ("service:reverse-proxy", "network:nas/kombify")
    ]
    assert graph.of_kind("route") == [] and graph.vpn is None and graph.edges_of("vpn-link") == []
    assert {e.state for e in graph.elements} | {e.state for e in graph.edges} == {"not-deployed"}


def test_modern_homelab_replicas_on_the_worker() -> None:
    graph = desired(EXAMPLES / "modern-homelab.yaml")

    assert labels(graph, "node") == [
        "main (main, sim)",
        "worker-a (worker, sim)",
        "worker-b (worker, aws)",
    ]
    assert placements(graph) == {
        ("dashboard", "main"): 1,
        ("reverse-proxy", "main"): 1,
        ("notes", "worker-a"): 2,
    }
    notes = graph.element("service:notes")
    assert notes.attrs["replicas"] == 2 and notes.attrs["image"] == "kombify-test/httpd:1"
    assert notes.attrs["ports"] == ["8081:80/tcp"]
    assert [n.id for n in graph.of_kind("network")] == ["network:main/kombify"]


def test_ha_homelab_swarm_services_overlay_and_headscale_links() -> None:
    graph = desired(EXAMPLES / "ha-homelab.yaml")

    assert graph.platform == "swarm"
    assert [n.id for n in graph.of_kind("node")] == ["node:m1", "node:m2", "node:m3", "node:w1"]
    assert sorted(labels(graph, "service")) == [
        "dashboard",
        "grafana",
        "metrics",
        "node-metrics",
        "reverse-proxy",
        "vpn",
    ]
    where = placements(graph)
    # A global service: one task on every node it may run on; a replicated one: the swarm
    # decides among the eligible nodes (replicas null on each).
    assert {n for (s, n) in where if s == "node-metrics"} == {"m1", "m2", "m3", "w1"}
    assert {where[("node-metrics", n)] for n in ("m1", "m2", "m3", "w1")} == {1}
    assert {n for (s, n) in where if s == "grafana"} == {"m1", "m2", "m3"}
    assert where[("grafana", "m1")] is None
    assert graph.element("service:grafana").attrs["mode"] == "replicated"
    assert graph.element("service:node-metrics").attrs["mode"] == "global"
    (overlay,) = graph.of_kind("network")
    assert overlay.id == "network:kombify-overlay" and overlay.attrs["scope"] == "swarm"
    assert len(graph.edges_of("network")) == 6
    assert graph.vpn is not None and graph.vpn.provider == "headscale"
    assert graph.vpn.subnet == "100.64.0.0/10"
    pairs = {(e.source, e.target) for e in graph.edges_of("vpn-link")}
    assert len(pairs) == 6 and ("node:m1", "node:w1") in pairs


def test_cloud_hybrid_links_home_and_cloud_over_wireguard() -> None:
    graph = desired(EXAMPLES / "cloud-hybrid.yaml")

    assert labels(graph, "node") == ["home (main, local)", "edge (edge, hetzner)"]
    assert placements(graph) == {
        ("dashboard", "home"): 1,
        ("monitoring", "edge"): 1,
        ("reverse-proxy", "edge"): 1,
    }
    assert graph.vpn is not None
    assert (graph.vpn.provider, graph.vpn.subnet, graph.vpn.interface) == (
        "wireguard",
        "10.66.0.0/24",
        "wg-kombify",
    )
    (link,) = graph.edges_of("vpn-link")
    assert (link.id, link.source, link.target) == ("vpn-link:home--edge", "node:home", "node:edge")


def test_docs_rehearsal_example() -> None:
    graph = desired(DOCS / "rehearsal.yaml")

    assert labels(graph, "node") == ["box (main, sim)"]
    assert placements(graph) == {("web", "box"): 1}  # the proxy is turned off there
    assert graph.of_kind("network") == []


EXPOSED = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {name: shop}
spec:
  stackkit: modern-homelab
  nodes:
    - {name: box, provider: sim, role: main}
    - {name: box2, provider: sim, role: worker}
  services:
    web:
      image: kombify-test/httpd:1
      node: box
      ports: [{container: 80, host: 8080}]
      expose: {host: www, port: 80}
    api:
      image: kombify-test/httpd:1
      node: box2
      ports: [{container: 80, host: 8081}]
      expose: {host: api, port: 80}
"""


def test_routes_point_at_their_services() -> None:
    k = load_kombination(EXPOSED, filename="shop.yaml")
    graph = build_graph(k, revision=3, source="current", deployed=False, observed=None)

    routes = {r.id: r for r in graph.of_kind("route")}
    assert set(routes) == {"route:www.shop.home.arpa", "route:api.shop.home.arpa"}
    assert routes["route:api.shop.home.arpa"].attrs["upstreams"] == ["box2"]
    assert routes["route:api.shop.home.arpa"].attrs["proxy"] == "reverse-proxy"
    assert {(e.source, e.target, e.label) for e in graph.edges_of("route")} == {
        ("route:www.shop.home.arpa", "service:web", ":80"),
        ("route:api.shop.home.arpa", "service:api", ":80"),
    }
    # The proxy reaches web by name on its own node's network.
    members = {(e.source, e.target) for e in graph.edges_of("network")}
    assert ("service:web", "network:box/kombify") in members


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_ids_are_unique_and_edges_join_elements(path: Path) -> None:
    graph = desired(path)

    ids = [e.id for e in graph.elements]
    assert len(ids) == len(set(ids))
    assert len({e.id for e in graph.edges}) == len(graph.edges)
    assert {e.source for e in graph.edges} | {e.target for e in graph.edges} <= set(ids)
    # The JSON form reads back as the same graph (what the dashboard and the CLI rely on).
    assert StackGraph.model_validate_json(graph.model_dump_json()) == graph
