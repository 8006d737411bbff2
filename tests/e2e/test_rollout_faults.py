"""Faults on a node during and after a rollout: its agent comes back, and so does the old revision.

The faults are real: the agent process is SIGKILLed on the node, the simulated node is
stopped in the middle of a rollout and started again later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import asyncssh
import httpx
import pytest

from kombify.sim.client import docker_client
from kombify.sim.engine import SimEngine
from tests.support.deploy_env import KombifyEnv, published
from tests.support.kombinations import NO_HEALING, one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# A revision whose health check keeps it in the health gate for a minute: long enough to stop
# the node while the old container is parked and the new one is being checked.
SLOW = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: box, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
  healing: {{enabled: false}}
  services:
    reverse-proxy: {{enabled: false}}
    web:
      image: kombify-test/httpd:1
      ports: [{{container: 80, host: 8080}}]
      env: {{GREETING: "new"}}
      healthcheck: {{http: "http://localhost:80/not-yet", interval: 1s, start_period: 60s}}
"""

# A revision that serves only 15 s after it starts: healthy, once the node let it run so long.
LATE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: box, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
  healing: {{enabled: false}}
  services:
    reverse-proxy: {{enabled: false}}
    web:
      image: kombify-test/httpd:1
      command: ["/bin/busybox", "sh", "-c", "sleep 15; exec /bin/busybox httpd -f -p 80 -h /www"]
      ports: [{{container: 80, host: 8080}}]
      env: {{GREETING: "late"}}
      healthcheck: {{http: "http://localhost:80/", interval: 1s, start_period: 60s}}
