"""cloud-hybrid's WireGuard mesh on KombiSim: a home node behind NAT and a cloud node.

The kombination is written for real machines (a hetzner edge) and rehearsed with
``--simulate``: the edge becomes a ``vps`` node on the simulation's stand-in for the
internet, the home node sits on its LAN and on that internet behind NAT (nothing gets in
that it did not start). Through the real workflow, OpenTofu, SSH and the node agents:

* a service on the home node answers from the cloud node at the home node's mesh address,
  and at none of its other addresses;
* a third node added on re-apply is peered with both (home nodes of one LAN dial each other
  there), addresses stay where they were;
* a node taken out of the kombination is no peer of anyone on the next apply.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh
import pytest

from kombify.sim import labels
from tests.support.deploy_env import KombifyEnv, sim_action
from tests.support.kombinations import kit_defaults_off

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HOME2 = "    - {{name: home2, provider: sim, role: main, resources: {{memory: 384Mi}}}}\n"
TEMPLATE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: cloud-hybrid
  nodes:
    - {{name: home, provider: sim, role: main, resources: {{memory: 384Mi}}}}
    - {{name: edge, provider: hetzner, role: edge, type: cx22, location: fsn1}}
{more}  network:
    vpn: {{enabled: true}}
  healing: {{enabled: false}}
  services:
{disabled}
    web:
      image: kombify-test/httpd:1
      node: home
      ports: [{{container: 80, host: 8080}}]
      healthcheck: {{http: "http://localhost:80/", interval: 1s}}
"""


def _kombination(name: str, *, third: bool = False) -> str:
    disabled = kit_defaults_off(TEMPLATE.replace("{more}", ""))
    more = HOME2 if third else ""
    return TEMPLATE.replace("{more}", more).format(name=name, disabled=disabled)


def _addresses(stack: str, node: str) -> dict[str, str]:
    """The node's IPv4 address on each KombiSim network it is on."""
    from kombify.sim.client import docker_client

    client = docker_client()
    try:
        attrs = client.api.inspect_container(labels.container_name(stack, node))
    finally:
        client.close()
    return {k: v["IPAddress"] for k, v in attrs["NetworkSettings"]["Networks"].items()}


async def _peers(kombify: KombifyEnv, stack: str, node: str) -> dict[str, dict[str, str]]:
    """``wg show wg-kombify dump`` on a node: its peers by public key."""
    out = await kombify.on_node(stack, node, "sudo wg show wg-kombify dump")
    own, *rows = [line.split("\t") for line in out.strip().splitlines()]
    assert len(own) == 4  # private key (hidden from us by nobody: it is root's), public, port
    return {r[0]: {"endpoint": r[2], "allowed": r[3], "keepalive": r[7]} for r in rows}


async def _key(kombify: KombifyEnv, stack: str, node: str) -> str:
    return (await kombify.on_node(stack, node, "sudo wg show wg-kombify public-key")).strip()


async def _curl(kombify: KombifyEnv, stack: str, node: str, url: str) -> tuple[int, str]:
    """Exit status and body of ``curl`` run on ``node`` (2 s to connect)."""
    out = await kombify.on_node(
        stack, node, f'curl -sS --connect-timeout 2 --max-time 4 {url}; echo "~$?"'
    )
    body, _, status = out.rpartition("~")
    return int(status.strip()), body


def _mesh_line(run: dict[str, Any]) -> str:
    step = next(s for s in run["progress"]["steps"] if s["name"] == "network")
    assert step["state"] == "done", step
    return str(step["detail"])


@pytest.fixture(scope="module")
async def deployed(kombify: KombifyEnv) -> tuple[str, dict[str, Any]]:
    name = kombify.new_stack()
    return name, await kombify.deploy(_kombination(name), simulate=True)


async def test_a_home_service_answers_the_cloud_node_only_over_the_mesh(
    kombify: KombifyEnv, deployed: tuple[str, dict[str, Any]]
) -> None:
    stack, run = deployed
    assert run["state"] == "succeeded", run.get("summary")
    assert _mesh_line(run) == "WireGuard mesh 10.66.0.0/24: home 10.66.0.1, edge 10.66.0.2"

    # The edge is an endpoint on the internet; home dials it and keeps the tunnel open.
    edge_online = _addresses(stack, "edge")[labels.internet_network(stack)]
    home_peers = await _peers(kombify, stack, "home")
    edge_key = await _key(kombify, stack, "edge")
    assert home_peers == {
        edge_key: {"endpoint": f"{edge_online}:51820", "allowed": "10.66.0.2/32", "keepalive": "25"}
    }
    edge_peers = await _peers(kombify, stack, "edge")
    home_key = await _key(kombify, stack, "home")
    assert list(edge_peers) == [home_key]
    assert edge_peers[home_key]["allowed"] == "10.66.0.1/32"
    assert edge_peers[home_key]["keepalive"] == "off"

    # Over the mesh the home service answers the cloud node.
    status, body = await _curl(kombify, stack, "edge", "http://10.66.0.1:8080/")
    assert status == 0, body
    assert "kombify-test/httpd works" in body
    # Its other addresses do not: the LAN is not routed from the internet, and home's own
    # address on the internet takes no connection it did not start (NAT).
    home = _addresses(stack, "home")
    others = {labels.lan_network(stack), labels.internet_network(stack)}
    assert set(home) == others
    for network in sorted(others):
        status, body = await _curl(kombify, stack, "edge", f"http://{home[network]}:8080/")
        assert status != 0, f"home answered the edge at {home[network]} ({network}): {body}"


