"""A real 3-node simulation: SSH, Docker inside, limits, persistence, events, delete."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from kombify.settings import get_settings
from kombify.sim import labels
from kombify.sim.engine import SimEngine
from kombify.sim.image import ensure_httpd_image
from kombify.sim.models import NodeSpec, SimulationInfo, SimulationSpec, SshEndpoint
from kombify.sim.ssh import run, wait_all
from kombify.sim.templates import load_text, spec_to_yaml
from tests.integration.sim.conftest import unique_name

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def sim(engine: SimEngine, module_home: Path) -> Iterator[SimulationInfo]:
    """Three nodes, the last one small, created once for the module and always deleted."""
    name = unique_name()
    spec = SimulationSpec(
        name=name,
        description="lifecycle test",
        nodes=[
            NodeSpec(name="alpha", group="lan"),
            NodeSpec(name="beta", group="lan"),
            NodeSpec(name="gamma", group="edge", cpus=0.5, memory_mb=384, role="pi"),
        ],
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("KOMBIFY_HOME", str(module_home))
    get_settings.cache_clear()
    try:
        info = engine.create(spec)
        asyncio.run(wait_all([n.ssh for n in info.nodes if n.ssh], timeout=120))
        yield info
    finally:
        engine.delete(name)
        mp.undo()
        get_settings.cache_clear()


def _ssh(engine: SimEngine, name: str, node: str) -> SshEndpoint:
    found = engine.info(name).node(node)
    assert found is not None and found.ssh is not None
    return found.ssh


async def test_nodes_answer_hostname_and_docker_info(sim: SimulationInfo) -> None:
    for node in sim.nodes:
        assert node.ssh is not None
        assert node.ssh.host == "127.0.0.1"
        assert (await run(node.ssh, "hostname")).strip() == node.name
        # The inner dockerd starts right after sshd; give it a moment on a busy machine.
        version = await run(
            node.ssh,
            "for i in $(seq 1 100); do sudo docker info --format '{{.ServerVersion}}' "
            "2>/dev/null && exit 0; sleep 0.2; done; exit 1",
        )
        assert version.strip()


def test_key_file_is_private_and_per_simulation(sim: SimulationInfo) -> None:
    ssh = sim.nodes[0].ssh
    assert ssh is not None
    key = Path(ssh.identity_file)
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.name == sim.name
    assert (key.parent / "id_ed25519.pub").read_text().startswith("ssh-ed25519 ")


async def test_limits_are_visible_inside(sim: SimulationInfo) -> None:
    gamma = sim.node("gamma")
    assert gamma is not None and gamma.ssh is not None
    # cgroup v1 (these hosts) with the host's cgroup namespace: the node's cgroup is in /proc.
    script = (
        'mem=$(awk -F: \'$2 ~ /(^|,)memory(,|$)/ {print $3}\' /proc/self/cgroup); '
        'cpu=$(awk -F: \'$2 ~ /(^|,)cpu(,|$)/ {print $3}\' /proc/self/cgroup); '
        'cat /sys/fs/cgroup/memory$mem/memory.limit_in_bytes '
        '/sys/fs/cgroup/cpu$cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu$cpu/cpu.cfs_period_us'
    )
    values = (await run(gamma.ssh, script)).split()
    assert int(values[0]) == 384 * 1024 * 1024
    quota, period = int(values[1]), int(values[2])
    assert quota / period == pytest.approx(0.5)


async def test_inner_docker_runs_a_container(sim: SimulationInfo, docker: Any) -> None:
    """The node's own engine runs the busybox httpd image, loaded over SSH (no registry)."""
    ensure_httpd_image(docker)
    image = b"".join(docker.images.get("kombify-test/httpd:1").save(named=True))
    node = sim.nodes[0]
    assert node.ssh is not None
    async with asyncssh.connect(
        node.ssh.host, node.ssh.port, username=node.ssh.user,
        client_keys=[node.ssh.identity_file], known_hosts=None, agent_path=None, config=[],
    ) as conn:
        loaded = await conn.run("sudo docker load", input=image, encoding=None, check=True)
        assert isinstance(loaded.stdout, bytes)  # encoding=None: raw bytes
        assert b"kombify-test/httpd:1" in loaded.stdout
    page = await run(
        node.ssh,
        "sudo docker rm -f web >/dev/null 2>&1; "
        "sudo docker run -d --name web -p 8080:80 kombify-test/httpd:1 >/dev/null && "
        "for i in $(seq 1 50); do curl -fsS http://127.0.0.1:8080/ && exit 0; sleep 0.2; done; "
        "exit 1",
    )
    assert "kombify-test/httpd works" in page


