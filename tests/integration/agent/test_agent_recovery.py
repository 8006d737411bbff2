"""An agent killed in the middle of a replacement undoes it when it starts again.

The agent runs as a real process against the real engine and is SIGKILLed while the new
revision's health check runs (the old container stopped and parked under another name), as a
node that is stopped or loses power mid-rollout would. The next agent on the same state
directory must bring the previous revision back by itself, before anyone applies anything.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from kombify.agent.client import AgentClient
from kombify.agent.proto import pb
from tests.integration.agent.test_agent_converge import get, web
from tests.support.agent import Pki, agent_subprocess
from tests.support.ports import free_port

pytestmark = pytest.mark.docker


@pytest.fixture
def node(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"node-{uuid.uuid4().hex[:8]}.test.kombify"
    yield name
    for container in docker_client.containers.list(
        all=True, filters={"label": f"io.kombify.node={name}"}
    ):
        container.remove(force=True)


def _states(client: docker.DockerClient, node: str) -> dict[str, tuple[str, str]]:
    """Container id -> (name, state) of the node's containers."""
    found = client.containers.list(all=True, filters={"label": f"io.kombify.node={node}"})
    return {c.id: (c.name, c.status) for c in found}


async def test_killed_mid_replacement_the_next_agent_restores_the_old_revision(
    pki: Pki, tmp_path: Path, node: str, test_image: str, docker_client: docker.DockerClient
) -> None:
    agent_port, web_port = free_port(), free_port()
    old = pb.Manifest(revision="old", services=[web(test_image, web_port, "old")])
    # Never healthy within the minute the test gives it: the agent is killed meanwhile.
    slow = web(test_image, web_port, "new", command="sleep 600")
    slow.healthcheck.start_timeout_ms = 60_000

    async with agent_subprocess(pki, tmp_path, node=node, port=agent_port) as first:
        address = f"127.0.0.1:{agent_port}"
        async with AgentClient.with_cert(address, node, pki.control_plane, timeout=20) as client:
            (old_id,) = (await client.apply(old)).services[0].container_ids
            stream = client.apply_services(pb.Manifest(revision="new", services=[slow]))
            async for item in stream:
                if item.kind == pb.ApplyEvent.HEALTH_CHECKING:
                    break
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
            await stream.aclose()

    # What the dead agent left: the old revision stopped and parked, the new one in its place.
    left = _states(docker_client, node)
    assert left[old_id][1] == "exited" and ".old-" in left[old_id][0]
    assert len(left) == 2
    assert (tmp_path / "state" / "rollout.json").exists()

    async with agent_subprocess(pki, tmp_path, node=node, port=agent_port):
        for _ in range(100):
            now = _states(docker_client, node)
            if list(now) == [old_id] and now[old_id][1] == "running":
                break
            await asyncio.sleep(0.1)
        assert now == {old_id: (f"kt-{node.split('.')[0]}-web-0", "running")}
        assert get(web_port) == "old"
        assert not (tmp_path / "state" / "rollout.json").exists()
        async with AgentClient.with_cert(address, node, pki.control_plane, timeout=20) as client:
            again = await client.apply(old)
        assert [o.outcome for o in again.services] == [pb.OUTCOME_UNCHANGED]
        assert list(again.services[0].container_ids) == [old_id]
