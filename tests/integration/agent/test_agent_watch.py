"""WatchServices and the health monitor against the real Docker engine."""

from __future__ import annotations

import asyncio
import threading

import docker
import pytest

from kombify.agent.proto import pb
from tests.support.agent import RunningAgent
from tests.support.heal import BROKEN_CHECK, LOOP, Watcher, kinds, service

pytestmark = pytest.mark.docker


def _now() -> float:
    return asyncio.get_running_loop().time()


async def test_watch_starts_empty_and_reports_a_kill_once(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    async with agent.client() as client, Watcher(client) as watcher:
        first = watcher.reports[0][1]
        assert (first.manifest_revision, list(first.problems), first.keepalive) == ("", [], False)
        assert first.at.endswith("Z")

        result = await client.apply(pb.Manifest(revision="r1", services=[service(test_image)]))
        assert result.ok, result
        await watcher.next(lambda r: r.manifest_revision == "r1" and not r.problems, timeout=10)
        (container_id,) = result.services[0].container_ids

        killed_at = _now()
        docker_client.containers.get(container_id).kill()  # `docker kill`: SIGKILL, exit 137
        report = await watcher.next(lambda r: bool(r.problems), timeout=2, since=killed_at)
        assert kinds(report) == [("web", 0, "exited")]
        (problem,) = report.problems
        assert problem.container_id == container_id
        assert "exit code 137" in problem.detail
        assert problem.since
        # Docker does not start a killed unless-stopped container again: it stays down.
        await asyncio.sleep(1.5)
        assert docker_client.containers.get(container_id).status == "exited"
        assert [kinds(r) for r in watcher.changes(since=killed_at)] == [[("web", 0, "exited")]]


async def test_watch_reports_a_removed_container_as_missing(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    async with agent.client() as client:
        result = await client.apply(pb.Manifest(services=[service(test_image, replicas=2)]))
        assert result.ok, result
        async with Watcher(client) as watcher:
            assert list(watcher.reports[0][1].problems) == []
            removed_at = _now()
            name = f"kt-{agent.identity.split('.')[0]}-web-1"
            docker_client.containers.get(name).remove(force=True)  # `docker rm -f`
            report = await watcher.next(lambda r: bool(r.problems), timeout=2, since=removed_at)
            assert kinds(report) == [("web", 1, "missing")]
            assert report.problems[0].container_id == ""


async def test_the_monitor_finds_a_container_turning_unhealthy(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    spec = service(test_image, check=BROKEN_CHECK)
    async with agent.client() as client:
        result = await client.apply(pb.Manifest(services=[spec]))
        assert result.ok, result
        (container_id,) = result.services[0].container_ids
        async with Watcher(client) as watcher:
            await asyncio.sleep(1)  # probes pass meanwhile: nothing to report
            assert watcher.changes() == [watcher.reports[0][1]]
            broken_at = _now()
            docker_client.containers.get(container_id).exec_run(["sh", "-c", ": > /tmp/broken"])
            # Two failed probes 0.3 s apart: unhealthy within about a second.
            report = await watcher.next(lambda r: bool(r.problems), timeout=3, since=broken_at)
            assert kinds(report) == [("web", 0, "unhealthy")]
            assert "exit 1" in report.problems[0].detail
            listed = await client.list_services()
            assert [c.health for c in listed.containers] == ["unhealthy"]

            healed_at = _now()
            docker_client.containers.get(container_id).exec_run(["sh", "-c", "rm /tmp/broken"])
            await watcher.next(lambda r: not r.problems, timeout=3, since=healed_at)
            listed = await client.list_services()
            assert [c.health for c in listed.containers] == ["healthy"]


async def test_watch_sees_docker_restarting_a_crashing_container(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    crash = "while :; do [ -f /tmp/crash ] && exit 3; sleep 0.1; done"
    spec = service(test_image, "crashy", command=crash, restart=pb.RESTART_POLICY_ALWAYS)
    async with agent.client() as client:
        result = await client.apply(pb.Manifest(services=[spec]))
        assert result.ok, result
        (container_id,) = result.services[0].container_ids
        async with Watcher(client) as watcher:
            docker_client.containers.get(container_id).exec_run(["sh", "-c", ": > /tmp/crash"])

            def restarted(report: pb.ServiceReport) -> bool:
                return any(p.kind == "restarting" and p.restart_count > 0 for p in report.problems)

            report = await watcher.next(restarted, timeout=10)
            (problem,) = report.problems
            assert (problem.service, problem.container_id) == ("crashy", container_id)
            assert "exit code 3" in problem.detail


async def test_an_apply_reports_no_problem_while_it_runs(
    agent: RunningAgent, test_image: str
) -> None:
    # v2 replaces web (new env), scales it down to one replica, and adds a service whose
    # health gate takes about a second. Until v2 is in effect, a watcher that looked would
    # see web's old containers stopped or gone against v1: problems that are none.
    slow = service(
        test_image, "slow", check="test -f /tmp/up", command="sleep 1; : > /tmp/up; " + LOOP
    )
    slow.healthcheck.start_period_ms = 5000
    v1 = service(test_image, replicas=2, env={"V": "1"})
    v2 = service(test_image, replicas=1, env={"V": "2"})
    async with agent.client() as client:
        assert (await client.apply(pb.Manifest(revision="v1", services=[v1]))).ok
        async with Watcher(client, keepalive_seconds=1) as watcher:
            result = await client.apply(pb.Manifest(revision="v2", services=[v2, slow]))
            assert result.ok, result
            assert [s.outcome for s in result.services] == [pb.OUTCOME_UPDATED, pb.OUTCOME_CREATED]
            await watcher.next(lambda r: r.manifest_revision == "v2", timeout=5)
            await asyncio.sleep(1.5)
        assert [list(r.problems) for _, r in watcher.reports] == [[]] * len(watcher.reports)
        assert [r.manifest_revision for r in watcher.changes()] == ["v1", "v2"]
        assert any(r.keepalive for _, r in watcher.reports)


async def test_keepalives_arrive_and_watchers_leave_no_listener_behind(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    changes = agent.server.service.changes
    before = changes.listeners
    async with agent.client() as client:
        assert (await client.apply(pb.Manifest(services=[service(test_image)]))).ok
        async with Watcher(client, keepalive_seconds=1) as one, Watcher(client) as two:
            assert changes.listeners == before + 2
            await asyncio.sleep(2.6)
            alive = [r for _, r in one.reports if r.keepalive]
            assert len(alive) >= 2
            assert all(list(r.problems) == [] for r in alive)
            # Both watchers hear of a kill.
            killed_at = _now()
            name = f"kt-{agent.identity.split('.')[0]}-web-0"
            docker_client.containers.get(name).kill()
            for watcher in (one, two):
                report = await watcher.next(lambda r: bool(r.problems), timeout=3, since=killed_at)
                assert kinds(report) == [("web", 0, "exited")]
        for _ in range(50):  # the agent notices the cancelled calls
            if changes.listeners == before:
                break
            await asyncio.sleep(0.1)
        assert changes.listeners == before


async def test_the_monitor_probes_once_per_interval_and_never_during_a_change(
    agent: RunningAgent, test_image: str
) -> None:
    service_ = agent.server.service
    spec = service(test_image, replicas=2, check="true")  # every 0.3 s
    async with agent.client() as client:
        assert (await client.apply(pb.Manifest(services=[spec]))).ok
        await asyncio.sleep(0.5)
        start = service_.monitor.probes_run
        await asyncio.sleep(3)
        probed = service_.monitor.probes_run - start
        # Two containers, one probe each per 0.3 s (plus the probe's own time): 20 at most.
        assert 10 <= probed <= 21, probed
        async with service_.lock:  # what an apply, restart or repair holds
            held = service_.monitor.probes_run
            await asyncio.sleep(1)
            assert service_.monitor.probes_run - held <= 2  # those already under way
        await asyncio.sleep(1)
        assert service_.monitor.probes_run > held + 2  # probing again after the change


async def test_a_stopped_agent_leaves_no_thread_reading_engine_events(
    agent: RunningAgent, test_image: str
) -> None:
    def readers() -> int:
        return sum(t.name == "engine-events" and t.is_alive() for t in threading.enumerate())

    async with agent.client() as client:
        assert (await client.apply(pb.Manifest(services=[service(test_image)]))).ok
        async with Watcher(client), Watcher(client):
            assert agent.server.service.changes.following
    before = readers()
    assert before >= 1
    await agent.server.stop(grace=0)
    for _ in range(50):
        if readers() == before - 1:
            break
        await asyncio.sleep(0.1)
    assert readers() == before - 1
    assert not agent.server.service.changes.following
