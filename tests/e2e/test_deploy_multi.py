"""A three-node homelab, and rehearsing a file written for real machines with --simulate."""

from __future__ import annotations

import pytest

from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import kit_defaults_off

pytestmark = [pytest.mark.docker, pytest.mark.slow]

THREE_NODES = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: modern-homelab
  nodes:
    - {{name: main, provider: sim, role: main}}
    - {{name: worker-a, provider: sim, role: worker}}
    - {{name: worker-b, provider: sim, role: worker}}
  services:
{disabled}
    notes:
      image: kombify-test/httpd:1
      node: worker-a
      ports: [{{container: 80, host: 8081}}]
      healthcheck: {{http: "http://localhost:80/", interval: 1s}}
    wiki:
      image: kombify-test/httpd:1
      node: worker-b
      env: {{WIKI: "yes"}}
      ports: [{{container: 80, host: 8082}}]
"""

REAL_MACHINE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - name: nas
      provider: local
      address: 192.0.2.10
      ssh: {{user: admin, identityFile: /nonexistent/key}}
  services:
    reverse-proxy: {{enabled: false}}
    web:
      image: kombify-test/httpd:1
      ports: [{{container: 80, host: 8080}}]
"""


async def test_three_nodes_each_run_their_services(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    source = THREE_NODES.format(name=stack, disabled=kit_defaults_off(THREE_NODES))

    run = await kombify.deploy(source)

    assert run["state"] == "succeeded", run
    nodes = {n["name"]: n for n in run["progress"]["nodes"]}
    assert set(nodes) == {"main", "worker-a", "worker-b"}
    assert nodes["worker-a"]["services"] == {"notes": "created"}
    assert nodes["worker-b"]["services"] == {"wiki": "created"}
    page = await kombify.on_node(stack, "worker-a", "curl -s http://127.0.0.1:8081/")
    assert "kombify-test/httpd works" in page
    assert "WIKI=yes" in await kombify.on_node(
        stack, "worker-b", "sudo docker inspect --format '{{.Config.Env}}' $(sudo docker ps -q)"
    )
    assert (await kombify.destroy(stack))["state"] == "succeeded"
    for node in nodes:
        assert await kombify.containers(stack, node) == {}


async def test_simulate_rehearses_real_machines_on_simulated_ones(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()

    run = await kombify.deploy(REAL_MACHINE.format(name=stack), simulate=True)

    assert run["state"] == "succeeded", run
    (node,) = run["progress"]["nodes"]
    assert node["name"] == "nas" and node["provider"] == "sim"
    assert await kombify.on_node(stack, "nas", "hostname") == "nas\n"
    assert set(await kombify.containers(stack, "nas")) == {"web"}
