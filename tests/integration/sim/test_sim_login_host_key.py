"""A simulation's SSH wait hands on the host key each node presented, and pinning uses it.

Creating a stack's simulation already logs in to every node; the deploy's first step pins the
keys those logins saw instead of asking every node again. Checked against real nodes: the key
the wait reports is the one the node's sshd presents, pinning with it records the same pins in
one commit without another handshake, and a key of another algorithm than an existing pin is
still read from the node.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from kombify.activities import hostkeys as pinning
from kombify.activities.deploy import simulated_target
from kombify.activities.hostkeys import pin_targets, read_host_key
from kombify.contracts.deploy import NodeTarget
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.hostkeys import get_pin, list_pins, pinned_key, save_pin
from kombify.db.migrate import upgrade
from kombify.errors import HostKeyChangedError
from kombify.hostkeys import HostKey
from kombify.sim.bringup import create_and_wait
from kombify.sim.engine import SimEngine
from kombify.sim.models import NodeSpec, SimulationInfo, SimulationSpec
from tests.integration.sim.conftest import unique_name

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def created(engine: SimEngine) -> Iterator[SimulationInfo]:
    """Two nodes created and waited for as a deploy creates them."""
    name = unique_name("kt-login")
    spec = SimulationSpec(name=name, nodes=[NodeSpec(name="a"), NodeSpec(name="b")])
    info, _ = asyncio.run(create_and_wait(engine, spec, timeout=120))
    try:
        yield info
    finally:
        engine.delete(name)


@pytest.fixture
def sessions(tmp_path: Path) -> Callable[[], Session]:
    url = f"sqlite:///{tmp_path / 'kombify.db'}"
    upgrade(url)
    return lambda: Session(get_engine(url))


def _stack(sessions: Callable[[], Session]) -> str:
    with sessions() as session:
        org = store.ensure_local_organisation(session)
        stack = store.create_stack(
            session, organisation_id=org.id, name="lab", stackkit="base-homelab", source="x"
        )
        return stack.id


def _targets(info: SimulationInfo) -> list[NodeTarget]:
    return [simulated_target(n.name, "worker", n.ssh) for n in info.nodes if n.ssh is not None]


def _pin(
    sessions: Callable[[], Session], stack_id: str, created: SimulationInfo
) -> tuple[list[NodeTarget], list[str]]:
    """pin_targets as PrepareDeployment calls it after creating the simulation."""
    return pin_targets(
        sessions,
        stack_id=stack_id,
        stack="lab",
        targets=_targets(created),
        stated={},
        instances={n.name: n.container_id for n in created.nodes},
        presented={n.name: HostKey.parse(n.host_key) for n in created.nodes},
    )


def _rsa_key(tmp_path: Path) -> HostKey:
    path = tmp_path / "rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-N", "", "-f", str(path)], check=True)
    return HostKey.parse(Path(f"{path}.pub").read_text())


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the ports pinning reads a host key from (and still reads them)."""
    ports: list[int] = []

    async def counting(host: str, port: int, **kw: Any) -> HostKey:
        ports.append(port)
        return await read_host_key(host, port, **kw)

    monkeypatch.setattr(pinning, "read_host_key", counting)
    return ports


def test_the_wait_reports_the_key_each_node_presents(created: SimulationInfo) -> None:
    assert [n.name for n in created.nodes] == ["a", "b"]
    for node in created.nodes:
        assert node.ssh is not None
        presented = asyncio.run(read_host_key(node.ssh.host, node.ssh.port))
        assert node.host_key, f"{node.name}: no key from the wait"
        assert HostKey.parse(node.host_key) == presented


def test_pinning_takes_the_presented_keys_without_asking_again(
    created: SimulationInfo, sessions: Callable[[], Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_id = _stack(sessions)
    reads = _reads(monkeypatch)
    presented = {n.name: HostKey.parse(n.host_key) for n in created.nodes}

    pinned, lines = _pin(sessions, stack_id, created)

    assert reads == []
    assert {t.name: HostKey.parse(t.host_key or "") for t in pinned} == presented
    assert all("recorded, pinned on first contact" in line for line in lines), lines
    with sessions() as session:
        rows = list_pins(session, stack_id=stack_id)
        assert {p.node: pinned_key(p) for p in rows} == presented
        assert {p.instance for p in rows} == {n.container_id for n in created.nodes}


def test_a_pin_of_another_algorithm_is_still_read_from_the_node(
    created: SimulationInfo,
    sessions: Callable[[], Session],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    stack_id = _stack(sessions)
    a, b = created.nodes
    assert a.ssh is not None and b.ssh is not None
    rsa = _rsa_key(tmp_path)
    with sessions() as session:  # `a` was pinned with an RSA key earlier (same container)
        save_pin(
            session,
            stack_id=stack_id,
            node="a",
            simulated=True,
            key=rsa,
            source="first-use",
            address=f"{a.ssh.host}:{a.ssh.port}",
            instance=a.container_id,
        )
    reads = _reads(monkeypatch)

    with pytest.raises(HostKeyChangedError) as refused:
        _pin(sessions, stack_id, created)

    # Only `a` is asked again (for an RSA key first); what it presents is not its pin.
    assert reads == [a.ssh.port]
    assert "node `a`" in str(refused.value)
    with sessions() as session:  # nothing recorded for `b` either: all or nothing
        assert get_pin(session, stack_id=stack_id, node="b", simulated=True) is None
        pin = get_pin(session, stack_id=stack_id, node="a", simulated=True)
        assert pin is not None and pinned_key(pin) == rsa


def test_pins_saved_at_once_replace_earlier_ones_and_add_new(
    created: SimulationInfo, sessions: Callable[[], Session], tmp_path: Path
) -> None:
    stack_id = _stack(sessions)
    old = _rsa_key(tmp_path)
    keys = {n.name: HostKey.parse(n.host_key) for n in created.nodes}
    with sessions() as session:
        save_pin(
            session,
            stack_id=stack_id,
            node="a",
            simulated=True,
            key=old,
            source="first-use",
            address="127.0.0.1:1",
        )
        pinning.store.save_pins(
            session,
            stack_id=stack_id,
            records=[
                pinning.store.PinRecord(name, True, key, "first-use", "127.0.0.1:22")
                for name, key in keys.items()
            ],
        )
    with sessions() as session:
        rows = list_pins(session, stack_id=stack_id)
        assert {p.node: pinned_key(p) for p in rows} == keys
        assert {p.address for p in rows} == {"127.0.0.1:22"}
