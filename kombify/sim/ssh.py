"""Waiting for nodes' sshd with a real SSH handshake (asyncssh), over loopback only."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncssh

from kombify.errors import SshError
from kombify.sim.models import SshEndpoint

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
# Between probes of a port whose sshd is not up yet. A probe is one TCP connect that Docker's
# proxy accepts at once and closes while nothing listens inside, so probing often is cheap.
_POLL = 0.02
_BANNER = b"SSH-"


def _check_loopback(endpoint: SshEndpoint) -> None:
    if endpoint.host not in _LOOPBACK:
        # Nodes are reached only through ports published on loopback, never container IPs.
        raise SshError(f"refusing to connect to `{endpoint.host}`: nodes are reached on loopback")


def _client_key(path: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise SshError(f"cannot read the simulation's key `{path}`: {exc}") from exc


@dataclass(frozen=True)
class SshLogin:
    """A completed login: how long the node took to answer, and the host key it presented.

    Attributes:
        seconds: From the start of the wait until the login completed.
        host_key: The node's SSH host key as an OpenSSH public key line.
    """

    seconds: float
    host_key: str


async def handshake(
    endpoint: SshEndpoint,
    *,
    timeout: float = 5.0,
    sock: socket.socket | None = None,
    client_key: asyncssh.SSHKey | None = None,
) -> str:
    """One full SSH handshake and key login, then disconnect; the host key the node presented
    (an OpenSSH public key line).

    Args:
        endpoint: The node.
        timeout: Seconds for the whole exchange.
        sock: An already connected socket to ``endpoint`` to talk over (closed afterwards).
        client_key: The private key of ``endpoint.identity_file``, when already loaded.

    Raises:
        SshError: The handshake or the login failed.
    """
    _check_loopback(endpoint)
    options: dict[str, Any] = {
        "username": endpoint.user,
        "client_keys": [client_key or _client_key(endpoint.identity_file)],
        "known_hosts": None,  # fresh unique host keys per node; trust is the loopback port
        "agent_path": None,
        "config": [],
        "connect_timeout": timeout,
    }
    try:
        async with asyncio.timeout(timeout):
            if sock is None:
                connection = await asyncssh.connect(endpoint.host, endpoint.port, **options)
            else:
                connection = await asyncssh.connect(sock=sock, **options)
            presented = connection.get_server_host_key()
            connection.close()
            await connection.wait_closed()
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise SshError(f"ssh to {endpoint.host}:{endpoint.port} failed: {exc}") from exc
    finally:
        if sock is not None:
            sock.close()  # a no-op when asyncssh's transport closed it already
    if presented is None:
        raise SshError(f"{endpoint.host}:{endpoint.port} presented no SSH host key")
    return bytes(presented.export_public_key("openssh")).decode().strip()


async def _banner_socket(
    address: tuple[int, Any], *, timeout: float
) -> socket.socket | None:
    """A socket connected to ``address`` on which an SSH banner has arrived, unread; or None.

    Looking at the banner without reading it (``MSG_PEEK``) lets the handshake run over the
    same connection, so a node costs sshd one connection, not a probe plus a login.
    """
    loop = asyncio.get_running_loop()
    family, sockaddr = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, sockaddr)
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(sock.fileno(), _resolve, readable)
            try:
                await readable
            finally:
                loop.remove_reader(sock.fileno())
        head = sock.recv(len(_BANNER), socket.MSG_PEEK)
    except (OSError, TimeoutError):
        sock.close()
        return None
    if head and (head.startswith(_BANNER) or _BANNER.startswith(head)):
        return sock
    sock.close()  # empty: the proxy closed it, nothing listens yet
    return None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def wait_for_ssh(endpoint: SshEndpoint, *, timeout: float = 60.0) -> float:
    """Wait until the node completes a full SSH handshake with key login; the seconds it took.

    Raises:
        SshError: As :func:`wait_for_login`.
    """
    return (await wait_for_login(endpoint, timeout=timeout)).seconds


async def wait_for_login(endpoint: SshEndpoint, *, timeout: float = 60.0) -> SshLogin:
    """Wait until the node completes a full SSH handshake with key login; the seconds it took
    and the host key it presented (so that a caller pinning it needs no second handshake).

    The port is probed until sshd's banner arrives; the handshake then runs over that
    connection, and is retried (on a new one) until it succeeds.

    Raises:
        SshError: No successful handshake within ``timeout``, or the key cannot be read.
    """
    _check_loopback(endpoint)
    started = time.monotonic()
    deadline = started + timeout
    key = _client_key(endpoint.identity_file)
    loop = asyncio.get_running_loop()
    try:
        family, _, _, _, sockaddr = (
            await loop.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        )[0]
    except (OSError, IndexError) as exc:
        raise SshError(f"cannot resolve `{endpoint.host}`: {exc}") from exc
    last: str = "no SSH banner yet"
    while (remaining := deadline - time.monotonic()) > 0:
        sock = await _banner_socket((family, sockaddr), timeout=max(min(5.0, remaining), 0.1))
        if sock is not None:
            try:
                host_key = await handshake(
                    endpoint,
                    timeout=max(min(10.0, deadline - time.monotonic()), 0.1),
                    sock=sock,
                    client_key=key,
                )
                return SshLogin(time.monotonic() - started, host_key)
            except SshError as exc:
                last = str(exc)
        await asyncio.sleep(_POLL)
    raise SshError(
        f"sshd on {endpoint.host}:{endpoint.port} did not answer within {timeout:g} s: {last}"
    )


async def wait_all(endpoints: Sequence[SshEndpoint], *, timeout: float = 60.0) -> list[float]:
    """:func:`wait_for_ssh` for every endpoint at once; seconds each took.

    Raises:
        SshError: Any node did not answer in time.
    """
    return list(
        await asyncio.gather(*(wait_for_ssh(endpoint, timeout=timeout) for endpoint in endpoints))
    )


async def run(endpoint: SshEndpoint, command: str, *, timeout: float = 60.0) -> str:
    """Run ``command`` on the node and return its stdout.

    Raises:
        SshError: Connection failed or the command exited non-zero.
    """
    _check_loopback(endpoint)
    try:
        async with asyncio.timeout(timeout), asyncssh.connect(
            endpoint.host,
            endpoint.port,
            username=endpoint.user,
            client_keys=[endpoint.identity_file],
            known_hosts=None,
            agent_path=None,
            config=[],
        ) as connection:
            result = await connection.run(command, check=False)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise SshError(f"ssh to {endpoint.host}:{endpoint.port} failed: {exc}") from exc
    if result.exit_status != 0:
        raise SshError(
            f"`{command}` exited {result.exit_status} on port {endpoint.port}: "
            f"{str(result.stderr).strip()[-500:]}"
        )
    return str(result.stdout)
