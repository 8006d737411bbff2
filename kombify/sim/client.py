"""The Docker engine client KombiSim uses, with engine errors mapped to ``DockerError``."""

from __future__ import annotations

from typing import Any

import docker
import docker.errors

from kombify.errors import DockerError

# Long enough for an image import or a container stop with a graceful inner-dockerd shutdown.
DEFAULT_TIMEOUT = 300


def docker_client(*, timeout: int = DEFAULT_TIMEOUT) -> Any:
    """A client for the local engine (``DOCKER_HOST`` honoured) that has answered.

    Creating the client already asks the engine for its API version, so no extra ping.

    Raises:
        DockerError: No engine answers.
    """
    try:
        client = docker.from_env(timeout=timeout, max_pool_size=32)
    except docker.errors.DockerException as exc:
        raise DockerError(f"no Docker engine answers: {exc}") from exc
    except OSError as exc:
        raise DockerError(f"no Docker engine answers: {exc}") from exc
    return client


def engine_available() -> bool:
    """Whether a Docker engine answers (for tests that need one)."""
    try:
        docker_client(timeout=5).close()
    except DockerError:
        return False
    return True


def unchecked_docker_client(*, timeout: int = DEFAULT_TIMEOUT) -> Any:
    """A client that has not contacted the engine yet (a worker starts without Docker).

    Raises:
        DockerError: ``DOCKER_HOST`` and friends are malformed.
    """
    try:
        return docker.from_env(timeout=timeout, max_pool_size=32)
    except docker.errors.DockerException as exc:
        raise DockerError(f"bad Docker settings: {exc}") from exc
