"""NodeSession.port_open: how the agent install waits for the agent's port, on a real node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget
from tests.integration.sim.conftest import pinned_sim_node

pytestmark = pytest.mark.docker


@pytest.fixture
def node(node_image: str) -> Iterator[NodeTarget]:
    with pinned_sim_node("kt-port", []) as target:
        yield target


def test_a_listening_port_is_open_and_a_closed_one_is_not(node: NodeTarget) -> None:
    async def probe() -> tuple[bool, bool, bool]:
        async with node_session(node) as session:
            listening = await session.port_open(22)  # the node's sshd
            closed = await session.port_open(7443)  # no agent installed
            await session.run("nohup python3 -m http.server 7443 >/dev/null 2>&1 &")
            for _ in range(100):
                if await session.port_open(7443):
                    return listening, closed, True
                await asyncio.sleep(0.05)
            return listening, closed, False

    assert asyncio.run(probe()) == (True, False, True)
