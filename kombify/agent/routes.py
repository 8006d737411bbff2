"""ApplyRoutes: the agent loads the control plane's config into the node's reverse proxy.

The proxy (Caddy) serves its admin API on a unix socket in a host directory it bind-mounts
(``/run/kombify/proxy/admin.sock``), so only the node reaches it: no port, no password. The
agent sends the whole config (``POST /load``); Caddy swaps it in without a restart, and reads
it back (``GET /config/``) so the answer says what the proxy routes now, not what was sent.
Standard library only, like the rest of the agent.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

from grpclib.const import Status

from kombify.agent.auth import abort
from kombify.agent.engine import Engine
from kombify.agent.proto import pb

ADMIN_SOCKET = Path("/run/kombify/proxy/admin.sock")
# Caddy checks the Host header of admin requests, on a unix socket too (the origins the
# control plane renders into every config: kombify.unifier.caddy.ADMIN_ORIGIN).
ADMIN_HOST = "kombify-agent"
# A proxy created by this very rollout opens its socket within a second; a busy node may
# take longer.
SOCKET_WAIT_S = 30.0
_TIMEOUT_S = 30.0


class ProxyAdminError(Exception):
    """The proxy's admin API refused or failed a request; the message is Caddy's."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__(ADMIN_HOST, timeout=_TIMEOUT_S)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_TIMEOUT_S)
        sock.connect(str(self._path))
        self.sock = sock


def admin_request(path: Path, method: str, url: str, body: bytes | None = None) -> bytes:
    """One request to Caddy's admin API on the unix socket ``path``; the answer's body.

    Raises:
        ProxyAdminError: Caddy answered with an error (its own message) .
        OSError: The socket cannot be reached.
    """
    connection = _UnixConnection(path)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, url, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.status >= 400:
        try:
            message = str(json.loads(data).get("error", ""))
        except (ValueError, AttributeError):
            message = data.decode(errors="replace")
        raise ProxyAdminError(f"{method} {url}: {response.status} {message.strip()}")
    return data


def routed_hosts(config: Any) -> list[str]:
    """The hosts the HTTPS server of a loaded config routes, sorted."""
    servers = (((config or {}).get("apps") or {}).get("http") or {}).get("servers") or {}
    hosts: set[str] = set()
    for route in (servers.get("kombify-https") or {}).get("routes") or []:
        for match in route.get("match") or []:
            hosts.update(match.get("host") or [])
    return sorted(hosts)


def _wait_for_socket(path: Path, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if path.is_socket():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def load_routes(
    path: Path, request: pb.ApplyRoutesRequest, *, wait: float = SOCKET_WAIT_S
) -> pb.ApplyRoutesResponse:
    """Loads ``request.config_json`` into the proxy at ``path``; what it routes afterwards.

    Raises:
        ProxyAdminError: No socket (when there are routes to load), or Caddy refused.
    """
    if request.read_only:
        return read_routes(path, internal_ca=request.internal_ca)
    if not _wait_for_socket(path, wait if request.routes else 0.0):
        if not request.routes:
            # A config loaded earlier would have kept the socket: nothing here to clear.
            return pb.ApplyRoutesResponse(message="no admin socket: nothing to load or clear")
        raise ProxyAdminError(
            f"the proxy `{request.proxy_service}` opened no admin socket at {path} within "
            f"{wait:.0f}s: does it run the catalog's command (an override of its `command` "
            "keeps kombify from loading routes)?"
        )
    try:
        admin_request(path, "POST", "/load", request.config_json.encode())
    except OSError as exc:
        raise ProxyAdminError(f"the proxy's admin socket {path}: {exc}") from exc
    # Read back: the answer is what the proxy routes now, not what was sent.
    reply = read_routes(path, internal_ca=request.internal_ca)
    reply.message = f"loaded {len(reply.hosts)} route(s)"
    return reply


def read_routes(path: Path, *, internal_ca: bool) -> pb.ApplyRoutesResponse:
    """What the proxy at ``path`` routes now; loads nothing.

    Raises:
        ProxyAdminError: Caddy refused, or the socket is there but does not answer.
    """
    if not path.is_socket():
        return pb.ApplyRoutesResponse(message="no admin socket: the proxy routes nothing")
    try:
        loaded = json.loads(admin_request(path, "GET", "/config/") or b"null")
        root = ""
        if internal_ca:
            ca = json.loads(admin_request(path, "GET", "/pki/ca/local"))
            root = str(ca.get("root_certificate", ""))
    except OSError as exc:
        raise ProxyAdminError(f"the proxy's admin socket {path}: {exc}") from exc
    hosts = routed_hosts(loaded)
    return pb.ApplyRoutesResponse(hosts=hosts, root_ca_pem=root, message=f"routes {len(hosts)}")


def _proxy_container(engine: Engine, service: str) -> str:
    running = [m for m in engine.containers(service) if m.running]
    return running[0].id if running else ""


async def apply_routes(engine: Engine, stream: Any, *, socket_path: Path = ADMIN_SOCKET) -> None:
    """The ApplyRoutes RPC, for :class:`kombify.agent.service.AgentService`."""
    request: pb.ApplyRoutesRequest = await stream.recv_message()
    try:
        if not request.read_only:
            json.loads(request.config_json)
    except ValueError as exc:
        abort(Status.INVALID_ARGUMENT, f"the proxy config is not JSON: {exc}")
    container = await asyncio.to_thread(_proxy_container, engine, request.proxy_service)
    if not container:
        abort(
            Status.FAILED_PRECONDITION,
            f"the proxy `{request.proxy_service}` does not run on this node",
        )
    try:
        reply = await asyncio.to_thread(load_routes, socket_path, request)
    except ProxyAdminError as exc:
        abort(Status.FAILED_PRECONDITION, str(exc))
    reply.container_id = container
    await stream.send_message(reply)
