"""KombiSim's stand-in for the internet: vps nodes reachable, home nodes behind NAT.

A simulation that gains a vps gets the internet network; its home node is re-created onto it
(kept disks and host key, as any converge) behind NAT: it reaches the vps, the vps reaches
none of its addresses, and that still holds after the node restarts. Its SSH, published on
loopback through the engine, still answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kombify.settings import get_settings
from kombify.sim import labels
from kombify.sim.engine import SimEngine
from kombify.sim.models import NodeSpec, SimulationSpec
from kombify.sim.ssh import run, wait_all
from tests.integration.sim.conftest import unique_name

pytestmark = pytest.mark.docker


@pytest.fixture
def name(engine: SimEngine, module_home: Path) -> Iterator[str]:
    sim = unique_name("kt-net")
    mp = pytest.MonkeyPatch()
    mp.setenv("KOMBIFY_HOME", str(module_home))
    get_settings.cache_clear()
    try:
        yield sim
    finally:
        engine.delete(sim)
        mp.undo()
        get_settings.cache_clear()


def _networks(engine: SimEngine, sim: str, node: str) -> dict[str, str]:
    attrs = engine.api.inspect_container(labels.container_name(sim, node))
    return {k: v["IPAddress"] for k, v in attrs["NetworkSettings"]["Networks"].items()}


# bash's /dev/tcp: a TCP connect (sshd listens on 22 on every node), 2 s at most.
def _connect(address: str) -> str:
    return f"timeout 2 bash -c 'echo > /dev/tcp/{address}/22' && echo open || echo closed"


async def test_a_home_node_joins_the_internet_behind_nat(engine: SimEngine, name: str) -> None:
    home = NodeSpec(name="home", memory_mb=256)
    engine.create(SimulationSpec(name=name, nodes=[home]))
    assert set(_networks(engine, name, "home")) == {labels.lan_network(name)}

    lines: list[str] = []
    info = engine.create(
        SimulationSpec(name=name, nodes=[home, NodeSpec(name="vps", type="vps", memory_mb=256)]),
        converge=True,
        report=lines.append,
    )
    assert lines == [
        "node `home` re-created to join the simulated internet behind NAT "
        "(its disks and SSH host key are kept)"
    ]
    online = labels.internet_network(name)
    assert set(_networks(engine, name, "home")) == {labels.lan_network(name), online}
    assert set(_networks(engine, name, "vps")) == {labels.vps_network(name, "vps"), online}
    ssh = {n.name: n.ssh for n in info.nodes}
    await wait_all([s for s in ssh.values() if s], timeout=120)

    for restarted in (False, True):
        if restarted:  # the NAT rule is the node's boot's doing: it holds after a restart
            info = engine.restart(name)
            ssh = {n.name: n.ssh for n in info.nodes}
            await wait_all([s for s in ssh.values() if s], timeout=120)
        home_ips, vps_ips = _networks(engine, name, "home"), _networks(engine, name, "vps")
        assert ssh["home"] is not None and ssh["vps"] is not None
        # Outbound from home: yes.
        assert (await run(ssh["home"], _connect(vps_ips[online]))).strip() == "open"
        # Inbound to home from the internet: no; its LAN is not routed from there at all.
        for address in home_ips.values():
            assert (await run(ssh["vps"], _connect(address))).strip() == "closed", address
        # Without a converge, nothing changes.
        again: list[str] = []
        engine.create(
            SimulationSpec(
                name=name, nodes=[home, NodeSpec(name="vps", type="vps", memory_mb=256)]
            ),
            converge=True,
            report=again.append,
        )
        assert again == []
