"""``provider: headscale`` on KombiSim: what a deploy does where enrollment cannot happen.

Headscale and Tailscale cannot be fetched here, so no node can be enrolled. Through the real
workflow, OpenTofu, SSH and the node agent, the deploy's network step asks the node itself
and fails, naming what is missing, before any service rolls out and before anything is
written for Headscale (not accepted and ignored). The enrollment that would follow is unit
tested with a fake runner (tests/unit/test_headscale_enroll.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import kit_defaults_off

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TEMPLATE = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: box, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
  network:
    vpn: {{enabled: true, provider: headscale}}
  healing: {{enabled: false}}
  services:
{disabled}
    web:
      image: kombify-test/httpd:1
      ports: [{{container: 80, host: 8080}}]
      healthcheck: {{http: "http://localhost:80/", interval: 1s}}
"""
NO_TAILSCALE = (
    "no `tailscale` binary on box (kombify enrolls each node with `tailscale up`: install "
    "Tailscale there)"
)
NO_IMAGE = (
    "the headscale image headscale/headscale:0.23.0 is not on box (load or pull it there, or "
    "make it available to the deploy's image staging)"
)


def _kombination(name: str, vpn: str = "") -> str:
    """base-homelab with Headscale; the kit's other services off (they pull from Docker Hub).

    ``vpn``: the ``services.vpn`` overrides in flow style, e.g. an image that is here.
    """
    disabled = [
        line
        for line in kit_defaults_off(TEMPLATE).splitlines()
        if not line.strip().startswith("vpn:")  # Headscale's server is the point
    ]
    if vpn:
        disabled.append(f"    vpn: {vpn}")
    return TEMPLATE.format(name=name, disabled="\n".join(disabled))


def _step(run: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(s for s in run["progress"]["steps"] if s["name"] == name))


async def _nothing_deployed(kombify: KombifyEnv, stack: str) -> None:
    assert await kombify.containers(stack, "box") == {}
    listing = await kombify.on_node(stack, "box", "ls /etc/kombify/headscale 2>&1 || true")
    assert "No such file or directory" in listing, listing


async def test_the_network_step_fails_naming_what_the_nodes_lack(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()

    run = await kombify.deploy(_kombination(stack))

    assert run["state"] == "failed"
    assert run["summary"]["error"] == f"headscale: {NO_TAILSCALE}; {NO_IMAGE}"
    assert _step(run, "network")["state"] == "failed"
    assert _step(run, "rollout")["state"] == "pending"
    await _nothing_deployed(kombify, stack)

    # An image that is here (staged onto the node by the deploy) leaves only Tailscale to
    # name: the check asks the node, it does not assume.
    again = await kombify.deploy(_kombination(stack, "{image: 'kombify-test/httpd:1'}"))

    assert again["state"] == "failed"
    assert again["summary"]["error"] == f"headscale: {NO_TAILSCALE}"
    assert _step(again, "network")["state"] == "failed"
    await _nothing_deployed(kombify, stack)
