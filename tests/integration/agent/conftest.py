"""Fixtures for the node agent: a throwaway CA, a tiny busybox image, agents in-process.

Every container and image made here carries this session's unique label or tag and is removed
at the end. The agent listens on 127.0.0.1 only; published ports bind 127.0.0.1 only.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from kombify.agent.server import AgentConfig, AgentServer
from kombify.pki import CertificateAuthority
from tests.support.agent import Pki, RunningAgent, busybox_rootfs

RUN = uuid.uuid4().hex[:10]
TEST_LABEL = "kombify-test.run"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    client.ping()
    yield client
    for container in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN}"}):
        container.remove(force=True)
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """A busybox image made offline from busybox-static (Docker Hub is out of reach).

    Built rather than reusing ``kombify-test/httpd:1``: the tests need to know exactly what
    the image contains (sh, httpd, wget), and building it takes about a second.
    """
    tag = f"kombify-test/agent-busybox-{RUN}:1"
    repo, version = tag.split(":")
    docker_client.api.import_image_from_data(
        busybox_rootfs(),
        repository=repo,
        tag=version,
        changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"],
    )
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = CertificateAuthority.create(name=f"kombify test CA {RUN}")
    return Pki(ca=ca, control_plane=ca.issue_client())


@pytest.fixture
async def agent(
    pki: Pki, tmp_path: Path, docker_client: docker.DockerClient
) -> AsyncIterator[RunningAgent]:
    node = f"node-{uuid.uuid4().hex[:8]}.test.kombify"
    issued = pki.ca.issue_server(node, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    config = AgentConfig(
        cert_pem=issued.cert_pem,
        key_pem=issued.key_pem,
        ca_pem=issued.ca_pem,
        state_dir=tmp_path / "state",
        files_root=tmp_path / "files",
        container_prefix=f"kt-{node.split('.')[0]}-",
        extra_labels={TEST_LABEL: RUN},
    )
    server = await AgentServer.start(config, "127.0.0.1:0", docker_client=docker_client)
    try:
        yield RunningAgent(
            server=server,
            identity=node,
            address=f"127.0.0.1:{server.port}",
            state_dir=config.state_dir,
            files_root=config.files_root,
            pki=pki,
        )
    finally:
        await server.stop(grace=0)
        for container in docker_client.containers.list(
            all=True, filters={"label": f"io.kombify.node={node}"}
        ):
            container.remove(force=True)
