"""Building and running the agent's gRPC server with mutual TLS."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import grpc
from docker.errors import DockerException

from kombify.agent.auth import ClientPolicy
from kombify.agent.engine import Engine
from kombify.agent.proto import add_agent_servicer
from kombify.agent.service import AgentService
from kombify.agent.state import ManifestStore
from kombify.agent.tls import CONTROL_PLANE_IDENTITY, CertificateRefused, server_identity
from kombify.errors import ConfigError

MAX_MESSAGE = 16 * 1024 * 1024


@dataclass(frozen=True)
class AgentConfig:
    """What an agent needs to run.

    Attributes:
        cert_pem: The agent's server certificate; its CN is the node identity.
        key_pem: Its private key.
        ca_pem: The kombify CA certificate: the only issuer whose clients are accepted.
        state_dir: Where the manifests (current and previous) and spooled uploads live.
        files_root: The directory tree PutFile may write into.
        container_prefix: Prepended to the names of the containers the agent creates.
        extra_labels: Labels put on every container the agent creates.
        allowed_clients: Subject CNs of client certificates that may call.
    """

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    state_dir: Path
    files_root: Path = Path("/")
    container_prefix: str = "kombify-"
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    allowed_clients: frozenset[str] = frozenset({CONTROL_PLANE_IDENTITY})

    def check(self) -> str:
        """The node identity (the certificate's CN), once the certificate proves usable.

        Refuses a certificate the kombify CA did not sign, one that expired, one not meant
        for servers, or a key that does not fit it: clients would refuse it anyway, and an
        agent that says so at start-up is easier to mend than one nobody can reach.

        Raises:
            ConfigError: With the reason.
        """
        try:
            return server_identity(self.cert_pem, self.key_pem, self.ca_pem)
        except CertificateRefused as exc:
            raise ConfigError(f"the agent's certificate cannot be used: {exc}") from exc


class AgentServer:
    """A running agent: ``await AgentServer.start(config, "127.0.0.1:0")``, later ``stop()``.

    Attributes:
        port: The port actually bound (useful with port 0).
        service: The servicer (tests read its engine and store).
    """

    def __init__(self, server: Any, port: int, service: AgentService) -> None:
        self._server = server
        self.port = port
        self.service = service

    @classmethod
    async def start(
        cls, config: AgentConfig, listen: str, *, docker_client: Any = None
    ) -> AgentServer:
        """Binds ``listen`` (host:port) with mTLS and starts serving.

        Raises:
            ConfigError: Bad certificate, unreachable Docker engine, or the address is taken.
        """
        identity = config.check()
        try:
            client = docker_client or docker.from_env()
        except DockerException as exc:
            raise ConfigError(f"cannot reach the Docker engine: {exc}") from exc
        engine = Engine(
            client,
            node=identity,
            prefix=config.container_prefix,
            extra_labels=config.extra_labels,
        )
        service = AgentService(
            engine=engine,
            store=ManifestStore(config.state_dir),
            policy=ClientPolicy(config.allowed_clients),
            files_root=config.files_root,
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ]
        )
        add_agent_servicer(service, server)
        credentials = grpc.ssl_server_credentials(
            [(config.key_pem, config.cert_pem)],
            root_certificates=config.ca_pem,
            require_client_auth=True,
        )
        try:
            port = server.add_secure_port(listen, credentials)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {listen}: {exc}") from exc
        await server.start()
        return cls(server, port, service)

    async def stop(self, grace: float | None = 2.0) -> None:
        """Stops serving; running RPCs get ``grace`` seconds to finish."""
        await self._server.stop(grace)

    async def wait(self) -> None:
        """Blocks until the server terminates."""
        await self._server.wait_for_termination()
