"""A node converges to its spec in place or by re-creation, keeping its disks and host key.

One node goes through: an unchanged create (untouched), a memory change (in place), a new
published port (re-created: volumes, host key, /etc/kombify and host ports kept), a removed
port, and a create from another ``KOMBIFY_HOME`` (re-keyed for that home).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kombify.settings import get_settings
from kombify.sim.engine import SimEngine
from kombify.sim.models import NodeSpec, SimulationInfo, SimulationSpec
from kombify.sim.ssh import run, wait_for_ssh
from tests.integration.sim.conftest import unique_name

pytestmark = pytest.mark.docker


def _home(mp: pytest.MonkeyPatch, home: Path) -> None:
    mp.setenv("KOMBIFY_HOME", str(home))
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def name(engine: SimEngine, module_home: Path) -> Iterator[str]:
    sim = unique_name("kt-conv")
    mp = pytest.MonkeyPatch()
    _home(mp, module_home)
    try:
        yield sim
    finally:
        engine.delete(sim)
        mp.undo()
        get_settings.cache_clear()


def _spec(name: str, *, memory_mb: int = 512, ports: list[int] | None = None) -> SimulationSpec:
    node = NodeSpec(name="box", group="lan", memory_mb=memory_mb, ports=ports or [])
    return SimulationSpec(name=name, nodes=[node])


def _converge(engine: SimEngine, spec: SimulationSpec) -> tuple[SimulationInfo, list[str]]:
    lines: list[str] = []
    info = engine.create(spec, converge=True, report=lines.append)
    box = info.node("box")
    assert box is not None and box.ssh is not None
    asyncio.run(wait_for_ssh(box.ssh, timeout=120))
    return info, lines


def _inspect(engine: SimEngine, info: SimulationInfo) -> dict[str, Any]:
    box = info.node("box")
    assert box is not None
    attrs: dict[str, Any] = engine.api.inspect_container(box.container_id)
    return attrs


def _on_node(info: SimulationInfo, command: str) -> str:
    box = info.node("box")
    assert box is not None and box.ssh is not None
    return asyncio.run(run(box.ssh, command)).strip()


def test_a_node_converges_and_keeps_its_disks(engine: SimEngine, name: str) -> None:
    first, lines = _converge(engine, _spec(name, ports=[80]))
    assert lines == []  # made, not changed
    _on_node(
        first,
        "echo kept | sudo tee /var/lib/kombify/marker >/dev/null && sudo mkdir -p /etc/kombify"
        " && echo etc | sudo tee /etc/kombify/marker >/dev/null",
    )
    host_key = _on_node(first, "cat /etc/ssh/ssh_host_ed25519_key.pub")
    attrs = _inspect(engine, first)
    first_id, started = attrs["Id"], attrs["State"]["StartedAt"]
    box = first.node("box")
    assert box is not None and box.ssh is not None
    ssh_port, web_port = box.ssh.port, box.ports[80]

    # Unchanged: the very same container, not restarted.
    same, lines = _converge(engine, _spec(name, ports=[80]))
    assert lines == []
    assert _inspect(engine, same)["Id"] == first_id
    assert _inspect(engine, same)["State"]["StartedAt"] == started

    # Memory: changed in place, still not restarted, and reported as it is now.
    bigger, lines = _converge(engine, _spec(name, memory_mb=768, ports=[80]))
    assert lines == ["node `box`: memory 512 MiB -> 768 MiB (changed in place)"]
    attrs = _inspect(engine, bigger)
    assert attrs["Id"] == first_id
    assert attrs["State"]["StartedAt"] == started
    assert attrs["HostConfig"]["Memory"] == 768 * 1024 * 1024
    node = bigger.node("box")
    assert node is not None and node.spec.memory_mb == 768

    # A new port: a new container, which keeps the disks, host key and loopback ports.
    more, lines = _converge(engine, _spec(name, memory_mb=768, ports=[80, 81]))
    assert lines == [
        "node `box` re-created to publish ports 80, 81 (was 80) "
        "(its disks and SSH host key are kept)"
    ]
    assert _inspect(engine, more)["Id"] != first_id
    box = more.node("box")
    assert box is not None and box.ssh is not None
    assert (box.ssh.port, box.ports[80]) == (ssh_port, web_port)
    assert 81 in box.ports and box.ports[81] not in (ssh_port, web_port)
    assert _on_node(more, "cat /var/lib/kombify/marker /etc/kombify/marker") == "kept\netc"
    assert _on_node(more, "cat /etc/ssh/ssh_host_ed25519_key.pub") == host_key
    assert _inspect(engine, more)["HostConfig"]["Memory"] == 768 * 1024 * 1024

    # A port no longer wanted is no longer published.
    fewer, lines = _converge(engine, _spec(name, memory_mb=768, ports=[81]))
    assert lines and "publish ports 81 (was 80, 81)" in lines[0]
    box = fewer.node("box")
    assert box is not None and set(box.ports) == {81}


def test_a_node_of_another_home_is_rekeyed(
    engine: SimEngine, name: str, tmp_path: Path
) -> None:
    info, _ = _converge(engine, _spec(name, ports=[81]))
    _on_node(info, "echo mine | sudo tee /var/lib/kombify/owner >/dev/null")
    mp = pytest.MonkeyPatch()
    try:
        _home(mp, tmp_path / "other-home")  # a wiped or another home: no key of this sim
        again, lines = _converge(engine, _spec(name, ports=[81]))
        assert len(lines) == 1 and "accept this KOMBIFY_HOME's key" in lines[0], lines
        box = again.node("box")
        assert box is not None and box.ssh is not None
        assert box.ssh.identity_file == str(tmp_path / "other-home" / "sims" / name / "id_ed25519")
        assert _on_node(again, "cat /var/lib/kombify/owner") == "mine"
    finally:
        mp.undo()
        get_settings.cache_clear()
