"""ApplyServices against the real Docker engine: converge, health gate, rollback, removal."""

from __future__ import annotations

import asyncio
import json

import docker
import httpx
import pytest

from kombify.agent.proto import pb
from kombify.errors import AgentError
from tests.support.agent import RunningAgent
from tests.support.ports import free_port

SERVE = 'mkdir -p /www && echo "$GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'


def web(image: str, port: int, greeting: str, *, command: str = SERVE) -> pb.ServiceSpec:
    """A busybox httpd answering ``greeting``, published on 127.0.0.1:``port``."""
    return pb.ServiceSpec(
        name="web",
        image=image,
        command=["/bin/sh", "-c", command],
        env={"GREETING": greeting},
        ports=[pb.PortMapping(container_port=8080, host_port=port, host_ip="127.0.0.1")],
        healthcheck=pb.HealthCheck(
            http_url="http://127.0.0.1:8080/", interval_ms=200, start_timeout_ms=10_000
        ),
        stop_grace_seconds=1,
    )


def side(image: str) -> pb.ServiceSpec:
    """A service with no published port: its health is probed from inside the container."""
    return pb.ServiceSpec(
        name="side",
        image=image,
        command=["/bin/sh", "-c", SERVE],
        env={"GREETING": "side"},
        healthcheck=pb.HealthCheck(http_url="http://127.0.0.1:8080/", interval_ms=200),
        stop_grace_seconds=1,
    )


def outcomes(result: pb.ApplyResult) -> dict[str, int]:
    return {o.service: o.outcome for o in result.services}


def ids(result: pb.ApplyResult) -> dict[str, list[str]]:
    return {o.service: list(o.container_ids) for o in result.services}


