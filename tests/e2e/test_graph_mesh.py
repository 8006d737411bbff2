"""The VPN links of a stack diagram, asked from the nodes' WireGuard interfaces on KombiSim.

cloud-hybrid rehearsed with ``--simulate``: a home node behind NAT and a cloud node. The home
node keeps its NAT mapping open with a keepalive toward the edge, so the link shakes hands by
itself; taking the interface away on one end shows the link down.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import kit_defaults_off

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TEMPLATE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: cloud-hybrid
  nodes:
    - {{name: home, provider: sim, role: main, resources: {{memory: 384Mi}}}}
    - {{name: edge, provider: hetzner, role: edge, type: cx22, location: fsn1}}
  network:
    vpn: {{enabled: true}}
  healing: {{enabled: false}}
  services:
{disabled}
    web:
      image: kombify-test/httpd:1
      node: home
      ports: [{{container: 80, host: 8080}}]
"""


@pytest.fixture(scope="module")
async def stack(kombify: KombifyEnv) -> str:
    name = kombify.new_stack()
    source = TEMPLATE.format(name=name, disabled=kit_defaults_off(TEMPLATE))
    run = await kombify.deploy(source, simulate=True)
    assert run["state"] == "succeeded", run.get("summary")
    return name


async def _link(kombify: KombifyEnv, stack: str) -> dict[str, Any]:
    graph = await kombify.call("GET", f"/v1/stacks/{stack}/graph")
    assert graph["vpn"] == {
        "provider": "wireguard",
        "subnet": "10.66.0.0/24",
        "interface": "wg-kombify",
    }
    (link,) = [e for e in graph["edges"] if e["kind"] == "vpn-link"]
    assert link["id"] == "vpn-link:home--edge"
    return dict(link)


async def test_the_mesh_link_is_up_after_a_handshake(kombify: KombifyEnv, stack: str) -> None:
    # Make traffic over the mesh, so both ends have shaken hands whatever the keepalive did.
    await kombify.on_node(stack, "edge", "ping -c 1 -W 5 10.66.0.1 >/dev/null || true")
    for _ in range(20):
        link = await _link(kombify, stack)
        if link["state"] == "up":
            break
        await asyncio.sleep(1)
    assert link["state"] == "up" and link["detail"].startswith("last handshake")


async def test_a_missing_interface_shows_the_link_down(kombify: KombifyEnv, stack: str) -> None:
    # The agent brings a vanished interface back within seconds: stop it first.
    await kombify.on_node(
        stack, "edge", "sudo pkill -STOP -f 'kombify[.]agent' ; sudo ip link del wg-kombify"
    )
    try:
        link = await _link(kombify, stack)
    finally:
        await kombify.on_node(stack, "edge", "sudo pkill -CONT -f 'kombify[.]agent'")

    assert link["state"] == "down" and link["detail"] == "no wg-kombify on `edge`"
