"""RestartService, StreamLogs, PutFile and LoadImage against the real Docker engine."""

from __future__ import annotations

import asyncio
import hashlib
import stat
import uuid

import docker
import pytest

from kombify.agent.proto import pb
from kombify.errors import AgentError
from tests.support.agent import RunningAgent

TICKER = 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'


def ticker(image: str) -> pb.ServiceSpec:
    return pb.ServiceSpec(
        name="ticker",
        image=image,
        command=["/bin/sh", "-c", TICKER],
        stop_grace_seconds=1,
    )


@pytest.mark.docker
async def test_restart_service_keeps_the_container(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    async with agent.client() as client:
        applied = await client.apply(pb.Manifest(services=[ticker(test_image)]))
        (container_id,) = applied.services[0].container_ids
        started = docker_client.containers.get(container_id).attrs["State"]["StartedAt"]
        reply = await client.restart_service("ticker")
        assert [(c.container_id, c.state, c.health) for c in reply.containers] == [
            (container_id, "running", "none")
        ]
        assert docker_client.containers.get(container_id).attrs["State"]["StartedAt"] != started
        with pytest.raises(AgentError, match="NOT_FOUND"):
            await client.restart_service("nope")


@pytest.mark.docker
async def test_stream_logs_with_and_without_follow(agent: RunningAgent, test_image: str) -> None:
    async with agent.client() as client:
        await client.apply(pb.Manifest(services=[ticker(test_image)]))
        await asyncio.sleep(0.5)
        past = [line.line async for line in client.stream_logs("ticker")]
        assert past and past[0] == "tick 1"

        followed: list[str] = []

        async def follow() -> None:
            async for line in client.stream_logs("ticker", follow=True, tail=1):
                followed.append(line.line)
                if len(followed) == 5:
                    return

        # Five lines at 0.2 s each arrive only if the stream follows the running container.
        await asyncio.wait_for(follow(), timeout=15)
        numbers = [int(text.split()[1]) for text in followed]
        assert numbers == list(range(numbers[0], numbers[0] + 5))
        assert numbers[-1] > len(past)


@pytest.mark.docker
async def test_put_file_is_atomic_with_mode_and_confined(agent: RunningAgent) -> None:
    data = b"secret=1\n" * 300_000  # several chunks
    target = agent.files_root / "etc" / "kombify" / "app.env"
    async with agent.client() as client:
        reply = await client.put_file(str(target), data, mode=0o600)
        assert reply.size == len(data)
        assert reply.sha256 == hashlib.sha256(data).hexdigest()
        assert target.read_bytes() == data
        assert stat.S_IMODE(target.stat().st_mode) == 0o600

        await client.put_file(str(target), b"replaced\n", mode=0o640)
        assert target.read_bytes() == b"replaced\n"
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
        assert [p.name for p in target.parent.iterdir()] == ["app.env"]  # no temp files left

        outside = agent.files_root / ".." / "escaped"
        with pytest.raises(AgentError, match="PERMISSION_DENIED.*outside"):
            await client.put_file(str(outside), b"x")
        with pytest.raises(AgentError, match="PERMISSION_DENIED.*absolute"):
            await client.put_file("relative/path", b"x")
    assert not (agent.files_root.parent / "escaped").exists()


@pytest.mark.docker
async def test_load_image_ships_an_image_the_node_cannot_pull(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    shipped = f"kombify-test/shipped-{uuid.uuid4().hex[:8]}:1"
    docker_client.images.get(test_image).tag(shipped)
    try:
        tarball = list(docker_client.api.get_image(shipped))  # `docker save NAME`
        docker_client.images.remove(shipped)
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(shipped)
        async with agent.client() as client:
            loaded = await client.load_image(tarball)
            assert shipped in loaded
            docker_client.images.get(shipped)
            # The node can now run it without any registry.
            spec = ticker(shipped)
            result = await client.apply(pb.Manifest(services=[spec]))
            assert result.ok, result
    finally:
        for container in docker_client.containers.list(
            all=True, filters={"label": f"io.kombify.node={agent.identity}"}
        ):
            container.remove(force=True)
        docker_client.images.remove(shipped, force=True)