def test_create_again_makes_nothing_new(engine: SimEngine, sim: SimulationInfo) -> None:
    again = engine.create(engine.export(sim.name))
    assert [n.container_id for n in again.nodes] == [n.container_id for n in sim.nodes]
    left = engine.leftovers(sim.name)
    assert len(left["containers"]) == 3
    assert len(left["volumes"]) == 6  # each node: /var/lib/docker and /var/lib/kombify
    assert left["networks"] == [labels.lan_network(sim.name)]


def test_export_recreates_the_same_spec(engine: SimEngine, sim: SimulationInfo) -> None:
    exported = engine.export(sim.name)
    assert load_text(spec_to_yaml(exported)) == exported
    assert [n.name for n in exported.nodes] == ["alpha", "beta", "gamma"]
    assert exported.nodes[2].memory_mb == 384 and exported.nodes[2].group == "edge"


def test_stats_come_from_the_engine(engine: SimEngine, sim: SimulationInfo) -> None:
    stats = {s.name: s for s in engine.stats(sim.name)}
    assert set(stats) == {"alpha", "beta", "gamma"}
    assert stats["gamma"].memory_limit_bytes == 384 * 1024 * 1024
    assert all(s.memory_bytes > 0 and s.rx_bytes > 0 for s in stats.values())


async def test_stop_start_keeps_docker_volume_and_events_report_it(
    engine: SimEngine, sim: SimulationInfo
) -> None:
    name = sim.name
    marker = f"kept-{time.time_ns()}"
    await run(_ssh(engine, name, "beta"), f"echo {marker} | sudo tee /var/lib/docker/kt-marker")
    events: list[tuple[str, str]] = []
    since = time.time()

    def collect() -> None:
        for event in engine.watch(name, since=since, until=time.time() + 60):
            events.append((event.node, event.action))
            if ("beta", "start") in events:
                return

    watcher = threading.Thread(target=collect, daemon=True)
    watcher.start()
    stopped = engine.stop(name)
    assert stopped.state == "stopped"
    assert all(n.ssh is None for n in stopped.nodes)
    assert engine.stop(name).state == "stopped"  # idempotent
    started = engine.start(name)
    assert started.state == "running"
    assert engine.start(name).state == "running"  # idempotent
    await wait_all([n.ssh for n in started.nodes if n.ssh], timeout=120)
    kept = await run(_ssh(engine, name, "beta"), "sudo cat /var/lib/docker/kt-marker")
    assert kept.strip() == marker
    # The second boot starts mDNS again (stale pid files of the first are cleared).
    found = await run(
        _ssh(engine, name, "alpha"),
        "for i in $(seq 1 100); do getent -s mdns4_minimal hosts beta.local && exit 0;"
        " sleep 0.2; done; exit 1",
    )
    assert found.split()[1] == "beta.local"
    watcher.join(timeout=60)
    assert ("beta", "die") in events and ("beta", "start") in events


async def test_restart_keeps_nodes(engine: SimEngine, sim: SimulationInfo) -> None:
    restarted = engine.restart(sim.name)
    assert restarted.state == "running"
    assert [n.container_id for n in restarted.nodes] == [n.container_id for n in sim.nodes]
    await wait_all([n.ssh for n in restarted.nodes if n.ssh], timeout=120)


def test_delete_leaves_nothing(engine: SimEngine, module_home: Path) -> None:
    name = unique_name()
    mp = pytest.MonkeyPatch()
    mp.setenv("KOMBIFY_HOME", str(module_home))
    get_settings.cache_clear()
    try:
        engine.create(
            SimulationSpec(name=name, nodes=[NodeSpec(name="a"), NodeSpec(name="v", type="vps")])
        )
        made = engine.leftovers(name)
        # per node a container and two volumes (/var/lib/docker, /var/lib/kombify); 3 networks:
        # the LAN, the vps's own and the stand-in for the internet
        assert [len(made["containers"]), len(made["volumes"]), len(made["networks"])] == [2, 4, 3]
        assert engine.delete(name) is True
        assert engine.leftovers(name) == {"containers": [], "networks": [], "volumes": []}
        assert not (module_home / "sims" / name).exists()
        assert engine.delete(name) is False
        assert engine.find(name) is None
    finally:
        engine.delete(name)
        mp.undo()
        get_settings.cache_clear()


def test_httpd_image_serves_a_page(docker: Any) -> None:
    tag = ensure_httpd_image(docker)
    output = docker.containers.run(tag, ["/bin/busybox", "cat", "/www/index.html"], remove=True)
    assert b"kombify-test/httpd works" in output
    assert io.BytesIO(output).read()
