"""A simulated node's Docker engine comes back after restarts while its services run.

/run survives between boots of a container (a machine empties it): the last boot's containerd
state made dockerd time out on its containerd and never start after a `docker restart`.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from kombify import sim
from kombify.sim.engine import SimEngine
from kombify.sim.image import HTTPD_IMAGE, ensure_httpd_image
from tests.integration.sim.conftest import unique_name

pytestmark = pytest.mark.docker


def _inner(container: str, command: str) -> int:
    return subprocess.run(
        ["docker", "exec", container, "sh", "-c", command], capture_output=True, check=False
    ).returncode


def _engine_answers(container: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _inner(container, "docker info >/dev/null 2>&1") == 0:
            return True
        time.sleep(0.5)
    return False


def test_the_engine_comes_back_after_restarts_with_services_running(
    docker: Any, engine: SimEngine
) -> None:
    ensure_httpd_image(docker)
    name = unique_name("krs")
    info = sim.create_simulation(name, ["box"])
    try:
        (node,) = info.nodes
        assert _engine_answers(node.container_id, 60)
        subprocess.run(
            f"docker save {HTTPD_IMAGE} | docker exec -i {node.container_id} docker load",
            shell=True, check=True, capture_output=True,
        )
        assert _inner(
            node.container_id,
            f"docker run -d --restart unless-stopped --name web {HTTPD_IMAGE} httpd -f -p 80",
        ) == 0
        for _ in range(3):
            engine.stop(name)
            engine.start(name)
            assert _engine_answers(node.container_id, 60), "engine down after stop/start"
            engine.restart(name)
            assert _engine_answers(node.container_id, 60), "engine down after restart"
        # and the service Docker restarts with it runs again
        assert _inner(node.container_id, "docker ps --filter name=web -q | grep -q .") == 0
    finally:
        sim.delete_simulation(name)
