"""AgentClient: how the control plane talks to a node agent.

The client presents the control plane's certificate and trusts only the kombify CA. It dials
with the node identity as the expected TLS name (``grpc.ssl_target_name_override``), so the
handshake fails unless the agent's certificate names the node that was meant; ``verify_peer``
makes that failure readable by fetching the agent's certificate and naming whom it belongs to.

Given the installation's revocation list, the client also refuses an agent whose certificate
kombify revoked (at ``destroy``): before its first RPC it fetches the agent's certificate with
``verify_peer`` and looks its serial up. gRPC's Python API exposes neither the peer's
certificate on the client side nor a CRL option, hence the separate handshake; it goes to the
same address (through the same SSH tunnel) a moment before the channel's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from cryptography import x509

from kombify.agent.proto import agent_stub, pb, vpn_stub
from kombify.errors import AgentError, CertificateRevokedError
from kombify.pki.certs import IssuedCert, cert_identity
from kombify.pki.revocation import RevocationList

CHUNK = 1024 * 1024
MAX_MESSAGE = 16 * 1024 * 1024
T = TypeVar("T")


def _next_or_none(parts: Iterator[bytes]) -> bytes | None:
    return next(parts, None)


@functools.lru_cache(maxsize=8)
def _peer_check_context(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> ssl.SSLContext:
    """The TLS client context of :meth:`AgentClient.verify_peer`, made once per certificate.

    Making it loads the CA and the client certificate (from files: ``ssl`` reads a client
    certificate from files only), which cost more than the handshake; a deploy checks a
    dozen agents or more with the same certificate. A renewed certificate is a new key.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem.decode())
    context.check_hostname = False  # compared by the caller, with a message naming both sides
    context.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory() as tmp:
        # The directory is private (0700).
        cert_file, key_file = Path(tmp, "c.crt"), Path(tmp, "c.key")
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


