"""Services reached by domain over HTTPS through the kit's reverse proxy, on KombiSim.

A modern-homelab with a main node and a worker: `photos` runs beside the proxy on main
(reached by name on the node's Docker network), `notes` on the worker (reached at the
worker's address and host port). curl resolves the names to the main node's 443 published on
127.0.0.1 and verifies the proxy's certificate against the root the deploy fetched from it.
A re-apply without `notes` takes its route away and leaves the proxy container running as it
was. base-homelab routes on its one node the same way.

The proxy is the catalog's caddy entry running `kombify-test/caddy:2` (Debian's caddy, built
offline): only the image is overridden, so its command, admin socket and volumes are the
catalog's own.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.deploy_env import KombifyEnv, published

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Each httpd says which service it is, so a route reaching the wrong one shows.
HTTPD = """\
    {name}:
      image: kombify-test/httpd:1
      node: {node}
      command: ["sh", "-c", "echo \\"$GREETING\\" > /www/index.html && exec httpd -f -p 80 -h /www"]
      env: {{GREETING: "{name} says hi"}}
      ports: [{ports}]
      healthcheck: {{http: "http://localhost:80/", interval: 1s}}
      expose: {{host: {name}, port: 80}}
"""

MODERN = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: modern-homelab
  healing: {{enabled: false}}
  nodes:
    - {{name: main, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
    - {{name: w1, provider: sim, role: worker, resources: {{cpus: 1, memory: 512Mi}}}}
  services:
    reverse-proxy: {{image: "{caddy}"}}
    dashboard: {{enabled: false}}
{services}"""