async def _vpn_lines(kombify: KombifyEnv, run: dict[str, Any]) -> list[str]:
    logs = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    return [line["message"] for line in logs["data"] if line["source"] == "vpn"]


async def test_a_reapply_changes_nothing_and_no_private_key_leaves_the_node(
    kombify: KombifyEnv, deployed: tuple[str, dict[str, Any]]
) -> None:
    stack, first = deployed
    assert first["state"] == "succeeded", first.get("summary")
    pid = "pgrep -f 'wireguard-go -f wg-kombify'"
    before = {n: await kombify.on_node(stack, n, pid) for n in ("home", "edge")}

    again = await kombify.deploy(_kombination(stack), simulate=True)

    assert again["state"] == "succeeded", again.get("summary")
    lines = await _vpn_lines(kombify, again)
    assert sorted(lines) == [
        "edge: 10.66.0.2/24 on wg-kombify (wireguard-go), 1 peer(s), endpoint "
        f"{_addresses(stack, 'edge')[labels.internet_network(stack)]}:51820, unchanged",
        "home: 10.66.0.1/24 on wg-kombify (wireguard-go), 1 peer(s), behind NAT, no endpoint, "
        "unchanged",
    ]
    assert {n: await kombify.on_node(stack, n, pid) for n in ("home", "edge")} == before
    # The private keys stay on the nodes: in no log line, run record or worker output.
    told = (
        str(await kombify.call("GET", f"/v1/deployments/{again['id']}/logs"))
        + str(await kombify.call("GET", f"/v1/deployments/{first['id']}/logs"))
        + str(again)
        + kombify.worker_log.read_text(errors="replace")
    )
    for node in ("home", "edge"):
        private = await kombify.on_node(
            stack, node, "sudo cat /var/lib/kombify/agent/vpn/wg-kombify.key"
        )
        mode = await kombify.on_node(
            stack, node, "sudo stat -c %a /var/lib/kombify/agent/vpn/wg-kombify.key"
        )
        assert len(private.strip()) == 44 and mode.strip() == "600"
        assert private.strip() not in told


async def test_the_agent_brings_a_killed_wireguard_go_back(
    kombify: KombifyEnv, deployed: tuple[str, dict[str, Any]]
) -> None:
    stack, first = deployed
    assert first["state"] == "succeeded", first.get("summary")
    peers = await _peers(kombify, stack, "home")
    await kombify.on_node(stack, "home", "sudo pkill -x wireguard-go; true")
    deadline = asyncio.get_running_loop().time() + 30
    while True:  # the agent looks every 5 s; the tunnel must be back with the same peers
        shown = await kombify.on_node(
            stack, "home", "sudo wg show wg-kombify dump 2>/dev/null; true"
        )
        if shown.strip():
            break
        assert asyncio.get_running_loop().time() < deadline, "wg-kombify never came back"
        await asyncio.sleep(0.5)
    assert (await _peers(kombify, stack, "home")).keys() == peers.keys()
    status, body = await _curl(kombify, stack, "edge", "http://10.66.0.1:8080/")
    assert status == 0, body


async def test_a_restarted_home_node_is_back_in_the_mesh_without_a_deploy(
    kombify: KombifyEnv, deployed: tuple[str, dict[str, Any]]
) -> None:
    stack, first = deployed
    assert first["state"] == "succeeded", first.get("summary")
    await sim_action("restart", stack)  # both nodes boot again; their agents start at boot
    deadline = asyncio.get_running_loop().time() + 90
    while True:  # the agent brings the saved tunnel back; home greets the edge at once
        try:
            status, body = await _curl(kombify, stack, "edge", "http://10.66.0.1:8080/")
        except (OSError, asyncssh.Error):  # sshd of a booting node
            status, body = -1, ""
        if status == 0:
            break
        assert asyncio.get_running_loop().time() < deadline, "the mesh never came back"
        await asyncio.sleep(1)
    assert "kombify-test/httpd works" in body


