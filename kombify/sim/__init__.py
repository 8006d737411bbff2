"""KombiSim: simulated homelab nodes as containers with real SSH and their own Docker engine.

The engine-facing API is synchronous (the Docker SDK is); from async code call it through
``asyncio.to_thread``. For other features (OpenTofu, deploy tests) the short path is::

    from kombify import sim

    sim.ensure_image()                                   # builds once, then returns at once
    info = sim.create_simulation("kt-abc", ["web", "db"])  # waits until SSH answers
    for node in info.nodes:
        ssh = node.ssh                                   # host=127.0.0.1, port, user,
        ...                                              # identity_file, known_hosts_file
    sim.delete_simulation("kt-abc")

Lower-level pieces: :class:`SimEngine` (lifecycle), :mod:`kombify.sim.templates`,
:mod:`kombify.sim.ssh` (handshake/run over loopback), :mod:`kombify.sim.image`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kombify.sim.bringup import create_and_wait
from kombify.sim.client import docker_client, engine_available
from kombify.sim.engine import SimEngine
from kombify.sim.image import HTTPD_IMAGE, ensure_httpd_image, ensure_node_image
from kombify.sim.models import (
    NodeInfo,
    NodeSpec,
    NodeStats,
    SimulationInfo,
    SimulationSpec,
    SshEndpoint,
)

__all__ = [
    "HTTPD_IMAGE",
    "NodeInfo",
    "NodeSpec",
    "NodeStats",
    "SimEngine",
    "SimulationInfo",
    "SimulationSpec",
    "SshEndpoint",
    "connection_info",
    "create_and_wait",
    "create_simulation",
    "delete_simulation",
    "docker_client",
    "engine_available",
    "ensure_httpd_image",
    "ensure_image",
    "ensure_node_image",
]


def ensure_image(*, progress: Callable[[str], None] | None = None) -> str:
    """Make sure the node image exists on the local engine; its tag.

    Raises:
        DockerError: No engine, or the build failed.
        ConfigError: The image cannot be built on this machine.
    """
    client = docker_client()
    try:
        return ensure_node_image(client, progress=progress)
    finally:
        client.close()


def create_simulation(
    name: str,
    nodes: list[str] | int | SimulationSpec,
    *,
    cpus: float = 1.0,
    memory_mb: int = 512,
    wait: bool = True,
    timeout: float = 120.0,
    converge: bool = False,
    report: Callable[[str], None] | None = None,
) -> SimulationInfo:
    """Create (idempotently) a simulation and wait until every node answers SSH.

    Args:
        name: Simulation name (a DNS label; use a unique one in tests, e.g. ``kt-<random>``).
        nodes: Node names (all ``local`` in group ``lan``), a count (``node1``..``nodeN``),
            or a full :class:`SimulationSpec` (then ``name``, ``cpus``, ``memory_mb`` are
            ignored).
        cpus: CPU limit per node.
        memory_mb: Memory limit per node in MiB.
        wait: Wait for an SSH handshake with every node before returning.
        timeout: Seconds to wait for SSH.
        converge: Make existing nodes match the spec (ports, limits, key; see
            :meth:`SimEngine.create`), keeping their disks.
        report: Called with one line per node that converge changed.

    Returns:
        The simulation; each ``node.ssh`` has host (127.0.0.1), port, user, identity_file.

    Raises:
        SpecError: Bad names or limits.
        DockerError: The engine failed.
        SshError: A node did not answer SSH in time.
    """
    if isinstance(nodes, SimulationSpec):
        spec = nodes
    elif isinstance(nodes, int):
        spec = SimulationSpec.uniform(name, nodes, cpus=cpus, memory_mb=memory_mb)
    else:
        spec = SimulationSpec.named(name, nodes, cpus=cpus, memory_mb=memory_mb)
    client = docker_client()
    try:
        engine = SimEngine(client)
        if not wait:
            return engine.create(spec, converge=converge, report=report)
        # Each node's SSH wait starts as soon as it runs, while the others still start.
        info, _ = asyncio.run(
            create_and_wait(engine, spec, timeout=timeout, converge=converge, report=report)
        )
    finally:
        client.close()
    return info


def connection_info(name: str) -> dict[str, SshEndpoint]:
    """SSH endpoints of the running nodes of ``name``, by node name (read from the engine).

    Raises:
        NotFoundError: No such simulation.
    """
    client = docker_client()
    try:
        info = SimEngine(client).info(name)
    finally:
        client.close()
    return {node.name: node.ssh for node in info.nodes if node.ssh is not None}


def delete_simulation(name: str) -> bool:
    """Remove every container, network, volume and key of ``name`` (idempotent)."""
    client = docker_client()
    try:
        return SimEngine(client).delete(name)
    finally:
        client.close()