"""


def _sim(action: str, stack: str) -> None:
    client = docker_client()
    try:
        getattr(SimEngine(client), action)(stack)
    finally:
        client.close()


async def _node_status(kombify: KombifyEnv, stack: str) -> dict[str, Any]:
    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    (node,) = status["nodes"]
    return dict(node)


async def _web(kombify: KombifyEnv, stack: str) -> list[tuple[str, str, str]]:
    """(id, name, state) of each container of the `web` service on the node."""
    out = await kombify.on_node(
        stack,
        "box",
        "sudo docker ps -a --no-trunc --filter label=io.kombify.service=web "
        "--format '{{.ID}} {{.Names}} {{.State}}'",
    )
    found = []
    for line in out.splitlines():
        if line.strip():
            cid, name, state = line.split()
            found.append((cid, name, state))
    return sorted(found)


@pytest.fixture
def short_node_wait(kombify: KombifyEnv) -> Iterator[int]:
    """Deploys started meanwhile wait 20 s (not minutes) for a node that went away."""
    kombify.settings.node_wait_seconds = 20
    yield 20
    kombify.settings.node_wait_seconds = 0


# The agent's pid once it runs (its start script writes the file, then execs the agent).
_AGENT_PID = (
    "pid=$(cat /run/kombify-agent.pid 2>/dev/null) && "
    "grep -qa kombify.agent /proc/$pid/cmdline 2>/dev/null && echo $pid; true"
)


async def _wait_parked(kombify: KombifyEnv, stack: str, old_id: str) -> None:
    """Until the old container is stopped and parked beside the new one being checked."""
    deadline = time.monotonic() + 120
    web: list[tuple[str, str, str]] = []
    while time.monotonic() < deadline:
        web = await _web(kombify, stack)
        if any(cid == old_id and state == "exited" for cid, _, state in web) and len(web) == 2:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the old container was never parked: {web}")


async def test_a_killed_agent_answers_again_within_seconds(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    run = await kombify.deploy(one_node(stack, notes=False, healing=NO_HEALING))
    assert run["state"] == "succeeded", run.get("summary")
    pid = (await kombify.on_node(stack, "box", "cat /run/kombify-agent.pid")).strip()

    await kombify.on_node(stack, "box", f"sudo kill -9 {pid}")
    killed = time.monotonic()
    # Watched on the node itself: a status call waits for an agent that does not answer.
    # Bounds are generous (the supervisor restarts within a second or two when idle): they
    # must hold on a loaded CI machine too, and only say "it comes back by itself".
    again = pid
    while again in ("", pid) and time.monotonic() - killed < 60:
        await asyncio.sleep(0.2)
        again = (await kombify.on_node(stack, "box", _AGENT_PID)).strip()
    assert again not in ("", pid), f"no new agent after {time.monotonic() - killed:.1f}s"
    # The new process answers once it serves TLS; until then status names it as not answering.
    node = await _node_status(kombify, stack)
    while not node["answered"] and time.monotonic() - killed < 90:
        await asyncio.sleep(1)
        node = await _node_status(kombify, stack)
    assert node["answered"] is True, node
    assert node["services"]["web"]["state"] == "running"


async def test_node_stopped_mid_rollout_serves_the_old_revision_once_back(
    kombify: KombifyEnv, short_node_wait: int
) -> None:
    stack = kombify.new_stack()
    first = await kombify.deploy(one_node(stack, greeting="old", notes=False, healing=NO_HEALING))
    assert first["state"] == "succeeded", first.get("summary")
    ((old_id, old_name, _),) = await _web(kombify, stack)

    run = await kombify.start(SLOW.format(name=stack))
    await _wait_parked(kombify, stack, old_id)
    await asyncio.to_thread(_sim, "stop", stack)

    final = await kombify.wait(run, timeout=240)

    assert final["state"] == "failed"
    (node,) = final["progress"]["nodes"]
    assert node["state"] == "needs-repair", node
    assert (
        f"node `box` needs repair: unreachable for {short_node_wait}s"
        in (final["summary"]["error"])
    )

    # Back up, with no apply: the node's init starts the agent, which undoes the replacement.
    await asyncio.to_thread(_sim, "start", stack)
    # Generous: the node boots sshd and dockerd, then the agent waits for the engine.
    deadline = time.monotonic() + 180
    web: list[tuple[str, str, str]] = []
    unreachable: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            web, unreachable = await _web(kombify, stack), None
        except (OSError, asyncssh.Error) as exc:  # sshd is not up yet
            web, unreachable = [], exc
        if web == [(old_id, old_name, "running")]:
            break
        await asyncio.sleep(1)
    assert web == [(old_id, old_name, "running")], f"node unreachable: {unreachable!r}"
    env = await kombify.on_node(
        stack, "box", f"sudo docker inspect --format '{{{{.Config.Env}}}}' {old_id}"
    )
    assert "GREETING=old" in env
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        served = await http.get(f"http://127.0.0.1:{published(stack, 'box', 8080)}/")
    assert served.status_code == 200

    # The next apply converges the node.
    again = await kombify.deploy(one_node(stack, greeting="newer", notes=False, healing=NO_HEALING))
    assert again["state"] == "succeeded", again.get("summary")
    ((new_id, _, state),) = await _web(kombify, stack)
    assert new_id != old_id and state == "running"


async def test_node_back_within_the_wait_the_run_retries_and_succeeds(
    kombify: KombifyEnv,
) -> None:
    kombify.settings.node_wait_seconds = 150
    try:
        stack = kombify.new_stack()
        first = await kombify.deploy(
            one_node(stack, greeting="old", notes=False, healing=NO_HEALING)
        )
        assert first["state"] == "succeeded", first.get("summary")
        ((old_id, _, _),) = await _web(kombify, stack)

        run = await kombify.start(LATE.format(name=stack))
        await _wait_parked(kombify, stack, old_id)
        await asyncio.to_thread(_sim, "stop", stack)
        await asyncio.sleep(3)
        await asyncio.to_thread(_sim, "start", stack)  # its SSH port is a new one now
        final = await kombify.wait(run, timeout=300)
    finally:
        kombify.settings.node_wait_seconds = 0

    assert final["state"] == "succeeded", final.get("summary")
    ((new_id, _, state),) = await _web(kombify, stack)
    assert new_id != old_id and state == "running"
    env = await kombify.on_node(
        stack, "box", f"sudo docker inspect --format '{{{{.Config.Env}}}}' {new_id}"
    )
    assert "GREETING=late" in env
