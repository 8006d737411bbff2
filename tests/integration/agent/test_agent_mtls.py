"""Mutual TLS between control plane and agent: who is served and who is refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import tempfile
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kombify.agent.client import AgentClient
from kombify.agent.proto import agent_stub, pb
from kombify.agent.server import AgentConfig, AgentServer
from kombify.errors import AgentError, ConfigError
from kombify.pki import CertificateAuthority, IssuedCert
from kombify.pki.certs import key_pem, new_key
from tests.support.agent import Pki, RunningAgent


def _self_signed_client() -> tuple[bytes, bytes]:
    """A certificate claiming to be the control plane, signed by its own key."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kombify-control-plane")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def _handshake(address: str, cert: tuple[bytes, bytes] | None, ca_pem: bytes) -> str:
    """A raw TLS handshake with the agent, with this client certificate (or none).

    ``UNAVAILABLE`` alone is also what an agent that is not listening returns: this says
    whether the TLS layer itself refused the peer. TLS 1.2, because there the server checks the
    client's certificate inside the handshake; in TLS 1.3 the client's side of the handshake
    completes first and the refusal arrives only as a closed connection.
    """
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = False
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        with tempfile.TemporaryDirectory() as scratch:
            cert_file, key_file = Path(scratch, "c.pem"), Path(scratch, "k.pem")
            cert_file.write_bytes(cert[0])
            key_file.write_bytes(cert[1])
            context.load_cert_chain(cert_file, key_file)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        try:
            with context.wrap_socket(raw):
                return "accepted"
        except ssl.SSLError as exc:
            return f"refused in the TLS handshake: {exc.reason}"


async def _tls_answer(agent: RunningAgent, cert: IssuedCert | tuple[bytes, bytes] | None) -> str:
    pair = (cert.cert_pem, cert.key_pem) if isinstance(cert, IssuedCert) else cert
    return await asyncio.to_thread(_handshake, agent.address, pair, agent.pki.ca.cert_pem)


async def test_control_plane_is_served(agent: RunningAgent) -> None:
    async with agent.client() as client:
        reply = await client.health()
        cert = await client.verify_peer()
    assert reply.node_identity == agent.identity
    assert reply.docker_ok
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == agent.identity


async def test_self_signed_client_is_refused(agent: RunningAgent) -> None:
    cert_pem, key = _self_signed_client()
    client = AgentClient(
        agent.address,
        node_identity=agent.identity,
        cert_pem=cert_pem,
        key_pem=key,
        ca_pem=agent.pki.ca.cert_pem,
        timeout=10,
    )
    async with client:
        with pytest.raises(AgentError, match="UNAVAILABLE"):
            await client.health()
    assert (await _tls_answer(agent, (cert_pem, key))).startswith("refused in the TLS handshake")


async def test_the_tls_check_tells_a_refusal_from_an_acceptance(agent: RunningAgent) -> None:
    assert await _tls_answer(agent, agent.pki.control_plane) == "accepted"


async def test_client_without_certificate_is_refused(agent: RunningAgent) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=agent.pki.ca.cert_pem)
    options = [("grpc.ssl_target_name_override", agent.identity)]
    async with grpc.aio.secure_channel(agent.address, credentials, options=options) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await agent_stub(channel).Health(pb.HealthRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (await _tls_answer(agent, None)).startswith("refused in the TLS handshake")


async def test_client_of_another_ca_is_refused(agent: RunningAgent) -> None:
    stranger = CertificateAuthority.create(name="another CA").issue_client()
    forged = IssuedCert(stranger.cert_pem, stranger.key_pem, agent.pki.ca.cert_pem)
    async with agent.client(cert=forged) as client:
        with pytest.raises(AgentError, match="UNAVAILABLE"):
            await client.health()
    assert (await _tls_answer(agent, forged)).startswith("refused in the TLS handshake")


async def test_a_node_certificate_cannot_command_an_agent(agent: RunningAgent) -> None:
    """Same CA, but a server certificate: a compromised node cannot drive its neighbours."""
    neighbour = agent.pki.ca.issue_server("node-neighbour.test.kombify")
    async with agent.client(cert=neighbour) as client:
        # BoringSSL rejects a serverAuth-only certificate in the handshake: the agent relies
        # on that (it carries no X.509 parser), so it must fail there, not later.
        with pytest.raises(AgentError, match="UNAVAILABLE"):
            await client.health()
    assert (await _tls_answer(agent, neighbour)).startswith("refused in the TLS handshake")


async def test_other_client_identity_is_refused(agent: RunningAgent) -> None:
    intruder = agent.pki.ca.issue_client("someone-else")
    async with agent.client(cert=intruder) as client:
        with pytest.raises(AgentError, match="PERMISSION_DENIED.*someone-else"):
            await client.health()


async def test_agent_of_another_node_is_refused(agent: RunningAgent) -> None:
    """Dialling node-b but reaching node-a's agent: the control plane refuses to talk."""
    async with agent.client(identity="node-b.test.kombify") as client:
        with pytest.raises(AgentError, match="UNAVAILABLE.*Hostname Verification"):
            await client.health()
        with pytest.raises(AgentError, match=f"certificate of `{agent.identity}`"):
            await client.verify_peer()


async def test_agent_refuses_a_certificate_of_another_ca(pki: Pki, tmp_path: object) -> None:
    foreign = CertificateAuthority.create(name="another CA").issue_server("node-x")
    config = AgentConfig(
        cert_pem=foreign.cert_pem,
        key_pem=foreign.key_pem,
        ca_pem=pki.ca.cert_pem,
        state_dir=tmp_path,  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError, match="not issued by this CA|does not verify"):
        await AgentServer.start(config, "127.0.0.1:0")
