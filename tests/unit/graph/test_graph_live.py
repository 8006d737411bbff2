"""Live states: what the nodes answered, joined to the desired graph."""

from __future__ import annotations

from pathlib import Path

from kombify.activities.vpn_observe import parse_wg
from kombify.contracts.observe import (
    ContainerSeen,
    NodeSeen,
    ServiceSeen,
    StackSeen,
    SwarmSeen,
    SwarmServiceSeen,
    SwarmTaskSeen,
)
from kombify.contracts.vpn import VpnNodeSeen, VpnSeen
from kombify.operate.graph import Observed, StackGraph, build_graph
from kombify.specs import load_kombination

EXAMPLES = Path(__file__).parents[2] / "data" / "spec" / "examples"
NOW = "2026-12-02T12:00:00+00:00"


def graph_of(name: str, observed: Observed | None, *, deployed: bool = True) -> StackGraph:
    path = EXAMPLES / f"{name}.yaml"
    k = load_kombination(path.read_text(), filename=str(path))
    return build_graph(k, revision=2, source="deployed", deployed=deployed, observed=observed)


def running(health: str = "healthy") -> ContainerSeen:
    return ContainerSeen(id="c" * 64, state="running", health=health, image="i")


def test_a_node_that_answered_shows_its_services_states() -> None:
    box = NodeSeen(
        "main",
        True,
        "",
        NOW,
        [
            ServiceSeen("dashboard", 1, "i", [running("none")]),
            ServiceSeen("reverse-proxy", 1, "i", [running()]),
        ],
    )
    worker = NodeSeen(
        "worker-a",
        True,
        "",
        NOW,
        [
            ServiceSeen(
                "notes",
                2,
                "i",
                [running(), ContainerSeen(id="d" * 64, state="exited", health="none", image="i")],
            ),
            ServiceSeen("old", 0, "", [running("none")]),
        ],
    )
    far = NodeSeen("worker-b", False, "did not answer within 20 s", NOW, [])
    graph = graph_of("modern-homelab", Observed(StackSeen([box, worker, far]), observed_at=NOW))

    assert graph.live is True and graph.observed_at == NOW
    assert graph.element("node:main").state == "running"
    far_node = graph.element("node:worker-b")
    assert (far_node.state, far_node.detail) == ("unreachable", "did not answer within 20 s")
    assert graph.element("service:dashboard").state == "running"  # no health check
    assert graph.element("service:reverse-proxy").state == "healthy"
    notes = graph.element("service:notes")
    assert notes.state == "degraded" and notes.attrs["running"] == 1
    (edge,) = [e for e in graph.edges_of("placement") if e.source == "service:notes"]
    assert (edge.replicas, edge.running, edge.label) == (2, 1, "1/2")
    # Left over on a node: shown, so the owner sees what the next apply removes.
    assert graph.element("service:old").state == "not-wanted"
    assert graph.element("network:main/kombify").state == "running"


def test_a_killed_container_is_stopped_and_an_unreachable_nodes_services_unknown() -> None:
    killed = ContainerSeen(id="c" * 64, state="exited", health="none", image="i")
    nas = NodeSeen("nas", True, "", NOW, [ServiceSeen("whoami", 1, "i", [killed])])
    graph = graph_of("base-homelab", Observed(StackSeen([nas])))
    whoami = graph.element("service:whoami")
    assert whoami.state == "stopped" and "exited" in (whoami.detail or "")
    assert graph.element("service:dashboard").state == "missing"

    gone = NodeSeen("nas", False, "the simulated node is not running", NOW, [])
    graph = graph_of("base-homelab", Observed(StackSeen([gone])))
    assert graph.element("node:nas").state == "unreachable"
    whoami = graph.element("service:whoami")
    assert whoami.state == "unknown" and "not running" in (whoami.detail or "")


def test_not_asked_and_not_deployed() -> None:
    graph = graph_of("base-homelab", None)
    assert graph.live is False
    assert {e.state for e in graph.elements} == {"unknown"}
    assert graph.element("node:nas").detail == "not asked (live=false)"

    failed = Observed(None, error="the nodes could not be asked: Temporal: down")
    graph = graph_of("base-homelab", failed)
    assert graph.error == "the nodes could not be asked: Temporal: down"
    assert graph.element("service:whoami").detail == failed.error

    graph = graph_of("base-homelab", None, deployed=False)
    assert {e.state for e in graph.elements} == {"not-deployed"}


