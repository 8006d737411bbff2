"""``python -m kombify.agent`` serves with the certificates given on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.agent import Pki, agent_process
from tests.support.ports import free_port


@pytest.mark.docker
async def test_console_entry_serves_and_stops_on_sigterm(pki: Pki, tmp_path: Path) -> None:
    node = "node-cli.test.kombify"
    async with agent_process(pki, tmp_path, node=node, port=free_port()) as reply:
        assert reply.node_identity == node
