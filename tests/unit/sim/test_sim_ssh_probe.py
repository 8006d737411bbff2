"""The SSH wait's port probe, against small TCP servers on loopback (no Docker, no sshd)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kombify.errors import SshError
from kombify.sim.keys import ensure_keys
from kombify.sim.models import SshEndpoint
from kombify.sim.ssh import _banner_socket, wait_for_ssh

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> AsyncIterator[tuple[int, socket.AddressFamily]]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], socket.AF_INET


@pytest.fixture
async def banner_server() -> AsyncIterator[tuple[int, socket.AddressFamily]]:
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 test\r\n")
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    async for served in _serve(handler):
        yield served


@pytest.fixture
async def closing_server() -> AsyncIterator[tuple[int, socket.AddressFamily]]:
    # What Docker's port proxy does while nothing listens inside the container yet.
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async for served in _serve(handler):
        yield served


async def test_probe_returns_the_socket_with_the_banner_still_unread(
    banner_server: tuple[int, socket.AddressFamily],
) -> None:
    port, family = banner_server
    sock = await _banner_socket((family, ("127.0.0.1", port)), timeout=5)
    assert sock is not None
    try:
        sock.setblocking(True)
        # The handshake that follows reads the banner itself: the probe only peeked.
        assert sock.recv(8) == b"SSH-2.0-"
    finally:
        sock.close()


async def test_probe_gives_none_when_the_proxy_closes_at_once(
    closing_server: tuple[int, socket.AddressFamily],
) -> None:
    port, family = closing_server
    assert await _banner_socket((family, ("127.0.0.1", port)), timeout=5) is None


async def test_wait_gives_up_with_the_last_reason(
    closing_server: tuple[int, socket.AddressFamily], kombify_home: Path
) -> None:
    port, _ = closing_server
    keys = ensure_keys("kt-probe")
    endpoint = SshEndpoint("127.0.0.1", port, "kombify", str(keys.private_key), "")
    with pytest.raises(SshError, match=r"did not answer within 0.5 s: no SSH banner yet"):
        await wait_for_ssh(endpoint, timeout=0.5)


async def test_wait_refuses_addresses_other_than_loopback(kombify_home: Path) -> None:
    keys = ensure_keys("kt-probe")
    endpoint = SshEndpoint("10.0.0.1", 22, "kombify", str(keys.private_key), "")
    with pytest.raises(SshError, match="nodes are reached on loopback"):
        await wait_for_ssh(endpoint, timeout=1)
