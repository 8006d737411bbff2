"""An agent that started before its node's Docker engine serves once the engine answers.

A node boots dockerd and the agent at once (after a restart or a reboot). The docker SDK asks
the engine for its API version when its client is made; the agent must not keep that first
failure for the rest of its life.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import docker
import pytest

from kombify.agent.engine import Engine
from kombify.errors import DockerError
from tests.support.ports import free_port

pytestmark = pytest.mark.docker


def _failed_start() -> Future[Any]:
    future: Future[Any] = Future()
    future.set_exception(
        docker.errors.DockerException(
            "Error while fetching server API version: ('Connection aborted.', "
            "ConnectionResetError(104, 'Connection reset by peer'))"
        )
    )
    return future


def test_the_engine_is_asked_again_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(_failed_start(), node=f"late-{free_port()}.test.kombify")

    # Still down: a clear error, and the next call tries again.
    with monkeypatch.context() as down:
        down.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
        with pytest.raises(DockerError, match="listing containers"):
            engine.containers()

    # Up now (the environment's engine): served, with no restart of the agent.
    assert engine.containers() == []
    assert engine.containers() == []  # and the client is kept from then on
