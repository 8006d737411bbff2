"""What a node does at boot: mDNS on the LAN for `local` nodes only, dockerd at normal priority."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from kombify.settings import get_settings
from kombify.sim.bringup import create_and_wait
from kombify.sim.engine import SimEngine
from kombify.sim.models import NodeSpec, SimulationInfo, SimulationSpec, SshEndpoint
from kombify.sim.ssh import run
from tests.integration.sim.conftest import unique_name

pytestmark = pytest.mark.docker

# Resolve through mDNS only (`-s`): Docker's embedded DNS must not be what answers.
MDNS_LOOKUP = "getent -s mdns4_minimal hosts {host}"


@pytest.fixture(scope="module")
def lab(engine: SimEngine, module_home: Path) -> Iterator[SimulationInfo]:
    """Two `local` nodes on the LAN and one `vps` node on its own network."""
    name = unique_name("kt-boot")
    spec = SimulationSpec(
        name=name,
        nodes=[
            NodeSpec(name="left", group="lan"),
            NodeSpec(name="right", group="lan"),
            NodeSpec(name="cloud", group="cloud", type="vps"),
        ],
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("KOMBIFY_HOME", str(module_home))
    get_settings.cache_clear()
    try:
        info, _ = asyncio.run(create_and_wait(engine, spec, timeout=120))
        yield info
    finally:
        engine.delete(name)
        mp.undo()
        get_settings.cache_clear()


def _ssh(lab: SimulationInfo, node: str) -> SshEndpoint:
    found = lab.node(node)
    assert found is not None and found.ssh is not None
    return found.ssh


async def _lan_address(lab: SimulationInfo, node: str) -> str:
    # eth0 is the simulation's network; docker0 belongs to the node's own engine.
    out = await run(_ssh(lab, node), "ip -4 -o addr show dev eth0")
    return out.split()[3].split("/")[0]


async def test_local_nodes_resolve_each_other_by_mdns(lab: SimulationInfo) -> None:
    right = await _lan_address(lab, "right")
    # avahi probes its name for a moment after boot before it answers for it.
    lookup = MDNS_LOOKUP.format(host="right.local")
    found = await run(
        _ssh(lab, "left"),
        f"for i in $(seq 1 100); do {lookup} && exit 0; sleep 0.2; done; exit 1",
    )
    assert found.split() == [right, "right.local"]
    # The avahi-utils tools work too (they talk to avahi-daemon over D-Bus).
    resolved = await run(_ssh(lab, "right"), "avahi-resolve -4 -n left.local")
    assert resolved.split() == ["left.local", await _lan_address(lab, "left")]


async def test_vps_node_runs_no_mdns_and_cannot_reach_the_lan(lab: SimulationInfo) -> None:
    vps = _ssh(lab, "cloud")
    left = await _lan_address(lab, "left")
    # Not announced and not resolving: vps nodes are not on a LAN.
    assert (await run(vps, "pgrep -c avahi-daemon || true")).strip() == "0"
    missing = await run(vps, f"{MDNS_LOOKUP.format(host='left.local')}; echo $?")
    assert missing.strip() == "2"  # getent: key not found
    # Its network is not the LAN: the local node's address does not answer from there.
    probe = await run(vps, f"timeout 3 bash -c '</dev/tcp/{left}/22' 2>/dev/null; echo $?")
    assert probe.strip() != "0"
    # ...while the other local node reaches it.
    assert (await run(_ssh(lab, "right"), f"timeout 3 bash -c '</dev/tcp/{left}/22'; echo $?")
            ).strip() == "0"


async def test_dockerd_runs_at_normal_priority_once_up(lab: SimulationInfo) -> None:
    """The engine boots niced so sshd answers first, then gets the normal priority back."""
    node = _ssh(lab, "left")
    await run(
        node,
        "for i in $(seq 1 100); do sudo docker info >/dev/null 2>&1 && exit 0; sleep 0.2; done;"
        " exit 1",
    )
    # Priority is restored right after the API listens; allow for the second pass.
    niced = await run(
        node,
        "for i in $(seq 1 30); do n=$(ps -eLo ni=,comm= | awk '$1 != 0' | grep -cE "
        "'dockerd|containerd'); [ \"$n\" = 0 ] && break; sleep 0.2; done; echo $n",
    )
    assert niced.strip() == "0"
