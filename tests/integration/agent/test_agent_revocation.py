"""A revoked agent certificate is refused by the control plane; a freshly issued one is served.

The agent here is real (in-process gRPC server with mTLS); the revoked certificate still
passes the TLS handshake, as a copy of it would on a disk or a re-used node. Only the
control plane's revocation list stops it, before any request reaches the agent.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from kombify.agent.client import AgentClient
from kombify.agent.server import AgentConfig, AgentServer
from kombify.errors import CertificateRevokedError
from kombify.pki import RevocationList
from tests.integration.agent.conftest import RUN, TEST_LABEL
from tests.support.agent import RunningAgent


def _client(agent: RunningAgent, address: str, crl: RevocationList) -> AgentClient:
    return AgentClient.with_cert(
        address, agent.identity, agent.pki.control_plane, timeout=20, revocations=crl
    )


async def test_a_revoked_certificate_is_refused_and_a_fresh_one_served(
    agent: RunningAgent, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    crl = RevocationList(tmp_path / "pki")
    async with _client(agent, agent.address, crl) as client:
        assert (await client.health()).node_identity == agent.identity
        revoked = await client.verify_peer()

    crl.revoke(revoked, identity=agent.identity, reason="destroy of stack `local/kt`")

    async with _client(agent, agent.address, crl) as client:
        with pytest.raises(CertificateRevokedError) as caught:
            await client.health()
        # Nothing is sent to the revoked agent: not a file, not a manifest.
        with pytest.raises(CertificateRevokedError):
            await client.put_file(str(agent.files_root / "leak"), b"secret")
    message = str(caught.value)
    assert f"agent `{agent.identity}`" in message
    assert f"certificate {revoked.serial_number:x} was revoked on" in message
    assert "destroy of stack `local/kt`" in message
    assert not (agent.files_root / "leak").exists()
    # The refusal comes from the list: without it, the same agent is served as before.
    async with agent.client() as plain:
        assert (await plain.health()).node_identity == agent.identity

    # The node is given a new certificate (as a re-deploy does): served again.
    fresh = agent.pki.ca.issue_server(agent.identity, ip_addresses=["127.0.0.1"])
    config = AgentConfig(
        cert_pem=fresh.cert_pem,
        key_pem=fresh.key_pem,
        ca_pem=fresh.ca_pem,
        state_dir=tmp_path / "state2",
        files_root=tmp_path / "files2",
        container_prefix=f"kt-{agent.identity.split('.')[0]}-",
        extra_labels={TEST_LABEL: RUN},
    )
    server = await AgentServer.start(config, "127.0.0.1:0", docker_client=docker_client)
    try:
        async with _client(agent, f"127.0.0.1:{server.port}", crl) as client:
            assert (await client.health()).node_identity == agent.identity
            served = await client.verify_peer()
            await client.put_file(str(tmp_path / "files2" / "ok"), b"fine")
    finally:
        await server.stop(grace=0)
    assert served.serial_number == fresh.cert.serial_number != revoked.serial_number
    assert (tmp_path / "files2" / "ok").read_bytes() == b"fine"
