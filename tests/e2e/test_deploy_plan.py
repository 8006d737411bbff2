"""What OpenTofu plans on a re-deploy: service changes and a moved SSH port replace nothing.

A service's image or env reaches the node through its agent (the rollout step); the node's
OpenTofu resource (its bootstrap) stays as it is, and so it does when the simulated node
restarts and its sshd comes back on another published port.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from kombify.sim import connection_info
from kombify.sim.client import docker_client
from kombify.sim.engine import SimEngine
from kombify.unifier.changes import SERVICES_LINE
from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

UNCHANGED = {"add": 0, "change": 0, "destroy": 0}


def _node_resource_id(kombify: KombifyEnv, stack: str) -> str:
    state = json.loads(
        (kombify.home / "stacks" / "local" / stack / "tofu" / "terraform.tfstate").read_text()
    )
    [resource] = [r for r in state["resources"] if r["name"] == "node_box"]
    return str(resource["instances"][0]["attributes"]["id"])


def _tofu_lines(logs: dict[str, Any]) -> list[str]:
    return [line["message"] for line in logs["data"] if line["source"] == "tofu"]


async def _restart(stack: str) -> None:
    client = docker_client()
    try:
        engine = SimEngine(client)
        await asyncio.to_thread(engine.stop, stack)
        await asyncio.to_thread(engine.start, stack)
    finally:
        client.close()
    await asyncio.sleep(3)  # sshd and the node's dockerd come back


async def test_service_changes_and_a_restarted_node_replace_nothing(
    kombify: KombifyEnv,
) -> None:
    stack = kombify.new_stack()
    first = await kombify.deploy(one_node(stack))
    assert first["state"] == "succeeded", first.get("summary")
    assert first["progress"]["plan_lines"] == ["node box: create", SERVICES_LINE]
    bootstrapped = _node_resource_id(kombify, stack)

    # One service's env changes: the agent rolls it out, OpenTofu plans nothing and the
    # bootstrap does not run again. (The unifier and OpenTofu tests change an image too.)
    changed = one_node(stack, greeting="bonjour")
    run = await kombify.deploy(changed)
    assert run["state"] == "succeeded", run["summary"]["error"]
    assert run["progress"]["plan"] == UNCHANGED
    assert run["progress"]["plan_lines"] == ["node box: no change", SERVICES_LINE]
    assert run["progress"]["nodes"][0]["services"] == {"notes": "unchanged", "web": "updated"}
    (web,) = (await kombify.containers(stack, "box"))["web"]
    env = await kombify.on_node(
        stack, "box", f"sudo docker inspect --format '{{{{.Config.Env}}}}' {web}"
    )
    assert "GREETING=bonjour" in env
    assert _node_resource_id(kombify, stack) == bootstrapped
    logs = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    tofu = _tofu_lines(logs)
    assert "Plan: 0 to add, 0 to change, 0 to destroy." in tofu
    assert not [line for line in tofu if line.startswith("{") or "Creating..." in line]

    # The node restarts: its sshd is published on another port; that is no reason to
    # bootstrap it again.
    port_before = connection_info(stack)["box"].port
    await _restart(stack)
    assert connection_info(stack)["box"].port != port_before
    again = await kombify.deploy(changed)
    assert again["state"] == "succeeded", again.get("summary")
    assert again["progress"]["plan"] == UNCHANGED
    assert again["progress"]["plan_lines"] == ["node box: no change", SERVICES_LINE]
    assert _node_resource_id(kombify, stack) == bootstrapped

    assert (await kombify.destroy(stack))["state"] == "succeeded"