def get(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/", timeout=5, trust_env=False).text.strip()


@pytest.mark.docker
async def test_converge_create_unchanged_change_remove(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    port = free_port()
    events: list[pb.ApplyEvent] = []
    async with agent.client() as client:
        first = await client.apply(
            pb.Manifest(revision="r1", services=[web(test_image, port, "hello"), side(test_image)]),
            on_event=events.append,
        )
        assert first.ok, first
        assert outcomes(first) == {"web": pb.OUTCOME_CREATED, "side": pb.OUTCOME_CREATED}
        assert get(port) == "hello"
        kinds = [e.kind for e in events]
        assert kinds[0] == pb.ApplyEvent.PLAN and kinds[-1] == pb.ApplyEvent.DONE
        assert pb.ApplyEvent.HEALTHY in kinds

        # Re-applying the same manifest touches nothing.
        again = await client.apply(
            pb.Manifest(revision="r1", services=[web(test_image, port, "hello"), side(test_image)])
        )
        assert outcomes(again) == {"web": pb.OUTCOME_UNCHANGED, "side": pb.OUTCOME_UNCHANGED}
        assert ids(again) == ids(first)

        # One env var changes: only that service gets a new container.
        changed = await client.apply(
            pb.Manifest(
                revision="r2", services=[web(test_image, port, "hello v2"), side(test_image)]
            )
        )
        assert changed.ok
        assert outcomes(changed) == {"web": pb.OUTCOME_UPDATED, "side": pb.OUTCOME_UNCHANGED}
        assert ids(changed)["side"] == ids(first)["side"]
        assert ids(changed)["web"] != ids(first)["web"]
        assert get(port) == "hello v2"
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(ids(first)["web"][0])

        listed = await client.list_services(probe_health=True)
        assert listed.manifest_revision == "r2"
        assert {(c.service, c.state, c.health) for c in listed.containers} == {
            ("web", "running", "healthy"),
            ("side", "running", "healthy"),
        }

        # A service left out of the manifest is removed from the node.
        removed = await client.apply(
            pb.Manifest(revision="r3", services=[web(test_image, port, "hello v2")])
        )
        assert outcomes(removed) == {"web": pb.OUTCOME_UNCHANGED, "side": pb.OUTCOME_REMOVED}
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(ids(first)["side"][0])
        assert {c.service for c in (await client.list_services()).containers} == {"web"}

    current = json.loads((agent.state_dir / "manifest.json").read_text())
    previous = json.loads((agent.state_dir / "manifest.previous.json").read_text())
    assert current["revision"] == "r3"
    assert previous["revision"] == "r2"
    assert [s["name"] for s in previous["services"]] == ["web", "side"]


@pytest.mark.docker
async def test_unhealthy_revision_is_rolled_back(agent: RunningAgent, test_image: str) -> None:
    port = free_port()
    async with agent.client() as client:
        good = await client.apply(
            pb.Manifest(revision="good", services=[web(test_image, port, "old")])
        )
        assert good.ok
        broken = web(test_image, port, "new", command="echo broken; sleep 600")
        broken.healthcheck.start_timeout_ms = 2000
        events: list[pb.ApplyEvent] = []
        bad = await client.apply(
            pb.Manifest(revision="bad", services=[broken]), on_event=events.append
        )
        assert not bad.ok
        (outcome,) = bad.services
        assert outcome.outcome == pb.OUTCOME_ROLLED_BACK
        assert "unhealthy" in outcome.reason and "broken" in outcome.reason  # log tail included
        assert list(outcome.container_ids) == list(good.services[0].container_ids)
        assert get(port) == "old"
        assert [e.kind for e in events if e.service == "web"][-2:] == [
            pb.ApplyEvent.HEALTHY,  # the old revision, checked again after the rollback
            pb.ApplyEvent.ROLLED_BACK,
        ]
        listed = await client.list_services()
        assert [c.container_id for c in listed.containers] == list(outcome.container_ids)
        assert listed.manifest_revision == "bad+rollback"

        # The rolled-back state is the previous spec: applying the good one again is a no-op.
        again = await client.apply(
            pb.Manifest(revision="good", services=[web(test_image, port, "old")])
        )
        assert outcomes(again) == {"web": pb.OUTCOME_UNCHANGED}


@pytest.mark.docker
async def test_unhealthy_new_service_fails_and_leaves_nothing(
    agent: RunningAgent, test_image: str
) -> None:
    broken = web(test_image, free_port(), "x", command="exit 3")
    broken.restart_policy = pb.RESTART_POLICY_NO
    async with agent.client() as client:
        result = await client.apply(pb.Manifest(services=[broken]))
        assert outcomes(result) == {"web": pb.OUTCOME_FAILED}
        assert "no previous revision" in result.services[0].reason
        assert not (await client.list_services()).containers


@pytest.mark.docker
async def test_image_the_node_lacks_fails_without_touching_the_service(
    agent: RunningAgent, test_image: str
) -> None:
    port = free_port()
    async with agent.client() as client:
        good = await client.apply(pb.Manifest(services=[web(test_image, port, "still here")]))
        # A registry on a closed loopback port: the pull fails at once, no traffic leaves.
        absent = web("127.0.0.1:9/kombify-test/absent:1", port, "never")
        result = await client.apply(pb.Manifest(services=[absent]))
        assert outcomes(result) == {"web": pb.OUTCOME_FAILED}
        reason = result.services[0].reason
        # The user's words: what to do, no engine URL and no internal RPC name.
        assert reason.startswith(
            "image `127.0.0.1:9/kombify-test/absent:1` is neither on the node nor on the "
            "machine running kombify, and the node cannot pull it ("
        ), reason
        assert reason.endswith(
            "): pull or build it on the machine running kombify and kombify ships it"
        )
        assert "http+docker" not in reason and "LoadImage" not in reason and len(reason) < 400
        assert get(port) == "still here"
        listed = await client.list_services()
        assert [c.container_id for c in listed.containers] == list(good.services[0].container_ids)


@pytest.mark.docker
async def test_invalid_manifest_is_refused(agent: RunningAgent, test_image: str) -> None:
    twice = [web(test_image, free_port(), "a"), web(test_image, free_port(), "b")]
    async with agent.client() as client:
        with pytest.raises(AgentError, match="INVALID_ARGUMENT.*listed twice"):
            await client.apply(pb.Manifest(services=twice))


@pytest.mark.docker
async def test_replicas_behind_one_host_port_run_and_answer(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    port = free_port()
    spec = web(test_image, port, "many")
    spec.replicas = 3
    async with agent.client() as client:
        first = await client.apply(pb.Manifest(services=[spec]))
        assert first.ok, first
        spec.env["GREETING"] = "more"  # a new revision replaces all three, port included
        second = await client.apply(pb.Manifest(services=[spec]))
    assert second.ok, second
    (outcome,) = second.services
    assert len(outcome.container_ids) == 3
    published = [
        docker_client.containers.get(c).attrs["HostConfig"]["PortBindings"] or {}
        for c in outcome.container_ids
    ]
    assert sorted(bool(p) for p in published) == [False, False, True]  # the first replica's
    assert all(docker_client.containers.get(c).status == "running" for c in outcome.container_ids)
    assert get(port) == "more"


@pytest.mark.docker
async def test_stopped_container_is_started_not_replaced(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    port = free_port()
    manifest = pb.Manifest(services=[web(test_image, port, "up")])
    async with agent.client() as client:
        first = await client.apply(manifest)
        (container_id,) = first.services[0].container_ids
        docker_client.containers.get(container_id).stop(timeout=1)
        again = await client.apply(manifest)
        assert outcomes(again) == {"web": pb.OUTCOME_STARTED}
        assert list(again.services[0].container_ids) == [container_id]
        assert get(port) == "up"


@pytest.mark.docker
async def test_apply_finishes_when_the_caller_goes_away(
    agent: RunningAgent, test_image: str
) -> None:
    port = free_port()
    manifest = pb.Manifest(revision="r1", services=[web(test_image, port, "durable")])
    async with agent.client() as client:
        stream = client.apply_services(manifest)
        first = await anext(stream)
        assert first.kind == pb.ApplyEvent.PLAN
        await stream.aclose()  # the control plane drops the call right after the plan
        for _ in range(100):
            listed = await client.list_services()
            if listed.manifest_revision == "r1":
                break
            await asyncio.sleep(0.1)
        assert [(c.service, c.state) for c in listed.containers] == [("web", "running")]
        assert get(port) == "durable"
        again = await client.apply(manifest)
        assert outcomes(again) == {"web": pb.OUTCOME_UNCHANGED}
