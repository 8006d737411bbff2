"""StopService holds a service stopped on purpose; StartService and the next apply end that.

Against the real Docker engine: the owner's stop is not a problem for the watchers (so
nothing heals it), RepairService refuses it, ListServices names it, and the hold survives the
agent's restart (it is on disk).
"""

from __future__ import annotations

import docker
import pytest

from kombify.agent.proto import pb
from kombify.agent.state import Holds
from kombify.errors import AgentError
from tests.support.agent import RunningAgent
from tests.support.heal import Watcher, kinds, service

pytestmark = pytest.mark.docker


async def test_a_stopped_service_is_held_until_start(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    spec = service(test_image, replicas=2)
    other = service(test_image, name="db")
    async with agent.client() as client:
        assert (await client.apply(pb.Manifest(revision="r1", services=[spec, other]))).ok
        async with Watcher(client) as watcher:
            stopped = await client.stop_service("web")

            assert sorted(c.replica for c in stopped.containers) == [0, 1]
            assert {c.state for c in stopped.containers} == {"exited"}
            listed = await client.list_services()
            assert list(listed.stopped_by_owner) == ["web"]
            # Not a problem: the settled picture after the stop has none.
            await watcher.next(lambda r: not r.problems, timeout=10)
            with pytest.raises(AgentError, match="stopped by its owner"):
                await client.repair_service("web")

            # The rest is still watched: db killed is a problem, stopped web still is not.
            db = next(c for c in listed.containers if c.service == "db")
            docker_client.containers.get(db.container_id).kill()
            await watcher.next(lambda r: kinds(r) == [("db", 0, "exited")], timeout=10)
            await client.start_service("db")

            started = await client.start_service("web")

            assert started.healthy and {c.state for c in started.containers} == {"running"}
            assert list((await client.list_services()).stopped_by_owner) == []


async def test_the_next_apply_ends_the_hold(agent: RunningAgent, test_image: str) -> None:
    spec = service(test_image)
    manifest = pb.Manifest(revision="r1", services=[spec])
    async with agent.client() as client:
        assert (await client.apply(manifest)).ok
        await client.stop_service("web")
        assert list((await client.list_services()).stopped_by_owner) == ["web"]

        result = await client.apply(manifest)

        assert result.ok and [o.outcome for o in result.services] == [pb.OUTCOME_STARTED]
        listed = await client.list_services()
        assert list(listed.stopped_by_owner) == []
        assert {c.state for c in listed.containers} == {"running"}
        async with Watcher(client) as watcher:
            await watcher.next(lambda r: kinds(r) == [], timeout=10)


def test_holds_are_kept_on_disk(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    Holds(root).hold("web")
    Holds(root).hold("db")
    Holds(root).release("db")

    assert Holds(root).services() == {"web"}
    Holds(root).clear()
    assert Holds(root).services() == set() and not (root / "held.json").exists()
