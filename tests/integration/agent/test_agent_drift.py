"""InspectDrift against the real Docker engine: changes made by hand, the way people make them."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import docker
import pytest

from kombify.agent.proto import pb
from tests.integration.agent.conftest import RUN, TEST_LABEL
from tests.support.agent import RunningAgent
from tests.support.heal import LOOP, service

pytestmark = pytest.mark.docker


def _ours(report: pb.DriftReport, agent: RunningAgent) -> list[tuple[str, str, str]]:
    """(kind, service, container) of every drift but the engine's other tenants.

    The test engine is shared (other tests, other engineers' nodes): their containers are
    rightly ``unmanaged`` here, so only this test's own names are kept.
    """
    prefix = f"kt-{agent.identity.split('.')[0]}-"
    return sorted(
        (d.kind, d.service, d.container)
        for d in report.drifts
        if d.kind != "unmanaged" or d.container.startswith(prefix)
    )


def _rerun_by_hand(
    docker_client: docker.DockerClient, name: str, *, env: list[str], new_name: str = ""
) -> str:
    """What an owner does to change env: `docker rm -f`, then `docker run` with the labels."""
    old = docker_client.containers.get(name)
    labels, image = old.labels, old.attrs["Config"]["Image"]
    command = old.attrs["Config"]["Cmd"]
    if not new_name:
        old.remove(force=True)
    return str(
        docker_client.containers.run(
            image, command, name=new_name or name, labels=labels, environment=env, detach=True
        ).id
    )


async def test_a_clean_node_has_no_drift(agent: RunningAgent, test_image: str) -> None:
    async with agent.client() as client:
        spec = service(test_image, replicas=2, env={"GREETING": "hello", "API_TOKEN": "s3"})
        with socket.socket() as probe:  # a free port, published on loopback only
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        spec.ports.add(container_port=80, host_port=port, host_ip="127.0.0.1")
        assert (await client.apply(pb.Manifest(revision="r1", services=[spec]))).ok
        report = await client.inspect_drift()
        assert report.manifest_revision == "r1"
        assert _ours(report, agent) == []


async def test_env_changed_by_hand_is_changed_and_secrets_stay_hidden(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient
) -> None:
    spec = service(test_image, env={"GREETING": "hello", "API_TOKEN": "s3cr3t-spec"})
    async with agent.client() as client:
        assert (await client.apply(pb.Manifest(services=[spec]))).ok
        name = f"kt-{agent.identity.split('.')[0]}-web-0"
        _rerun_by_hand(
            docker_client,
            name,
            env=["GREETING=bye", "API_TOKEN=s3cr3t-by-hand", "DEBUG=1", "DB_PASSWORD=pw-by-hand"],
        )
        report = await client.inspect_drift()
        assert _ours(report, agent) == [("changed", "web", name)]
        (drift,) = [d for d in report.drifts if d.kind == "changed"]
        assert 'env GREETING: spec "hello", running "bye"' in drift.detail
        assert "env API_TOKEN: differs" in drift.detail
        assert "env DEBUG: not in the spec" in drift.detail
        assert "env DB_PASSWORD: not in the spec" in drift.detail
        for secret in ("s3cr3t", "pw-by-hand"):
            assert secret not in str(report)
        # PATH comes from the image (ENV PATH=/bin): not drift.
        assert "PATH" not in drift.detail


async def test_extra_unmanaged_missing_service_and_missing_volume(
    agent: RunningAgent, test_image: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    web = service(test_image, replicas=1)
    db = service(test_image, "db")
    db.volumes.add(source=str(data), target="/data")
    prefix = f"kt-{agent.identity.split('.')[0]}-"
    async with agent.client() as client:
        assert (await client.apply(pb.Manifest(services=[web, db]))).ok
        # A second container for web's replica 0, and one for a replica the spec lacks.
        _rerun_by_hand(docker_client, f"{prefix}web-0", env=[], new_name=f"{prefix}web-copy")
        beyond = docker_client.containers.get(f"{prefix}web-0").labels
        docker_client.containers.run(
            test_image,
            ["/bin/sh", "-c", LOOP],
            name=f"{prefix}web-7",
            labels={**beyond, "io.kombify.replica": "7"},
            detach=True,
        )
        # Not started by kombify: reported, never removed.
        stranger = f"{prefix}stranger-{uuid.uuid4().hex[:6]}"
        docker_client.containers.run(
            test_image,
            ["/bin/sh", "-c", LOOP],
            name=stranger,
            labels={TEST_LABEL: RUN},
            detach=True,
        )
        try:
            docker_client.containers.get(f"{prefix}db-0").remove(force=True)
            data.rmdir()  # Docker made it for the bind mount; gone now
            report = await client.inspect_drift()
            assert _ours(report, agent) == [
                ("extra", "web", f"{prefix}web-7"),
                ("extra", "web", f"{prefix}web-copy"),
                ("missing-service", "db", ""),
                ("missing-volume", "db", ""),
                ("unmanaged", "", stranger),
            ]
            details = {(d.kind, d.container): d.detail for d in report.drifts}
            assert "beyond the 1" in details[("extra", f"{prefix}web-7")]
            assert "second container for replica 0" in details[("extra", f"{prefix}web-copy")]
            assert test_image in details[("unmanaged", stranger)]
            assert str(data) in details[("missing-volume", "")]
            docker_client.containers.get(stranger)  # still there
        finally:
            docker_client.containers.get(stranger).remove(force=True)
