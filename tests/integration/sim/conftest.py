"""Fixtures for KombiSim tests: a real Docker engine, the node image built once per session."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kombify.contracts.deploy import NodeTarget
from kombify.sim.client import docker_client, engine_available
from kombify.sim.engine import SimEngine
from kombify.sim.image import ensure_node_image

pytestmark = pytest.mark.docker


def unique_name(prefix: str = "kt") -> str:
    """A simulation name no other test (or leftover from an earlier run) uses."""
    return f"{prefix}-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def docker() -> Iterator[Any]:
    """A client for the local engine; skips only when no engine answers at all."""
    if not engine_available():
        pytest.skip("no Docker engine answers (scripts/ensure-docker.sh starts one)")
    client = docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def node_image(docker: Any) -> str:
    """The node image, built once (about a minute the very first time) and then reused."""
    return ensure_node_image(docker)


@pytest.fixture(scope="session")
def engine(docker: Any, node_image: str) -> SimEngine:
    """A SimEngine on the session's client and image."""
    return SimEngine(docker, image=node_image)


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KOMBIFY_HOME that lives as long as a module's simulation (keys are kept there)."""
    return tmp_path_factory.mktemp("sim-home")


class LogLines:
    """Stands in for DeployActivities as the agent activities' log sink; keeps the lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, deployment_id: str, source: str, message: str, level: str = "info") -> None:
        del deployment_id, source, level
        self.lines.append(message)


@contextmanager
def pinned_sim_node(prefix: str, ports: list[int]) -> Iterator[NodeTarget]:
    """A one-node simulation ``box`` and its deploy target, host key pinned as on first use.

    Every deploy connection is held to the node's pin (as PrepareDeployment records it).
    """
    from kombify import sim
    from kombify.activities.deploy import simulated_target
    from kombify.activities.hostkeys import read_host_key
    from kombify.sim.models import NodeSpec, SimulationSpec

    name = unique_name(prefix)
    spec = SimulationSpec(name=name, nodes=[NodeSpec(name="box", ports=ports)])
    info = sim.create_simulation(name, spec, wait=True, timeout=120)
    try:
        (ssh,) = [n.ssh for n in info.nodes if n.ssh is not None]
        key = asyncio.run(read_host_key(ssh.host, ssh.port))
        yield dataclasses.replace(simulated_target("box", "main", ssh), host_key=key.line)
    finally:
        sim.delete_simulation(name)
