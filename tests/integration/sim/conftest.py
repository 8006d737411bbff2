"""Fixtures for KombiSim tests: a real Docker engine, the node image built once per session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