class AgentClient:
    """A connection to one node's agent.

    Use as ``async with AgentClient(...) as agent:``; every method raises
    :class:`~kombify.errors.AgentError` (naming node, RPC and gRPC status) on failure.

    Args:
        address: ``host:port`` of the agent.
        node_identity: The identity the agent's certificate must carry (CN / DNS SAN).
        cert_pem: The control plane's client certificate.
        key_pem: Its private key.
        ca_pem: The kombify CA certificate.
        timeout: Default deadline, in seconds, of unary calls.
        revocations: The installation's revocation list; when given, an agent presenting a
            revoked certificate is refused before any RPC reaches it.
    """

    def __init__(
        self,
        address: str,
        *,
        node_identity: str,
        cert_pem: bytes,
        key_pem: bytes,
        ca_pem: bytes,
        timeout: float = 30.0,
        revocations: RevocationList | None = None,
    ) -> None:
        self.address = address
        self.node_identity = node_identity
        self.timeout = timeout
        self._revocations = revocations
        self._peer_checked = revocations is None
        self._cert_pem, self._key_pem, self._ca_pem = cert_pem, key_pem, ca_pem
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
        )
        self._channel = grpc.aio.secure_channel(
            address,
            credentials,
            options=[
                ("grpc.ssl_target_name_override", node_identity),
                ("grpc.default_authority", node_identity),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ],
        )
        self._stub = agent_stub(self._channel)
        self._vpn = vpn_stub(self._channel)

    @classmethod
    def with_cert(
        cls, address: str, node_identity: str, cert: IssuedCert, **kw: Any
    ) -> AgentClient:
        """A client using an issued client certificate (its CA becomes the trust root)."""
        return cls(
            address,
            node_identity=node_identity,
            cert_pem=cert.cert_pem,
            key_pem=cert.key_pem,
            ca_pem=cert.ca_pem,
            **kw,
        )

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    def _error(self, rpc: str, exc: grpc.aio.AioRpcError) -> AgentError:
        code = exc.code().name if exc.code() else "UNKNOWN"
        return AgentError(
            f"agent `{self.node_identity}` at {self.address}: {rpc} failed ({code}): "
            f"{exc.details()}"
        )

    async def _check_peer(self) -> None:
        # Once per client: its channel stays connected to the agent that was checked.
        if not self._peer_checked:
            await self.verify_peer()
            self._peer_checked = True

    async def _unary(self, rpc: str, start: Callable[[], Awaitable[T]]) -> T:
        # A gRPC call is sent as soon as it is made: the peer is checked before ``start``.
        await self._check_peer()
        try:
            return await start()
        except grpc.aio.AioRpcError as exc:
            raise self._error(rpc, exc) from exc

    async def _stream(self, rpc: str, start: Callable[[], Any]) -> AsyncIterator[Any]:
        await self._check_peer()
        call = start()
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as exc:
            raise self._error(rpc, exc) from exc
        finally:
            call.cancel()

    # ---- RPCs -------------------------------------------------------------------------------

    async def health(self) -> pb.HealthResponse:
        """Agent and engine liveness; also checks the agent reports the expected identity."""
        reply: pb.HealthResponse = await self._unary(
            "Health", lambda: self._stub.Health(pb.HealthRequest(), timeout=self.timeout)
        )
        if reply.node_identity != self.node_identity:
            raise AgentError(
                f"agent at {self.address} says it is `{reply.node_identity}`, "
                f"expected `{self.node_identity}`"
            )
        return reply

    async def apply_services(self, manifest: pb.Manifest) -> AsyncIterator[pb.ApplyEvent]:
        """Streams the progress of converging the node to ``manifest``; the last is DONE."""
        request = pb.ApplyServicesRequest(manifest=manifest)
        async for item in self._stream("ApplyServices", lambda: self._stub.ApplyServices(request)):
            yield item

    async def apply(
        self, manifest: pb.Manifest, on_event: Callable[[pb.ApplyEvent], None] | None = None
    ) -> pb.ApplyResult:
        """Converges the node to ``manifest`` and returns the result of the DONE event.

        Args:
            manifest: The services the node should run.
            on_event: Called with every progress event (for live output).
        """
        async for item in self.apply_services(manifest):
            if on_event is not None:
                on_event(item)
            if item.kind == pb.ApplyEvent.DONE:
                return item.result
        raise AgentError(f"agent `{self.node_identity}`: ApplyServices ended without a result")

    async def list_services(self, *, probe_health: bool = False) -> pb.ListServicesResponse:
        """Every managed container with its state and health."""
        request = pb.ListServicesRequest(probe_health=probe_health)
        reply: pb.ListServicesResponse = await self._unary(
            "ListServices", lambda: self._stub.ListServices(request, timeout=self.timeout)
        )
        return reply

    async def restart_service(self, service: str) -> pb.RestartServiceResponse:
        """Restarts a service's containers and waits for their health check."""
        request = pb.RestartServiceRequest(service=service)
        reply: pb.RestartServiceResponse = await self._unary(
            "RestartService", lambda: self._stub.RestartService(request, timeout=self.timeout * 4)
        )
        return reply

    async def watch_services(
        self, *, keepalive_seconds: int = 5
    ) -> AsyncIterator[pb.ServiceReport]:
        """Reports of the node's problems: at once, on every change, and as keep-alives.

        Runs until the caller stops iterating (close the iterator, e.g. with
        ``contextlib.aclosing``, to end the call at once). A report with ``keepalive`` set
        repeats the last picture: it only says the node still answers.

        Args:
            keepalive_seconds: Seconds between keep-alive reports while nothing changes.
        """
        request = pb.WatchServicesRequest(keepalive_seconds=keepalive_seconds)
        async for item in self._stream("WatchServices", lambda: self._stub.WatchServices(request)):
            yield item

    async def repair_service(
        self, service: str, *, recreate: bool = False
    ) -> pb.RepairServiceResponse:
        """Brings one service back to its spec and checks its health.

        Args:
            service: The service, as named in the manifest in effect.
            recreate: Remove and create its containers anew (drift repair) instead of the
                least that mends it (create, start, restart, then recreate if still unhealthy).
        """
        action = pb.REPAIR_ACTION_RECREATE if recreate else pb.REPAIR_ACTION_AUTO
        request = pb.RepairServiceRequest(service=service, action=action)
        # A restart, a health wait, a recreate and another health wait: the longest unary call.
        reply: pb.RepairServiceResponse = await self._unary(
            "RepairService", lambda: self._stub.RepairService(request, timeout=self.timeout * 6)
        )
        return reply

    async def inspect_drift(self) -> pb.DriftReport:
        """What runs on the node beside or against the manifest in effect."""
        reply: pb.DriftReport = await self._unary(
            "InspectDrift",
            lambda: self._stub.InspectDrift(pb.InspectDriftRequest(), timeout=self.timeout),
        )
        return reply

    async def stream_logs(
        self, service: str, *, follow: bool = False, tail: int = 0, since: str = ""
    ) -> AsyncIterator[pb.LogLine]:
        """Log lines of a service; with ``follow`` until the caller stops iterating.

        Args:
            service: The service.
            follow: Go on with new lines.
            tail: Lines from the end of each container's log first (0: all).
            since: Only lines written at or after this RFC 3339 time.
        """
        request = pb.StreamLogsRequest(service=service, follow=follow, tail=tail, since=since)
        async for item in self._stream("StreamLogs", lambda: self._stub.StreamLogs(request)):
            yield item

    async def stop_service(self, service: str) -> pb.StopServiceResponse:
        """Stops a service's containers and holds it stopped (its owner asked)."""
        request = pb.StopServiceRequest(service=service)
        # Each container is allowed its stop grace period (10 s unless the spec says more).
        reply: pb.StopServiceResponse = await self._unary(
            "StopService", lambda: self._stub.StopService(request, timeout=self.timeout * 4)
        )
        return reply

    async def start_service(self, service: str) -> pb.StartServiceResponse:
        """Starts a service's containers again, clears the hold and checks their health."""
        request = pb.StartServiceRequest(service=service)
        reply: pb.StartServiceResponse = await self._unary(
            "StartService", lambda: self._stub.StartService(request, timeout=self.timeout * 4)
        )
        return reply

    async def exec(
        self, inputs: AsyncIterator[pb.ExecInput], *, timeout: float | None = None
    ) -> AsyncIterator[pb.ExecOutput]:
        """Runs a command in a service's container: ``inputs`` starts with ExecInput.start.

        Yields the agent's messages: the container first, output chunks, then the exit code.
        """
        async for item in self._stream("Exec", lambda: self._stub.Exec(inputs, timeout=timeout)):
            yield item

    async def put_file(self, path: str, data: bytes, *, mode: int = 0o644) -> pb.PutFileResponse:
        """Writes ``data`` to ``path`` on the node, atomically, with ``mode``."""

        async def chunks() -> AsyncIterator[pb.FileChunk]:
            yield pb.FileChunk(path=path, mode=mode, data=data[:CHUNK])
            for start in range(CHUNK, len(data), CHUNK):
                yield pb.FileChunk(data=data[start : start + CHUNK])

        reply: pb.PutFileResponse = await self._unary(
            "PutFile", lambda: self._stub.PutFile(chunks(), timeout=self.timeout)
        )
        return reply

    async def load_image(self, tarball: Iterable[bytes] | AsyncIterable[bytes]) -> list[str]:
        """Ships a ``docker save`` tarball (e.g. ``docker_client.images.get(x).save()``)."""

        async def chunks() -> AsyncIterator[pb.ImageChunk]:
            if isinstance(tarball, AsyncIterable):
                async for part in tarball:
                    yield pb.ImageChunk(data=part)
                return
            # Reading from the docker SDK blocks; one chunk at a time off the event loop.
            parts = iter(tarball)
            while True:
                block = await asyncio.to_thread(_next_or_none, parts)
                if block is None:
                    return
                for start in range(0, len(block), CHUNK):
                    yield pb.ImageChunk(data=block[start : start + CHUNK])

        reply: pb.LoadImageResponse = await self._unary(
            "LoadImage", lambda: self._stub.LoadImage(chunks())
        )
        return list(reply.images)

    async def apply_routes(self, request: pb.ApplyRoutesRequest) -> pb.ApplyRoutesResponse:
        """Loads a whole config into the node's reverse proxy (kombify.agent.routes)."""
        # The agent waits up to 30 s for a proxy this rollout just started to open its socket.
        reply: pb.ApplyRoutesResponse = await self._unary(
            "ApplyRoutes", lambda: self._stub.ApplyRoutes(request, timeout=self.timeout + 60)
        )
        return reply

    # ---- identity -------------------------------------------------------------------------

    async def verify_peer(self) -> x509.Certificate:
        """Fetches the agent's certificate and checks it is the CA's and names the node.

        gRPC enforces the same on every connection; this turns its opaque "handshake failed"
        into an error that says whose certificate the agent presented.

        Raises:
            AgentError: Unreachable, not signed by the kombify CA, or another node's identity.
            CertificateRevokedError: The certificate is on the revocation list.
        """
        host, _, port = self.address.rpartition(":")
        context = _peer_check_context(self._cert_pem, self._key_pem, self._ca_pem)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port), ssl=context),
                timeout=self.timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise AgentError(
                f"agent `{self.node_identity}` at {self.address}: TLS handshake failed: {exc}"
            ) from exc
        del reader
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), timeout=2)
        cert = x509.load_der_x509_certificate(der)
        ident = cert_identity(cert)
        if not ident.matches(self.node_identity):
            raise AgentError(
                f"agent at {self.address} presented the certificate of `{ident.common_name}`, "
                f"not of `{self.node_identity}`: refusing to talk to it"
            )
        revoked = self._revocations.lookup(cert.serial_number) if self._revocations else None
        if revoked is not None:
            raise CertificateRevokedError(
                f"agent `{self.node_identity}` at {self.address}: its {revoked.describe()}; "
                "refusing to talk to it (a new deploy of the stack gives the node a new one)"
            )
        return cert

    # ---- Docker Swarm ------------------------------------------------------------------------

    async def swarm_status(self) -> pb.SwarmStatusResponse:
        """The node's swarm state; on a manager also the nodes and the managers' quorum."""
        reply: pb.SwarmStatusResponse = await self._unary(
            "SwarmStatus",
            lambda: self._stub.SwarmStatus(pb.SwarmStatusRequest(), timeout=self.timeout),
        )
        return reply

    async def swarm_init(self, advertise_addr: str = "") -> pb.SwarmStatusResponse:
        """Starts a swarm with this node as its first manager (a member stays as it is)."""
        request = pb.SwarmInitRequest(advertise_addr=advertise_addr)
        reply: pb.SwarmStatusResponse = await self._unary(
            "SwarmInit", lambda: self._stub.SwarmInit(request, timeout=self.timeout * 2)
        )
        return reply

    async def swarm_join_tokens(self) -> pb.SwarmJoinTokensResponse:
        """The join tokens of the manager's swarm. Secret: use them, never log them."""
        reply: pb.SwarmJoinTokensResponse = await self._unary(
            "SwarmJoinTokens",
            lambda: self._stub.SwarmJoinTokens(pb.SwarmJoinTokensRequest(), timeout=self.timeout),
        )
        return reply

    async def swarm_join(
        self, remote_addr: str, token: str, *, advertise_addr: str = ""
    ) -> pb.SwarmStatusResponse:
        """Joins the swarm of the manager at ``remote_addr`` (a member stays as it is)."""
        request = pb.SwarmJoinRequest(
            remote_addr=remote_addr, token=token, advertise_addr=advertise_addr
        )
        reply: pb.SwarmStatusResponse = await self._unary(
            "SwarmJoin", lambda: self._stub.SwarmJoin(request, timeout=self.timeout * 2)
        )
        return reply

    async def swarm_leave(self, *, force: bool = False) -> pb.SwarmStatusResponse:
        """Leaves the swarm (a node in none stays as it is)."""
        request = pb.SwarmLeaveRequest(force=force)
        reply: pb.SwarmStatusResponse = await self._unary(
            "SwarmLeave", lambda: self._stub.SwarmLeave(request, timeout=self.timeout * 2)
        )
        return reply

    async def swarm_update_node(
        self,
        node_id: str,
        *,
        role: str = "",
        labels: dict[str, str] | None = None,
        availability: str = "",
    ) -> pb.SwarmNode:
        """Sets a swarm node's role, kombify's labels and availability (on a manager)."""
        request = pb.SwarmUpdateNodeRequest(
            node_id=node_id, role=role, labels=labels or {}, availability=availability
        )
        reply: pb.SwarmNode = await self._unary(
            "SwarmUpdateNode", lambda: self._stub.SwarmUpdateNode(request, timeout=self.timeout)
        )
        return reply

    async def swarm_remove_node(self, node_id: str, *, force: bool = False) -> None:
        """Removes a node from the swarm's list (on a manager)."""
        request = pb.SwarmRemoveNodeRequest(node_id=node_id, force=force)
        await self._unary(
            "SwarmRemoveNode", lambda: self._stub.SwarmRemoveNode(request, timeout=self.timeout)
        )

    async def apply_swarm(
        self,
        manifest: pb.SwarmManifest,
        on_event: Callable[[pb.ApplyEvent], None] | None = None,
    ) -> pb.ApplyResult:
        """Converges a stack's Swarm services (on a manager); the result of the DONE event."""
        request = pb.ApplySwarmServicesRequest(manifest=manifest)
        stream = self._stream("ApplySwarmServices", lambda: self._stub.ApplySwarmServices(request))
        async for item in stream:
            if on_event is not None:
                on_event(item)
            if item.kind == pb.ApplyEvent.DONE:
                return item.result  # type: ignore[no-any-return]
        raise AgentError(f"agent `{self.node_identity}`: ApplySwarmServices ended without a result")

    async def list_swarm_services(self, stack: str) -> pb.ListSwarmServicesResponse:
        """A stack's Swarm services as they run (on a manager)."""
        request = pb.ListSwarmServicesRequest(stack=stack)
        reply: pb.ListSwarmServicesResponse = await self._unary(
            "ListSwarmServices",
            lambda: self._stub.ListSwarmServices(request, timeout=self.timeout),
        )
        return reply

    async def remove_swarm_services(self, stack: str, *, remove_network: bool = False) -> list[str]:
        """Removes a stack's Swarm services (and the overlay network); their names."""
        request = pb.RemoveSwarmServicesRequest(stack=stack, remove_network=remove_network)
        reply: pb.RemoveSwarmServicesResponse = await self._unary(
            "RemoveSwarmServices",
            lambda: self._stub.RemoveSwarmServices(request, timeout=self.timeout * 2),
        )
        return list(reply.removed)

    # ---- WireGuard mesh (the Vpn service) -------------------------------------------------

    async def vpn_key(self, interface: str) -> pb.VpnKeyResponse:
        """The node's WireGuard public key for ``interface`` (made on first ask) and its
        IPv4 addresses per interface."""
        request = pb.VpnKeyRequest(interface=interface)
        return await self._unary("VpnKey", lambda: self._vpn.VpnKey(request, timeout=self.timeout))

    async def apply_vpn(self, request: pb.ApplyVpnRequest) -> pb.ApplyVpnResponse:
        """Bring one WireGuard interface of the node to ``request`` (idempotent)."""
        return await self._unary(
            "ApplyVpn", lambda: self._vpn.ApplyVpn(request, timeout=self.timeout)
        )
