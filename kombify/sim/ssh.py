"""Waiting for nodes' sshd with a real SSH handshake (asyncssh), over loopback only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import asyncssh

from kombify.errors import SshError
from kombify.sim.models import SshEndpoint

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_POLL = 0.05


def _check_loopback(endpoint: SshEndpoint) -> None:
    if endpoint.host not in _LOOPBACK:
        # Nodes are reached only through ports published on loopback, never container IPs.
        raise SshError(f"refusing to connect to `{endpoint.host}`: nodes are reached on loopback")


async def handshake(endpoint: SshEndpoint, *, timeout: float = 5.0) -> None:
    """One full SSH handshake and key login, then disconnect.

    Raises:
        SshError: The handshake or the login failed.
    """
    _check_loopback(endpoint)
    try:
        async with asyncio.timeout(timeout):
            connection = await asyncssh.connect(
                endpoint.host,
                endpoint.port,
                username=endpoint.user,
                client_keys=[endpoint.identity_file],
                known_hosts=None,  # fresh unique host keys per node; trust is the loopback port
                agent_path=None,
                config=[],
                connect_timeout=timeout,
            )
            connection.close()
            await connection.wait_closed()
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise SshError(f"ssh to {endpoint.host}:{endpoint.port} failed: {exc}") from exc


async def wait_for_ssh(endpoint: SshEndpoint, *, timeout: float = 60.0) -> float:
    """Retry :func:`handshake` until it succeeds; the seconds it took.

    Raises:
        SshError: No successful handshake within ``timeout``.
    """
    started = time.monotonic()
    deadline = started + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            await handshake(endpoint, timeout=max(min(5.0, deadline - time.monotonic()), 0.1))
            return time.monotonic() - started
        except SshError as exc:
            last = exc
            await asyncio.sleep(_POLL)
    raise SshError(
        f"sshd on {endpoint.host}:{endpoint.port} did not answer within {timeout:.0f} s: {last}"
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
