"""The agent's first Health asks the engine's socket directly, before the SDK has loaded."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from kombify.agent.engine_socket import EngineSocketUnsupported, engine_version


@pytest.mark.docker
def test_the_version_is_the_one_the_sdk_reports(docker_client: docker.DockerClient) -> None:
    assert engine_version() == docker_client.version()["Version"]


def test_an_engine_over_tcp_is_left_to_the_sdk() -> None:
    with pytest.raises(EngineSocketUnsupported):
        engine_version("tcp://127.0.0.1:2375")


def test_no_engine_at_the_socket_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        engine_version(f"unix://{tmp_path / 'missing.sock'}")
