"""``kombify status`` tells what runs on the nodes now, never what the last run wrote down.

Each fault is made on the node behind kombify's back (a removed container, a killed one, a
stopped node) and status must report it, while the last run still says "succeeded".
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.deploy_env import KombifyEnv, published, sim_action
from tests.support.kombinations import NO_HEALING, one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
async def stack(kombify: KombifyEnv) -> str:
    name = kombify.new_stack()
    run = await kombify.deploy(one_node(name, healing=NO_HEALING))
    assert run["state"] == "succeeded", run.get("summary")
    return name


async def _status(kombify: KombifyEnv, stack: str) -> dict[str, Any]:
    status: dict[str, Any] = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    return status


async def test_status_is_asked_from_the_node(kombify: KombifyEnv, stack: str) -> None:
    status = await _status(kombify, stack)

    assert status["observed"] is True and status["deployed_revision"] == 1
    (node,) = status["nodes"]
    assert node["answered"] is True and node["observed_at"]
    web = node["services"]["web"]
    assert web["state"] == "running" and web["health"] == "healthy" and web["healthy"] is True
    (container,) = web["details"]
    assert container["state"] == "running" and container["since"]
    assert container["image"] == "kombify-test/httpd:1"
    # Where the owner reaches it: the node's port 8080, published on this machine's loopback.
    assert web["endpoints"] == [f"127.0.0.1:{published(stack, 'box', 8080)} -> 80/tcp"]


async def test_a_removed_container_is_reported_missing(kombify: KombifyEnv, stack: str) -> None:
    (notes_id,) = (await kombify.containers(stack, "box"))["notes"]
    await kombify.on_node(stack, "box", f"sudo docker rm -f {notes_id}")

    status = await _status(kombify, stack)

    notes = status["nodes"][0]["services"]["notes"]
    assert notes["state"] == "missing" and notes["healthy"] is False and notes["containers"] == []
    assert status["last_deployment"]["state"] == "succeeded"  # the record alone would lie


async def test_a_killed_container_is_reported_exited(kombify: KombifyEnv, stack: str) -> None:
    (web_id,) = (await kombify.containers(stack, "box"))["web"]
    await kombify.on_node(stack, "box", f"sudo docker kill {web_id}")

    status = await _status(kombify, stack)

    web = status["nodes"][0]["services"]["web"]
    assert web["state"] == "exited" and web["healthy"] is False
    assert web["containers"][0].startswith(web_id)


async def test_a_stopped_node_is_named_with_the_reason(kombify: KombifyEnv, stack: str) -> None:
    await sim_action("stop", stack)

    status = await _status(kombify, stack)

    (node,) = status["nodes"]
    assert node["answered"] is False and "not running" in node["error"]
    assert node["services"]["web"]["state"] == "unknown"
    assert node["services"]["web"]["desired_replicas"] == 1


async def _answered(kombify: KombifyEnv, stack: str) -> dict[str, Any]:
    """The node's status once it answers again (a generous bound: CI machines are loaded)."""
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        (node,) = (await _status(kombify, stack))["nodes"]
        if node["answered"] or asyncio.get_running_loop().time() > deadline:
            assert node["answered"] is True, node.get("error")
            return dict(node)
        await asyncio.sleep(0.5)


async def test_after_a_node_restart_the_agent_answers_and_destroy_removes_all(
    kombify: KombifyEnv, stack: str
) -> None:
    # No apply in between: the node's init starts the agent again each time.
    await sim_action("start", stack)
    node = await _answered(kombify, stack)
    (web_id,) = (await kombify.containers(stack, "box"))["web"]
    assert node["services"]["web"]["state"] == "exited"  # killed above; Docker leaves it so
    await kombify.on_node(stack, "box", f"sudo docker start {web_id}")

    await sim_action("restart", stack)  # `kombify sim restart`: a running service comes back too
    node = await _answered(kombify, stack)

    web = node["services"]["web"]
    assert web["state"] == "running" and web["containers"][0].startswith(web_id)

    run = await kombify.destroy(stack)

    assert run["state"] == "succeeded", run.get("summary")
    assert await kombify.containers(stack, "box") == {}
    left = await kombify.on_node(
        stack, "box", "sudo ls -A /var/lib/kombify /etc/kombify 2>/dev/null; true"
    )
    assert "bundles" not in left and "agent" not in left
    # Removed for good: nothing supervises an agent back, even after another restart.
    assert not (await kombify.on_node(stack, "box", "pgrep -f kombify[.]agent; true")).strip()
