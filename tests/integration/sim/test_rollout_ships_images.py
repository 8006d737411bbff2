"""When image staging did not happen, the rollout ships the images through the agent.

A deploy stages a node's images beside the agent install (StageImages). That is a head start
only: on a real node whose Docker engine the bootstrap is still installing, staging finds no
engine and the rollout has to ship the images itself, through the agent's LoadImage. The
end-to-end deploys always stage, so this path is driven here activity by activity, on a
simulated node that has never seen the image.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from kombify import sim
from kombify.activities.agent import AgentActivities
from kombify.activities.deploy import simulated_target
from kombify.activities.hostkeys import read_host_key
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget, RolloutInput
from kombify.settings import get_settings
from kombify.sim.image import HTTPD_IMAGE, ensure_httpd_image
from kombify.sim.models import NodeSpec, SimulationSpec
from tests.integration.sim.conftest import unique_name

pytestmark = pytest.mark.docker


class _Lines:
    """Stands in for DeployActivities as the agent activities' log sink; keeps the lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, deployment_id: str, source: str, message: str, level: str = "info") -> None:
        self.lines.append(message)


@pytest.fixture
def node(docker: Any, node_image: str) -> Iterator[NodeTarget]:
    ensure_httpd_image(docker)
    name = unique_name("ksh")
    spec = SimulationSpec(name=name, nodes=[NodeSpec(name="box", ports=[8080])])
    info = sim.create_simulation(name, spec, wait=True, timeout=120)
    try:
        (ssh,) = [n.ssh for n in info.nodes if n.ssh is not None]
        # Pinned on first contact, as PrepareDeployment does: every connection verifies it.
        key = asyncio.run(read_host_key(ssh.host, ssh.port))
        yield dataclasses.replace(simulated_target("box", "main", ssh), host_key=key.line)
    finally:
        sim.delete_simulation(name)


def _one_service(stack: str) -> str:
    """A stack work dir whose plan puts ``web`` (the test image) on node ``box``."""
    workdir = get_settings().home / "stacks" / "local" / stack / "tofu"
    (workdir / "manifests").mkdir(parents=True)
    service = {
        "name": "web",
        "image": HTTPD_IMAGE,
        "env": {},
        "ports": [{"container": 80, "host": 8080}],
        "volumes": [],
        "healthcheck": {"http": "http://localhost:80/", "interval": "1s"},
    }
    (workdir / "manifests" / "box.json").write_text(json.dumps({"services": [service]}))
    return str(workdir)


async def test_rollout_ships_what_was_not_staged(node: NodeTarget) -> None:
    workdir = _one_service("shipping")
    sink = _Lines()
    agent = AgentActivities(get_settings(), sink)  # type: ignore[arg-type]
    request = RolloutInput("d-ship", "s-ship", workdir, node, images_staged=False)
    env = ActivityEnvironment()

    await env.run(agent.install_agent, request)
    result = await env.run(agent.rollout, request)

    assert [(s.name, s.state, s.healthy) for s in result.services] == [("web", "created", True)]
    assert f"shipping image {HTTPD_IMAGE} from the control host" in sink.lines


async def test_staging_before_the_engine_answers_is_not_reported_as_staged(
    node: NodeTarget,
) -> None:
    # A node answers SSH before its Docker engine does (sshd starts first). With many nodes
    # booting at once (8 stacks deployed together) staging came first, found no engine and
    # still succeeded, so the rollout trusted the node to have the images and it had none.
    async with node_session(node) as session:
        await session.run(
            "pkill -TERM -x dockerd; for i in $(seq 100); do "
            "docker info >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1",
            sudo=True,
        )
    agent = AgentActivities(get_settings(), _Lines())  # type: ignore[arg-type]
    request = RolloutInput("d-stage", "s-stage", _one_service("staging"), node)

    with pytest.raises(ApplicationError, match="Docker engine") as raised:
        await ActivityEnvironment().run(agent.stage_images, request)

    assert raised.value.type == "NodeEngineNotReady" and raised.value.non_retryable
