"""Health checks of every kind gate a rollout on a simulated node, where the agent really runs.

The agent is installed on a KombiSim node (as a deploy does) and runs beside the node's own
dockerd, so the tcp check enters the container's network namespace there. The kit catalog's
caddy entry (reverse proxy, `tcp: 80` check) runs from an image built locally from Debian's
caddy package; a failing `cmd` check rolls back to the previous revision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from kombify.activities.agent import AgentActivities
from kombify.contracts.deploy import NodeRollout, NodeTarget, RolloutInput
from kombify.settings import get_settings
from kombify.sim.image import HTTPD_IMAGE, ensure_caddy_image, ensure_httpd_image
from kombify.stackkits.library import load_library
from tests.integration.sim.conftest import LogLines, pinned_sim_node

pytestmark = pytest.mark.docker


@pytest.fixture
def node(docker: Any, node_image: str) -> Iterator[NodeTarget]:
    ensure_httpd_image(docker)
    ensure_caddy_image(docker)
    with pinned_sim_node("khc", [80]) as target:
        yield target


def _reverse_proxy() -> dict[str, Any]:
    """The kit catalog's caddy entry, as the unifier puts it in a manifest; image built here."""
    entry = load_library().catalog["caddy"].model_dump(exclude={"description"}, exclude_none=True)
    assert entry["healthcheck"]["tcp"] == 80  # the kit's own check is what is exercised
    # Its env carries the boot config the entry's command starts caddy with: kept.
    return {**entry, "name": "reverse-proxy", "image": "kombify-test/caddy:2"}


def _job(check: dict[str, Any], *, version: str = "1") -> dict[str, Any]:
    return {
        "name": "job",
        "image": HTTPD_IMAGE,
        "env": {"VERSION": version},
        "ports": [],
        "volumes": [],
        "healthcheck": check,
    }


async def _rollout(
    agent: AgentActivities, workdir: Path, node: NodeTarget, services: list[dict[str, Any]]
) -> NodeRollout:
    (workdir / "manifests" / "box.json").write_text(json.dumps({"services": services}))
    request = RolloutInput("d-health", "s-health", str(workdir), node, images_staged=False)
    env = ActivityEnvironment()
    await env.run(agent.install_agent, request)
    return await env.run(agent.rollout, request)


async def test_kit_checks_gate_and_a_failing_cmd_rolls_back(node: NodeTarget) -> None:
    workdir = get_settings().home / "stacks" / "local" / "health" / "tofu"
    (workdir / "manifests").mkdir(parents=True)
    agent = AgentActivities(get_settings(), LogLines())  # type: ignore[arg-type]

    first = await _rollout(
        agent, workdir, node, [_reverse_proxy(), _job({"cmd": "test -s /www/index.html"})]
    )
    assert {(s.name, s.state, s.healthy) for s in first.services} == {
        ("reverse-proxy", "created", True),
        ("job", "created", True),
    }

    # A new revision with the example check: accepted and ignored before, so it
    # replaced the old one and was called healthy.
    broken = {"cmd": "false", "retries": 1, "timeout": "1s", "interval": "1s"}
    second = await _rollout(agent, workdir, node, [_reverse_proxy(), _job(broken, version="2")])
    states = {s.name: s for s in second.services}
    assert states["reverse-proxy"].state == "unchanged"
    assert (states["job"].state, states["job"].healthy) == ("rolled-back", False)
    assert "`false`" in states["job"].reason and "exit 1" in states["job"].reason
    assert states["job"].containers == next(s for s in first.services if s.name == "job").containers

    # A tcp check on a port nothing listens on fails there too (a new service: nothing to
    # roll back to), inside the node's own engine.
    # It runs the image's own caddy (no admin socket beside the proxy's): serving :80 only.
    deaf = {**_reverse_proxy(), "name": "deaf", "ports": [], "volumes": [], "command": []}
    deaf["env"] = {}
    deaf["healthcheck"] = {"tcp": 81, "interval": "1s", "retries": 2}
    third = await _rollout(agent, workdir, node, [_reverse_proxy(), _job({"cmd": "true"}), deaf])
    states = {s.name: s for s in third.services}
    assert (states["deaf"].state, states["deaf"].healthy) == ("failed", False)
    assert "tcp 127.0.0.1:81" in states["deaf"].reason
