"""RepairService against the real Docker engine: the restart-or-recreate ladder."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from kombify.agent.proto import pb
from kombify.errors import AgentError
from tests.support.agent import RunningAgent
from tests.support.heal import BROKEN_CHECK, LOOP, Watcher, kinds, service

pytestmark = pytest.mark.docker


def _ids(containers: list[pb.ContainerStatus]) -> dict[int, str]:
    return {c.replica: c.container_id for c in containers}


async def test_auto_mends_killed_removed_and_unhealthy_replicas_only(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    spec = service(test_image, replicas=4, check=BROKEN_CHECK)
    async with agent.client() as client:
        result = await client.apply(pb.Manifest(revision="r1", services=[spec]))
        assert result.ok, result
        before = _ids(list((await client.list_services()).containers))
        async with Watcher(client) as watcher:
            docker_client.containers.get(before[0]).kill()
            docker_client.containers.get(before[1]).remove(force=True)
            # /tmp/broken is in the container's own filesystem: it survives a restart.
            docker_client.containers.get(before[2]).exec_run(["sh", "-c", ": > /tmp/broken"])
            want = [("web", 0, "exited"), ("web", 1, "missing"), ("web", 2, "unhealthy")]
            await watcher.next(lambda r: kinds(r) == want, timeout=5)

            reply = await client.repair_service("web")
            assert reply.healthy, reply
            # Per replica in order; web-2's restart left it unhealthy: the recreate rung.
            assert list(reply.actions) == [
                "started web-0",
                "created web-1",
                "restarted web-2",
                "recreated web-2",
            ]
            after = _ids(list(reply.containers))
            assert after[0] == before[0]  # started again, same container
            assert after[3] == before[3]  # healthy: untouched
            assert after[1] != before[1] and after[2] != before[2]
            assert {c.state for c in reply.containers} == {"running"}
            assert {c.health for c in reply.containers} == {"healthy"}
            assert reply.log_tail == ""
            # The untouched replica was not restarted either.
            assert docker_client.containers.get(before[3]).attrs["RestartCount"] == 0
            # The settled picture follows the repair.
            await watcher.next(lambda r: not r.problems, timeout=5)

        # An untouched service stays so: nothing to do.
        again = await client.repair_service("web")
        assert (list(again.actions), again.healthy) == ([], True)
        assert _ids(list(again.containers)) == after


async def test_recreate_gives_new_containers(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    async with agent.client() as client:
        spec = service(test_image, replicas=2)
        assert (await client.apply(pb.Manifest(services=[spec]))).ok
        before = _ids(list((await client.list_services()).containers))
        reply = await client.repair_service("web", recreate=True)
        assert reply.healthy, reply
        assert list(reply.actions) == ["recreated web-0", "recreated web-1"]
        after = _ids(list(reply.containers))
        assert set(after) == {0, 1} and not set(after.values()) & set(before.values())
        for container_id in before.values():
            with pytest.raises(docker.errors.NotFound):
                docker_client.containers.get(container_id)


async def test_repair_refuses_unknown_services_and_a_node_without_manifest(
    agent: RunningAgent, test_image: str
) -> None:
    async with agent.client() as client:
        with pytest.raises(AgentError, match="FAILED_PRECONDITION.*no manifest"):
            await client.repair_service("web")
        assert (await client.apply(pb.Manifest(services=[service(test_image)]))).ok
        with pytest.raises(AgentError, match="NOT_FOUND.*no service `nope`.*`web`"):
            await client.repair_service("nope")


async def test_a_repair_the_ladder_cannot_mend_reports_the_log_tail(
    agent: RunningAgent, test_image: str, tmp_path: Path
) -> None:
    # The check reads a host directory: a fresh container breaks as the old one did.
    data = tmp_path / "data"
    data.mkdir()
    spec = service(
        test_image, check="test ! -f /data/broken", command="echo hello from web; " + LOOP
    )
    spec.volumes.add(source=str(data), target="/data")
    async with agent.client() as client:
        result = await client.apply(pb.Manifest(services=[spec]))
        assert result.ok, result
        async with Watcher(client) as watcher:
            (data / "broken").write_text("")
            await watcher.next(lambda r: kinds(r) == [("web", 0, "unhealthy")], timeout=5)
        reply = await client.repair_service("web")
        assert not reply.healthy
        assert list(reply.actions) == ["restarted web-0", "recreated web-0"]
        assert "unhealthy after 2 failed probe(s)" in reply.detail
        assert "/data/broken" in reply.detail
        assert "hello from web" in reply.log_tail
        assert [c.health for c in reply.containers] == ["unhealthy"]
