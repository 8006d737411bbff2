"""A stack's simulated nodes follow its file on every apply, whoever made them.

A service added later gets its host port published on loopback (shown by status) while the
node keeps its disks and its pinned host key; a no-change apply touches no node; a memory
change applies in place; a simulation left keyless by a wiped ``KOMBIFY_HOME`` is re-keyed;
and a stack rehearsed with ``--simulate`` is destroyed on its simulated nodes.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import httpx
import pytest

from kombify.settings import get_settings
from kombify.sim import create_simulation
from kombify.sim.client import docker_client
from kombify.sim.labels import container_name
from kombify.sim.models import NodeSpec, SimulationSpec
from tests.support.deploy_env import KombifyEnv, published
from tests.support.kombinations import one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLOUD_NODE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: edge, provider: hetzner, role: main, type: cx22, location: fsn1}}
  services:
    reverse-proxy: {{enabled: false}}
    web:
      image: kombify-test/httpd:1
      ports: [{{container: 80, host: 8080}}]
"""


def _node(stack: str, node: str) -> dict[str, Any]:
    client = docker_client()
    try:
        attrs: dict[str, Any] = client.api.inspect_container(container_name(stack, node))
    finally:
        client.close()
    return attrs


async def _answers(port: int) -> bool:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/", timeout=5)).status_code == 200


async def _log(kombify: KombifyEnv, run: dict[str, Any], source: str) -> list[str]:
    logs = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    return [line["message"] for line in logs["data"] if line["source"] == source]


async def test_a_service_added_later_is_published_and_the_node_keeps_its_disks(
    kombify: KombifyEnv,
) -> None:
    stack = kombify.new_stack()
    first = await kombify.deploy(one_node(stack, notes=False))
    assert first["state"] == "succeeded", first
    pinned = kombify.pinned_key(stack, "box")
    await kombify.on_node(stack, "box", "echo kept | sudo tee /var/lib/kombify/marker")
    web = published(stack, "box", 8080)
    before = _node(stack, "box")

    # Unchanged: no node is touched (same container, not restarted).
    again = await kombify.deploy(one_node(stack, notes=False))
    assert again["state"] == "succeeded", again
    assert await _log(kombify, again, "kombisim") == []
    same = _node(stack, "box")
    assert (same["Id"], same["State"]["StartedAt"]) == (before["Id"], before["State"]["StartedAt"])

    # `notes` (host port 8081) is added: the node is re-created to publish it.
    more = await kombify.deploy(one_node(stack, notes=True))
    assert more["state"] == "succeeded", more
    assert await _log(kombify, more, "kombisim") == [
        "node `box` re-created to publish ports 8080, 8081 (was 8080) "
        "(its disks and SSH host key are kept)"
    ]
    assert _node(stack, "box")["Id"] != before["Id"]
    notes = published(stack, "box", 8081)
    assert await _answers(notes) and published(stack, "box", 8080) == web
    assert await _answers(web)
    assert kombify.pinned_key(stack, "box") == pinned  # nothing to re-pin
    assert await kombify.on_node(stack, "box", "cat /var/lib/kombify/marker") == "kept\n"
    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    services = status["nodes"][0]["services"]
    assert services["notes"]["endpoints"] == [f"127.0.0.1:{notes} -> 80/tcp"]

    # Memory: changed in place, the node keeps running.
    started = _node(stack, "box")["State"]["StartedAt"]
    source = one_node(stack, notes=True).replace("memory: 512Mi", "memory: 768Mi")
    bigger = await kombify.deploy(source)
    assert bigger["state"] == "succeeded", bigger
    assert await _log(kombify, bigger, "kombisim") == [
        "node `box`: memory 512 MiB -> 768 MiB (changed in place)"
    ]
    attrs = _node(stack, "box")
    assert attrs["HostConfig"]["Memory"] == 768 * 1024 * 1024
    assert attrs["State"]["StartedAt"] == started
    assert await _answers(notes)


async def test_a_simulation_whose_key_is_gone_is_rekeyed(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    # Made by another KOMBIFY_HOME (this test process's), which is then wiped.
    other_home = get_settings().home
    node = NodeSpec(name="box", group="lan", role="main", ports=[8080, 8081])
    spec = SimulationSpec(name=stack, nodes=[node])
    await asyncio.to_thread(create_simulation, stack, spec, timeout=120)
    shutil.rmtree(other_home / "sims" / stack)
    await kombify.store(one_node(stack))

    refused = await kombify.destroy(stack)  # destroy reaches nodes as they are: no re-key
    assert refused["state"] == "failed", refused
    assert (
        f"simulation `{stack}` was made by another KOMBIFY_HOME" in refused["progress"]["error"]
    ), refused["progress"]["error"]
    assert "re-key it with `kombify apply <the stack's kombination file>`" in (
        refused["progress"]["error"]
    )

    run = await kombify.deploy(one_node(stack))

    assert run["state"] == "succeeded", run["progress"]["error"]
    (line,) = await _log(kombify, run, "kombisim")
    assert line.startswith("node `box` re-created to accept this KOMBIFY_HOME's key"), line
    assert await _answers(published(stack, "box", 8080))


async def test_a_simulated_rehearsal_of_a_cloud_node_is_destroyed(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    run = await kombify.deploy(CLOUD_NODE.format(name=stack), simulate=True)
    assert run["state"] == "succeeded", run
    assert set(await kombify.containers(stack, "edge")) == {"web"}

    gone = await kombify.destroy(stack)

    assert gone["state"] == "succeeded", gone
    assert gone["revision"] == run["revision"]
    assert gone["summary"]["options"]["simulate"] is True
    assert await kombify.containers(stack, "edge") == {}
