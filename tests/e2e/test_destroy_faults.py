"""Destroy says success only when what it removes is gone; a node it cannot reach fails it.

A stopped simulated node still holds its containers: destroy refuses, names the node and the
commands that help, and changes nothing. With ``force`` the node is left and listed as
skipped, and what runs on it is still there once it starts again.
"""

from __future__ import annotations

import asyncio

import pytest

from kombify.sim.client import docker_client
from kombify.sim.engine import SimEngine
from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import NO_HEALING, one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _sim(action: str, name: str) -> None:
    client = docker_client()
    try:
        getattr(SimEngine(client), action)(name)
    finally:
        client.close()


async def test_a_stopped_node_fails_destroy_unless_forced(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    run = await kombify.deploy(one_node(stack, notes=False, healing=NO_HEALING))
    assert run["state"] == "succeeded", run.get("summary")
    before = await kombify.containers(stack, "box")
    await asyncio.to_thread(_sim, "stop", stack)

    refused = await kombify.destroy(stack)

    assert refused["state"] == "failed"
    error = refused["summary"]["error"]
    assert "`box`" in error and "stopped" in error
    assert f"kombify sim start {stack}" in error and f"kombify destroy {stack} --force" in error

    forced = await kombify.wait(
        await kombify.call("POST", f"/v1/stacks/{stack}/destroy", json={"force": True})
    )

    assert forced["state"] == "succeeded", forced.get("summary")
    (node,) = forced["progress"]["nodes"]
    assert node == {**node, "name": "box", "state": "skipped"}
    services = next(s for s in forced["progress"]["steps"] if s["name"] == "services")
    assert "skipped box: the simulated node is stopped" in services["detail"]
    # Left, as it said: the node's containers are still there when it runs again.
    await asyncio.to_thread(_sim, "start", stack)
    await asyncio.sleep(3)
    assert await kombify.containers(stack, "box") == before