def test_swarm_tasks_become_placements_with_running_counts() -> None:
    nodes = [NodeSeen(n, True, "", NOW, []) for n in ("m1", "m2", "m3", "w1")]
    grafana = SwarmServiceSeen(
        "grafana", "replicated", 1, 1, "host", "i", [SwarmTaskSeen("m2", "running")]
    )
    metrics = SwarmServiceSeen(
        "metrics", "replicated", 1, 0, "host", "i", [SwarmTaskSeen("m1", "failed", "exit 1")]
    )
    swarm = SwarmSeen("m1", True, "", quorum=True, services=[grafana, metrics])
    graph = graph_of("ha-homelab", Observed(StackSeen(nodes, swarm)))

    assert graph.element("service:grafana").state == "running"
    edges = {e.target: e for e in graph.edges_of("placement") if e.source == "service:grafana"}
    assert edges["node:m2"].running == 1 and edges["node:m2"].state == "running"
    assert edges["node:m1"].state == "idle" and edges["node:m1"].running == 0
    metrics_el = graph.element("service:metrics")
    assert metrics_el.state == "stopped" and "exit 1" in (metrics_el.detail or "")
    assert graph.element("service:dashboard").state == "missing"
    assert graph.element("network:kombify-overlay").state == "running"


def test_vpn_links_name_the_node_that_did_not_answer() -> None:
    home = NodeSeen("home", True, "", NOW, [])
    edge = NodeSeen("edge", False, "connection refused", NOW, [])
    mesh = VpnSeen(
        "wg-kombify", [VpnNodeSeen("home", True, "", True), VpnNodeSeen("edge", False, "refused")]
    )
    graph = graph_of("cloud-hybrid", Observed(StackSeen([home, edge]), vpn=mesh))

    (link,) = graph.edges_of("vpn-link")
    assert link.state == "unknown" and link.detail == "node `edge` did not answer: refused"
    graph = graph_of("cloud-hybrid", Observed(StackSeen([home, edge]), vpn_error="no worker"))
    assert graph.edges_of("vpn-link")[0].detail == "no worker"


WG_HOME = """now 1000
key HOMEKEY=
peer EDGEKEY= 990
addr 10.66.0.1/24
"""


def test_parse_wg_reads_keys_handshake_ages_and_addresses() -> None:
    seen = parse_wg("home", WG_HOME)
    assert (seen.interface, seen.public_key, seen.addresses) == (True, "HOMEKEY=", ["10.66.0.1/24"])
    assert seen.handshakes == {"EDGEKEY=": 10}
    assert parse_wg("home", "now 5\nkey K=\npeer P= 0\n").handshakes == {"P=": -1}
    assert parse_wg("home", "absent\n").interface is False


def _mesh(home: VpnNodeSeen, edge: VpnNodeSeen) -> str:
    nodes = [NodeSeen("home", True, "", NOW, []), NodeSeen("edge", True, "", NOW, [])]
    observed = Observed(StackSeen(nodes), vpn=VpnSeen("wg-kombify", [home, edge]))
    (link,) = graph_of("cloud-hybrid", observed).edges_of("vpn-link")
    return f"{link.state}: {link.detail}"


def test_mesh_links_are_up_idle_or_down_from_both_ends() -> None:
    home = VpnNodeSeen("home", True, "", True, "H=", [], {"E=": 12})
    edge = VpnNodeSeen("edge", True, "", True, "E=", [], {"H=": 12})
    assert _mesh(home, edge) == "up: last handshake 12 s ago"

    never = VpnNodeSeen("home", True, "", True, "H=", [], {"E=": -1})
    silent = VpnNodeSeen("edge", True, "", True, "E=", [], {"H=": -1})
    assert _mesh(never, silent).startswith("idle: no handshake yet")

    stale = VpnNodeSeen("edge", True, "", True, "E=", [], {"H=": 900})
    old = VpnNodeSeen("home", True, "", True, "H=", [], {"E=": 900})
    assert _mesh(old, stale).startswith("idle: last handshake 900 s ago")

    gone = VpnNodeSeen("edge", True, "", False)
    assert _mesh(home, gone) == "down: no wg-kombify on `edge`"

    stranger = VpnNodeSeen("edge", True, "", True, "E=", [], {})
    assert _mesh(home, stranger) == "down: `edge` does not list `home` as a peer"
