"""A kit's own catalog service deployed end to end, gated by the kit's own health check.

base-homelab turns on its `reverse-proxy` by default: the catalog's caddy entry, checked with
`tcp: 80`. Docker Hub is out of reach, so the kombination points that service at an image
built here from Debian's caddy package (`kombify-test/caddy:2`), the way an owner points any
catalog service at another image: `spec.services.<name>.image`. It also says `command: []`
(the image's own Caddyfile, serving a fixed page on :80) instead of the catalog's admin-socket
boot, since this test is about the health gate, not routes (tests/e2e/test_routes.py). The
health check is left alone: the kit's `tcp: 80` is what must gate the rollout, through the
real workflow, OpenTofu, SSH and the node agent.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from kombify.stackkits.library import load_library
from tests.support.deploy_env import KombifyEnv, published

pytestmark = [pytest.mark.docker, pytest.mark.slow]

KIT = "base-homelab"
SERVICE = "reverse-proxy"


@pytest.fixture(scope="session")
def caddy_image() -> str:
    """``kombify-test/caddy:2``, built here from Debian's caddy package when missing."""
    from kombify.sim.client import docker_client
    from kombify.sim.image import ensure_caddy_image

    client = docker_client()
    try:
        return ensure_caddy_image(client)
    finally:
        client.close()


def _kit_entry() -> dict[str, Any]:
    """The catalog entry base-homelab runs as its reverse proxy, as the library has it."""
    library = load_library()
    use = library.kit(KIT).services[SERVICE].use
    return library.catalog[use].model_dump(exclude={"description"}, exclude_none=True)


def _kombination(name: str, image: str, *, broken: bool = False) -> str:
    """base-homelab on one simulated node, its default reverse proxy running ``image``.

    ``broken`` is a new revision of it (an env change, so the container is replaced) whose
    check cannot pass: nothing listens on port 81.
    """
    caddy = load_library().catalog["caddy"]
    proxy: dict[str, Any] = {"image": image, "command": [], "volumes": caddy.volumes}
    if broken:
        proxy["env"] = {"REVISION": "2"}
        proxy["healthcheck"] = {"tcp": 81, "interval": "1s", "retries": 2, "timeout": "1s"}
    return f"""\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: {KIT}
  nodes:
    - {{name: box, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
  services:
    {SERVICE}: {json.dumps(proxy)}
"""


async def _get(port: int) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}/", timeout=5)


async def _agent_lines(kombify: KombifyEnv, run: dict[str, Any]) -> list[str]:
    logs = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    return [line["message"] for line in logs["data"] if line["source"] == "rollout/box"]


@pytest.fixture(scope="module")
async def deployed(kombify: KombifyEnv, caddy_image: str) -> tuple[str, dict[str, Any]]:
    """The stack, deployed once for the module; its name and that first run."""
    name = kombify.new_stack()
    return name, await kombify.deploy(_kombination(name, caddy_image))


async def test_the_kits_reverse_proxy_is_gated_by_its_own_check(
    kombify: KombifyEnv, deployed: tuple[str, dict[str, Any]], caddy_image: str
) -> None:
    entry = _kit_entry()
    assert entry["healthcheck"] == {"tcp": 80, "interval": "30s"}  # what must gate it
    stack, run = deployed

    assert run["state"] == "succeeded", run.get("summary")
    assert run["progress"]["nodes"][0]["services"] == {SERVICE: "created"}
    # A proxy without kombify's admin socket and nothing exposed: nothing to load or clear.
    routes = next(s for s in run["progress"]["steps"] if s["name"] == "routes")
    assert (routes["state"], routes["detail"]) == ("skipped", "the stack exposes no service")
    # The agent checked the catalog's tcp port, inside the container, and it passed.
    lines = await _agent_lines(kombify, run)
    assert f"{SERVICE}: tcp port 80" in lines, lines
    passed = [line for line in lines if line.startswith(f"{SERVICE}: tcp 127.0.0.1:80 in `")]
    assert passed and passed[-1].endswith(": accepted"), lines

    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    proxy = status["nodes"][0]["services"][SERVICE]
    assert proxy["state"] == "running" and proxy["health"] == "healthy", proxy
    assert [d["image"] for d in proxy["details"]] == [caddy_image]
    http = published(stack, "box", 80)
    assert f"127.0.0.1:{http} -> 80/tcp" in proxy["endpoints"], proxy["endpoints"]

    response = await _get(http)
    assert (response.status_code, response.text) == (200, "kombify caddy: ok")


async def test_a_check_that_cannot_pass_rolls_the_proxy_back(
    kombify: KombifyEnv, deployed: tuple[str, dict[str, Any]], caddy_image: str
) -> None:
    stack, first = deployed
    assert first["state"] == "succeeded", first.get("summary")
    before = await kombify.containers(stack, "box")
    assert list(before) == [SERVICE]

    run = await kombify.deploy(_kombination(stack, caddy_image, broken=True))

    assert run["state"] == "failed"
    # One line per cause, naming the node, the service and the check that failed.
    header, *causes = run["summary"]["error"].splitlines()
    assert header == "1 service(s) unhealthy:"
    (cause,) = causes
    assert cause.startswith(f"box/{SERVICE}: new revision unhealthy: "), cause
    assert "tcp 127.0.0.1:81 in `kombify-reverse-proxy-0`: Connection refused" in cause, cause
    assert run["progress"]["nodes"][0]["services"][SERVICE] == "rolled-back"
    # The previous revision serves again, the same container, healthy.
    assert await kombify.containers(stack, "box") == before
    response = await _get(published(stack, "box", 80))
    assert (response.status_code, response.text) == (200, "kombify caddy: ok")
    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    proxy = status["nodes"][0]["services"][SERVICE]
    assert proxy["state"] == "running" and proxy["health"] == "healthy", proxy
