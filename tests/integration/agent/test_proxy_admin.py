"""The agent's side of ApplyRoutes against a real Caddy (Debian's) on a unix admin socket.

Caddy runs here as a process with the catalog's boot config, pointed at a socket in the
test's directory and at loopback ports of its own; the agent code loads a rendered config,
reads it back, fetches the local CA's root, and reports Caddy's own words when refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kombify.agent.proto import pb
from kombify.agent.routes import ProxyAdminError, load_routes
from kombify.stackkits.library import load_library
from kombify.unifier.caddy import caddy_config
from tests.support.ports import free_port

ROUTES: dict[str, Any] = {
    "tls": {"issuer": "internal", "email": None},
    "routes": [
        {
            "host": "photos.lab.home.arpa",
            "service": "photos",
            "port": 80,
            "upstreams": [{"node": "main", "local": True, "host_port": None}],
        }
    ],
}


def _on(config: dict[str, Any], socket_path: Path, http: int, https: int) -> dict[str, Any]:
    """``config`` with the test's socket and ports in place of the node's."""
    text = json.dumps(config)
    text = text.replace("/run/kombify/proxy/admin.sock", str(socket_path))
    text = text.replace('":80"', f'"127.0.0.1:{http}"').replace('":443"', f'"127.0.0.1:{https}"')
    out: dict[str, Any] = json.loads(text)
    out["apps"]["http"]["http_port"], out["apps"]["http"]["https_port"] = http, https
    return out


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """A running Caddy with the catalog's boot config; its socket and ports."""
    from kombify.sim.image import _caddy_binary

    binary = _caddy_binary()  # Debian's package, downloaded once like for kombify-test/caddy
    sock, http, https = tmp_path / "admin.sock", free_port(), free_port()
    boot = json.loads(load_library().catalog["caddy"].env["KOMBIFY_PROXY_BOOT"])
    boot_file = tmp_path / "boot.json"
    boot_file.write_text(json.dumps(_on(boot, sock, http, https)))
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    with (tmp_path / "caddy.log").open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "run", "--config", str(boot_file)], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 20
        while not sock.is_socket() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield sock, http, https
    finally:
        process.terminate()
        process.wait(10)


def test_a_config_is_loaded_and_read_back_with_the_local_root(
    caddy: tuple[Path, int, int],
) -> None:
    sock, http, https = caddy
    config = _on(caddy_config(ROUTES, {}), sock, http, https)
    request = pb.ApplyRoutesRequest(
        config_json=json.dumps(config), proxy_service="reverse-proxy", routes=1, internal_ca=True
    )

    reply = load_routes(sock, request, wait=10)

    assert list(reply.hosts) == ["photos.lab.home.arpa"]
    assert reply.message == "loaded 1 route(s)"
    assert reply.root_ca_pem.startswith("-----BEGIN CERTIFICATE-----")
    read = load_routes(sock, pb.ApplyRoutesRequest(read_only=True, internal_ca=True))
    assert (list(read.hosts), read.root_ca_pem) == (list(reply.hosts), reply.root_ca_pem)

    # An empty route list clears what was loaded.
    empty = _on(caddy_config({**ROUTES, "routes": []}, {}), sock, http, https)
    cleared = load_routes(sock, pb.ApplyRoutesRequest(config_json=json.dumps(empty)))
    assert (list(cleared.hosts), cleared.message) == ([], "loaded 0 route(s)")


def test_caddy_refusing_a_config_is_reported_in_its_own_words(
    caddy: tuple[Path, int, int],
) -> None:
    sock, http, https = caddy
    config = _on(caddy_config(ROUTES, {}), sock, http, https)
    config["apps"]["http"]["servers"]["kombify-https"]["routes"][0]["handle"][0]["handler"] = "nope"
    request = pb.ApplyRoutesRequest(config_json=json.dumps(config), routes=1)

    with pytest.raises(
        ProxyAdminError, match="POST /load: 400 .*unknown module: http.handlers.nope"
    ):
        load_routes(sock, request, wait=10)


def test_without_a_socket_there_is_nothing_to_clear_but_routes_are_refused(
    tmp_path: Path,
) -> None:
    sock = tmp_path / "absent.sock"
    nothing = load_routes(sock, pb.ApplyRoutesRequest(config_json="{}", proxy_service="rp"))
    assert nothing.message == "no admin socket: nothing to load or clear"

    with pytest.raises(ProxyAdminError, match="opened no admin socket at .* within 0s"):
        load_routes(
            sock, pb.ApplyRoutesRequest(config_json="{}", proxy_service="rp", routes=1), wait=0
        )
