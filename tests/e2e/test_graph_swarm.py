"""A swarm kit's diagram on KombiSim: ha-homelab's services are drawn where their tasks run."""

from __future__ import annotations

import pytest

from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import kit_defaults_off

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TEMPLATE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: ha-homelab
  healing: {{enabled: false}}
  nodes:
    - {{name: m1, provider: sim, role: manager}}
    - {{name: m2, provider: sim, role: manager}}
    - {{name: m3, provider: sim, role: manager}}
  services:
{disabled}
"""
WEB = """
    web:
      image: kombify-test/httpd:1
      replicas: 2
      ports: [{container: 80, host: 8080}]
      healthcheck: {http: "http://localhost:80/", interval: 1s, retries: 2}"""


async def test_swarm_tasks_are_placements_on_the_nodes_running_them(kombify: KombifyEnv) -> None:
    name = kombify.new_stack()
    disabled = kit_defaults_off(TEMPLATE.replace("{disabled}", "    web: {{image: x}}\n{disabled}"))
    run = await kombify.deploy(TEMPLATE.format(name=name, disabled=disabled + WEB))
    assert run["state"] == "succeeded", run.get("summary")

    graph = await kombify.call("GET", f"/v1/stacks/{name}/graph")

    assert graph["platform"] == "swarm" and graph["live"] is True
    found = {e["id"]: e for e in graph["elements"]}
    assert {found[f"node:{n}"]["state"] for n in ("m1", "m2", "m3")} == {"running"}
    web = found["service:web"]
    assert web["state"] == "running" and web["attrs"]["mode"] == "replicated"
    assert web["attrs"]["running"] == 2
    placements = [e for e in graph["edges"] if e["source"] == "service:web"]
    placements = [e for e in placements if e["kind"] == "placement"]
    assert sorted(e["target"] for e in placements) == ["node:m1", "node:m2", "node:m3"]
    # Each task is on the node the swarm put it on: two nodes run one, the third may run one.
    assert sum(e["running"] for e in placements) == 2
    assert sorted(e["state"] for e in placements) in (
        ["idle", "running", "running"],
        ["idle", "idle", "running"],  # both tasks on one node
    )
    assert found["network:kombify-overlay"]["state"] == "running"
