"""The Docker engine's version, asked over its socket with the standard library.

The agent's first Health call comes while the docker SDK is still loading in the background
(see :class:`kombify.agent.engine.Engine`); this answers it without waiting for that.
"""

from __future__ import annotations

import http.client
import json
import os
import socket

DEFAULT_HOST = "unix:///var/run/docker.sock"
_TIMEOUT = 10.0


class EngineSocketUnsupported(Exception):
    """``DOCKER_HOST`` names something other than a unix socket (the SDK handles those)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=_TIMEOUT)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_TIMEOUT)
        sock.connect(self._path)
        self.sock = sock


def engine_version(docker_host: str | None = None) -> str:
    """``GET /version`` of the engine at ``docker_host`` (default: ``$DOCKER_HOST``).

    Raises:
        EngineSocketUnsupported: The engine is not reached through a unix socket.
        OSError: It does not answer, or not as an engine would.
    """
    host = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if not host.startswith("unix://"):
        raise EngineSocketUnsupported(host)
    connection = _UnixConnection(host.removeprefix("unix://"))
    try:
        connection.request("GET", "/version")
        response = connection.getresponse()
        body = response.read()
    except http.client.HTTPException as exc:
        raise OSError(f"the engine at {host} answered badly: {exc}") from exc
    finally:
        connection.close()
    if response.status != 200:
        raise OSError(f"the engine at {host} answered HTTP {response.status}")
    try:
        return str(json.loads(body).get("Version", "?"))
    except (ValueError, AttributeError) as exc:
        raise OSError(f"the engine at {host} sent no version: {exc}") from exc
