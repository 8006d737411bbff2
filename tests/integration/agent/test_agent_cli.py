"""``python -m kombify.agent`` serves with the certificates given on the command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from kombify.agent.client import AgentClient
from kombify.errors import AgentError
from tests.support.agent import Pki
from tests.support.ports import free_port


@pytest.mark.docker
async def test_console_entry_serves_and_stops_on_sigterm(pki: Pki, tmp_path: Path) -> None:
    node = "node-cli.test.kombify"
    cert, key, ca = pki.ca.issue_server(node, ip_addresses=["127.0.0.1"]).write(tmp_path, "agent")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kombify.agent",
        f"--listen=127.0.0.1:{port}",
        f"--cert={cert}",
        f"--key={key}",
        f"--ca={ca}",
        f"--state-dir={tmp_path / 'state'}",
        "--container-prefix=kt-cli-",
    )
    try:
        client = AgentClient.with_cert(f"127.0.0.1:{port}", node, pki.control_plane, timeout=5)
        async with client:
            for _ in range(100):  # the interpreter needs a moment to import grpc and docker
                try:
                    reply = await client.health()
                    break
                except AgentError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the agent did not answer within 10 s")
        assert reply.node_identity == node
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