BASE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  healing: {{enabled: false}}
  nodes:
    - {{name: box, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
  services:
    reverse-proxy: {{image: "{caddy}"}}
{services}"""

PHOTOS = HTTPD.format(name="photos", node="main", ports="{container: 80}")
NOTES = HTTPD.format(name="notes", node="w1", ports="{container: 80, host: 8081}")


@pytest.fixture(scope="module")
def caddy_image() -> str:
    """``kombify-test/caddy:2``, built here from Debian's caddy package when missing."""
    from kombify.sim.client import docker_client
    from kombify.sim.image import ensure_caddy_image

    client = docker_client()
    try:
        return ensure_caddy_image(client)
    finally:
        client.close()


def _root_ca(kombify: KombifyEnv, stack: str) -> Path:
    (path,) = kombify.home.glob(f"stacks/*/{stack}/proxy-root.crt")
    return path


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _https(host: str, port: int, ca: Path, path: str = "/") -> subprocess.CompletedProcess[str]:
    """GET https://host:port/ with host resolved to 127.0.0.1, verified against ``ca``."""
    return _curl(
        "--resolve", f"{host}:{port}:127.0.0.1", "--cacert", str(ca), f"https://{host}:{port}{path}"
    )


async def _answer(host: str, port: int, ca: Path, *, within: float = 20) -> tuple[int, str]:
    """Status and body once the proxy answers ``host`` over verified HTTPS.

    Caddy issues a new name's certificate in the background after a load: the first
    handshake can come before it. Waits ``within`` seconds at most.
    """
    deadline = time.monotonic() + within
    while True:
        result = await asyncio.to_thread(_https, host, port, ca)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body.rstrip("\n")  # echo ends the page with a newline


async def _proxy_container(kombify: KombifyEnv, stack: str, node: str) -> str:
    """Id and start time of the proxy container: a restart changes the start time."""
    out = await kombify.on_node(
        stack,
        node,
        "sudo docker inspect --format '{{.Id}} {{.State.StartedAt}}' kombify-reverse-proxy-0",
    )
    return out.strip()


def _steps(run: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s["name"]: (s["state"], s.get("detail") or "") for s in run["progress"]["steps"]}


@pytest.fixture(scope="module")
async def modern(kombify: KombifyEnv, caddy_image: str) -> tuple[str, dict[str, Any]]:
    """The modern-homelab, deployed once for the module with photos and notes; name, run."""
    name = kombify.new_stack()
    source = MODERN.format(name=name, caddy=caddy_image, services=PHOTOS + NOTES)
    return name, await kombify.deploy(source)


async def test_each_name_reaches_its_service_over_verified_https(
    kombify: KombifyEnv, modern: tuple[str, dict[str, Any]]
) -> None:
    stack, run = modern
    assert run["state"] == "succeeded", run.get("summary")
    assert _steps(run)["routes"] == ("done", "2 route(s) through `main`")
    nodes = {n["name"]: n["services"] for n in run["progress"]["nodes"]}
    assert nodes == {
        "main": {"photos": "created", "reverse-proxy": "created"},
        "w1": {"notes": "created"},
    }
    ca = _root_ca(kombify, stack)
    assert "BEGIN CERTIFICATE" in ca.read_text()
    https = published(stack, "main", 443)
    domain = f"{stack}.home.arpa"

    assert await _answer(f"photos.{domain}", https, ca) == (200, "photos says hi")
    assert await _answer(f"notes.{domain}", https, ca) == (200, "notes says hi")

    # `kombify routes`: asked from the proxy now, beside what the revision wants.
    seen = await kombify.call("GET", f"/v1/stacks/{stack}/routes")
    assert (seen["answered"], seen["error"], seen["issuer"]) == (True, None, "internal"), seen[
        "error"
    ]
    assert (seen["proxy_node"], seen["https"]) == ("main", f"127.0.0.1:{https}")
    assert seen["root_ca_pem"] == ca.read_text()
    assert [(r["url"], r["service"], r["state"]) for r in seen["routes"]] == [
        (f"https://notes.{domain}", "notes", "routed"),
        (f"https://photos.{domain}", "photos", "routed"),
    ]

    logs = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    lines = [line["message"] for line in logs["data"] if line["source"] == "routes"]
    assert lines[0].startswith(f"https://notes.{domain} -> "), lines
    assert lines[0].endswith(":8081 on w1"), lines
    assert lines[1] == f"https://photos.{domain} -> photos:80 on main (by name)", lines
    assert lines[2] == "proxy on `main`: loaded 2 route(s)", lines


async def test_plain_http_redirects_to_https(modern: tuple[str, dict[str, Any]]) -> None:
    stack, _ = modern
    http = published(stack, "main", 80)
    host = f"photos.{stack}.home.arpa"
    result = await asyncio.to_thread(
        _curl,
        "-D",
        "-",
        "--resolve",
        f"{host}:{http}:127.0.0.1",
        f"http://{host}:{http}/albums?year=2026",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n308"), result.stdout
    assert f"\nLocation: https://{host}/albums?year=2026\n" in result.stdout, result.stdout


async def test_a_removed_service_loses_its_route_and_the_proxy_keeps_running(
    kombify: KombifyEnv, modern: tuple[str, dict[str, Any]], caddy_image: str
) -> None:
    stack, first = modern
    assert first["state"] == "succeeded", first.get("summary")
    before = await _proxy_container(kombify, stack, "main")
    ca = _root_ca(kombify, stack)
    https = published(stack, "main", 443)
    domain = f"{stack}.home.arpa"

    run = await kombify.deploy(MODERN.format(name=stack, caddy=caddy_image, services=PHOTOS))

    assert run["state"] == "succeeded", run.get("summary")
    assert _steps(run)["routes"] == ("done", "1 route(s) through `main`")
    assert await _proxy_container(kombify, stack, "main") == before  # same id, same start
    assert await _answer(f"photos.{domain}", https, ca) == (200, "photos says hi")
    seen = await kombify.call("GET", f"/v1/stacks/{stack}/routes")
    assert [(r["url"], r["state"]) for r in seen["routes"]] == [
        (f"https://photos.{domain}", "routed")
    ]
    gone = await asyncio.to_thread(_https, f"notes.{domain}", https, ca)
    # Refused in the handshake (no certificate for the name any more), or, where Caddy still
    # holds the old certificate in its storage, answered "no route".
    assert gone.returncode != 0 or gone.stdout.endswith("no route\n404"), gone


async def test_base_homelab_routes_on_its_one_node(kombify: KombifyEnv, caddy_image: str) -> None:
    stack = kombify.new_stack()
    photos = HTTPD.format(name="photos", node="box", ports="{container: 80}")
    run = await kombify.deploy(BASE.format(name=stack, caddy=caddy_image, services=photos))

    assert run["state"] == "succeeded", run.get("summary")
    assert _steps(run)["routes"] == ("done", "1 route(s) through `box`")
    ca = _root_ca(kombify, stack)
    https = published(stack, "box", 443)
    assert await _answer(f"photos.{stack}.home.arpa", https, ca) == (200, "photos says hi")
