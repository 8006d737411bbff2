"""``GET /v1/stacks/{name}/graph`` on KombiSim: the states are what the node reports now."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.deploy_env import KombifyEnv, sim_action
from tests.support.kombinations import NO_HEALING, one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
async def stack(kombify: KombifyEnv) -> str:
    name = kombify.new_stack()
    run = await kombify.deploy(one_node(name, healing=NO_HEALING))
    assert run["state"] == "succeeded", run.get("summary")
    return name


async def _graph(kombify: KombifyEnv, stack: str, **params: str) -> dict[str, Any]:
    graph: dict[str, Any] = await kombify.call("GET", f"/v1/stacks/{stack}/graph", params=params)
    return graph


def _by_id(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in graph["elements"] + graph["edges"]}


async def test_a_deployed_stack_shows_running_services(kombify: KombifyEnv, stack: str) -> None:
    graph = await _graph(kombify, stack)

    assert graph["live"] is True and graph["source"] == "deployed" and graph["error"] is None
    found = _by_id(graph)
    assert found["node:box"]["state"] == "running"
    assert found["service:web"]["state"] == "healthy"  # its health check passes, asked now
    placement = found["placement:service:web->node:box"]
    assert (placement["replicas"], placement["running"], placement["state"]) == (1, 1, "healthy")
    assert found["service:notes"]["state"] == "healthy"

    unasked = _by_id(await _graph(kombify, stack, live="false"))
    assert unasked["service:web"]["state"] == "unknown"


async def test_a_killed_container_shows_as_stopped(kombify: KombifyEnv, stack: str) -> None:
    (web_id,) = (await kombify.containers(stack, "box"))["web"]
    await kombify.on_node(stack, "box", f"sudo docker kill {web_id}")

    found = _by_id(await _graph(kombify, stack))

    web = found["service:web"]
    assert web["state"] == "stopped" and "exited" in web["detail"]
    assert found["placement:service:web->node:box"]["running"] == 0
    assert found["service:notes"]["state"] == "healthy"  # the other one still runs
    response = await kombify.http.get(f"/v1/stacks/{stack}/graph", params={"format": "mermaid"})
    assert response.status_code == 200
    (web_line,) = [line for line in response.text.splitlines() if '("web<br>' in line]
    assert web_line.endswith('<br>stopped")')


async def test_a_stopped_node_is_unreachable_with_the_reason(
    kombify: KombifyEnv, stack: str
) -> None:
    await sim_action("stop", stack)

    found = _by_id(await _graph(kombify, stack))

    node = found["node:box"]
    assert node["state"] == "unreachable" and "not running" in node["detail"]
    assert found["service:web"]["state"] == "unknown"