async def test_a_node_added_is_peered_with_all_and_a_removed_one_is_gone_everywhere(
    kombify: KombifyEnv, deployed: tuple[str, dict[str, Any]]
) -> None:
    stack, first = deployed
    assert first["state"] == "succeeded", first.get("summary")

    grown = await kombify.deploy(_kombination(stack, third=True), simulate=True)
    assert grown["state"] == "succeeded", grown.get("summary")
    # Addresses stay; the new node takes the lowest free one.
    assert _mesh_line(grown) == (
        "WireGuard mesh 10.66.0.0/24: home 10.66.0.1, edge 10.66.0.2, home2 10.66.0.3"
    )
    keys = {n: await _key(kombify, stack, n) for n in ("home", "edge", "home2")}
    for node in keys:
        peers = await _peers(kombify, stack, node)
        assert sorted(peers) == sorted(k for n, k in keys.items() if n != node), node
    # Two home nodes of one LAN dial each other there, without keepalive.
    lan = labels.lan_network(stack)
    home_peers = await _peers(kombify, stack, "home")
    assert home_peers[keys["home2"]]["endpoint"] == f"{_addresses(stack, 'home2')[lan]}:51820"
    assert home_peers[keys["home2"]]["keepalive"] == "off"
    status, body = await _curl(kombify, stack, "home2", "http://10.66.0.1:8080/")
    assert status == 0, body

    shrunk = await kombify.deploy(_kombination(stack), simulate=True)
    assert shrunk["state"] == "succeeded", shrunk.get("summary")
    assert _mesh_line(shrunk) == "WireGuard mesh 10.66.0.0/24: home 10.66.0.1, edge 10.66.0.2"
    assert list(await _peers(kombify, stack, "home")) == [keys["edge"]]
    assert list(await _peers(kombify, stack, "edge")) == [keys["home"]]
    status, body = await _curl(kombify, stack, "edge", "http://10.66.0.1:8080/")
    assert status == 0, body


def _has_mesh(stack: str, node: str) -> bool:
    """Whether the node has wg-kombify, asked with the engine (a destroyed stack has no pins)."""
    from kombify.sim.client import docker_client

    client = docker_client()
    try:
        container = client.containers.get(labels.container_name(stack, node))
        code, _ = container.exec_run(["ip", "link", "show", "dev", "wg-kombify"])
    finally:
        client.close()
    return bool(code == 0)


async def test_destroy_takes_the_mesh_off_every_node(
    kombify: KombifyEnv, deployed: tuple[str, dict[str, Any]]
) -> None:
    stack, first = deployed
    assert first["state"] == "succeeded", first.get("summary")
    assert _has_mesh(stack, "home") and _has_mesh(stack, "edge")

    gone = await kombify.destroy(stack)

    assert gone["state"] == "succeeded", gone.get("summary")
    assert not _has_mesh(stack, "home") and not _has_mesh(stack, "edge")


ONE_NODE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: box, provider: sim, resources: {{memory: 384Mi}}}}
{vpn}  healing: {{enabled: false}}
  services:
{disabled}
    web: {{image: "kombify-test/httpd:1"}}
"""


def _one_node(name: str, vpn: str) -> str:
    disabled = kit_defaults_off(ONE_NODE.replace("{vpn}", ""))
    return ONE_NODE.format(name=name, disabled=disabled, vpn=vpn)


async def test_a_mesh_switched_off_is_taken_off_the_nodes(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    link = "ip -br link show dev wg-kombify 2>/dev/null | wc -l"
    on = await kombify.deploy(
        _one_node(stack, "  network: {vpn: {enabled: true, subnet: 10.99.0.0/24}}\n")
    )
    assert on["state"] == "succeeded", on.get("summary")
    assert _mesh_line(on) == "WireGuard mesh 10.99.0.0/24: box 10.99.0.1"
    assert (await kombify.on_node(stack, "box", link)).strip() == "1"

    off = await kombify.deploy(_one_node(stack, ""))
    assert off["state"] == "succeeded", off.get("summary")
    assert _mesh_line(off) == "WireGuard mesh removed"
    assert (await kombify.on_node(stack, "box", link)).strip() == "0"
    assert await _vpn_lines(kombify, off) == ["box: wg-kombify removed (the stack has no VPN)"]

    again = await kombify.deploy(_one_node(stack, ""))
    step = next(s for s in again["progress"]["steps"] if s["name"] == "network")
    assert (step["state"], step["detail"]) == ("skipped", "nothing to join")
