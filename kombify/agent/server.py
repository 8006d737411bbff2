"""Building and running the agent's gRPC server with mutual TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpclib.server import Server

from kombify.agent.auth import ClientPolicy
from kombify.agent.engine import Engine
from kombify.agent.service import AgentService
from kombify.agent.state import ManifestStore
from kombify.agent.tls import (
    CONTROL_PLANE_IDENTITY,
    CertificateRefused,
    load_key_pair,
    server_identity,
)
from kombify.agent.vpn import VpnService, stop_watch
from kombify.agent.wireguard import WireGuard
from kombify.errors import ConfigError


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

    The server is grpclib, pure Python on top of asyncio and the standard ``ssl`` module: the
    bundle copied to every node then holds no compiled code at all (grpcio alone would be a
    17 MB x86-64 library), so one bundle serves x86 and ARM nodes alike and installs in a
    fraction of the time. The control plane's client stays grpcio; both speak gRPC over
    HTTP/2 and TLS.

    Attributes:
        port: The port actually bound (useful with port 0).
        service: The servicer (tests read its engine and store).
    """

    def __init__(
        self, server: Server, port: int, service: AgentService, vpn: VpnService | None = None
    ) -> None:
        self._server = server
        self.port = port
        self.service = service
        self.vpn = vpn
        # Tunnels applied before a restart or reboot come back without waiting for a deploy.
        self._vpn_watch = asyncio.create_task(vpn.watch(), name="agent-vpn") if vpn else None
        # Rollouts an earlier run left half done are undone as soon as the engine answers.
        self._recovery = asyncio.create_task(service.recover(), name="agent-recovery")
        # Probes health-checked containers for as long as the agent serves.
        self._monitor = asyncio.create_task(service.monitor.run(), name="agent-health-monitor")

    @classmethod
    async def start(
        cls, config: AgentConfig, listen: str, *, docker_client: Any = None
    ) -> AgentServer:
        """Binds ``listen`` (host:port) with mTLS and starts serving.

        Raises:
            ConfigError: Bad certificate, or the address is taken. An engine that does not
                answer is reported by Health (``docker_ok``) and by the calls that need it.
        """
        identity = config.check()
        client = docker_client if docker_client is not None else _docker_client_soon()
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
        vpn = VpnService(wireguard=WireGuard(config.state_dir), policy=service.policy)
        server = Server([service, vpn])
        sock = _bind(listen)
        try:
            await server.start(sock=sock, ssl=server_tls_context(config))
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise ConfigError(f"cannot serve on {listen}: {exc}") from exc
        return cls(server, sock.getsockname()[1], service, vpn)

    async def stop(self, grace: float | None = 2.0) -> None:
        """Stops serving; converges under way get ``grace`` seconds to finish."""
        running = set(self.service.background)
        if running and grace:
            await asyncio.wait(running, timeout=grace)
        self._recovery.cancel()
        self._monitor.cancel()
        await asyncio.gather(self._recovery, self._monitor, return_exceptions=True)
        if self._vpn_watch is not None:
            await stop_watch(self._vpn_watch)
        self._server.close()
        await self._server.wait_closed()

    async def wait(self) -> None:
        """Blocks until the server is closed."""
        await self._server.wait_closed()


def _docker_client_soon() -> Future[Any]:
    """``docker.from_env()``, made on a thread while the server starts.

    Importing the SDK (requests, urllib3) is 40 % of the agent's start-up; a first install
    waits for the agent's Health, which no longer waits for it (see Engine.version).
    """
    future: Future[Any] = Future()

    def load() -> None:
        try:
            import docker

            future.set_result(docker.from_env())
        except BaseException as exc:  # handed to whoever uses the engine first
            future.set_exception(exc)

    threading.Thread(target=load, name="docker-sdk", daemon=True).start()
    return future


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(100)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {listen}: {exc}") from exc
    sock.setblocking(False)
    return sock


def server_tls_context(config: AgentConfig) -> ssl.SSLContext:
    """TLS for the agent: its certificate, and clients of the kombify CA only (mutual TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_key_pair(context, config.cert_pem, config.key_pem)
    context.load_verify_locations(cadata=config.ca_pem.decode("ascii"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])  # gRPC clients insist on HTTP/2 by ALPN
    return context
