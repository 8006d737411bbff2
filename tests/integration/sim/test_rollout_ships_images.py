"""When image staging did not happen, the rollout ships the images through the agent.

A deploy stages a node's images beside the agent install (StageImages). That is a head start
only: on a real node whose Docker engine the bootstrap is still installing, staging finds no
engine and the rollout has to ship the images itself, through the agent's LoadImage. The
end-to-end deploys always stage, so this path is driven here activity by activity, on a
simulated node that has never seen the image.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from kombify.activities.agent import AgentActivities
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget, RolloutInput
from kombify.settings import get_settings
from kombify.sim.image import HTTPD_IMAGE, ensure_httpd_image
from tests.integration.sim.conftest import LogLines, pinned_sim_node

pytestmark = pytest.mark.docker


@pytest.fixture
def node(docker: Any, node_image: str) -> Iterator[NodeTarget]:
    ensure_httpd_image(docker)
    with pinned_sim_node("ksh", [8080]) as target:
        yield target


def _one_service(stack: str, image: str = HTTPD_IMAGE) -> str:
    """A stack work dir whose plan puts ``web`` (the test image) on node ``box``."""
    workdir = get_settings().home / "stacks" / "local" / stack / "tofu"
    (workdir / "manifests").mkdir(parents=True, exist_ok=True)
    service = {
        "name": "web",
        "image": image,
        "env": {},
        "ports": [{"container": 80, "host": 8080}],
        "volumes": [],
        "healthcheck": {"http": "http://localhost:80/", "interval": "1s"},
    }
    (workdir / "manifests" / "box.json").write_text(json.dumps({"services": [service]}))
    return str(workdir)


async def test_rollout_ships_what_was_not_staged(node: NodeTarget) -> None:
    workdir = _one_service("shipping")
    sink = LogLines()
    agent = AgentActivities(get_settings(), sink)  # type: ignore[arg-type]
    request = RolloutInput("d-ship", "s-ship", workdir, node, images_staged=False)
    env = ActivityEnvironment()

    await env.run(agent.install_agent, request)
    result = await env.run(agent.rollout, request)

    assert [(s.name, s.state, s.healthy) for s in result.services] == [("web", "created", True)]
    assert f"shipping image {HTTPD_IMAGE} from the control host" in sink.lines


async def test_one_image_under_a_second_name_reaches_the_node_by_that_name(
    node: NodeTarget, docker: Any
) -> None:
    agent = AgentActivities(get_settings(), LogLines())  # type: ignore[arg-type]
    env = ActivityEnvironment()
    first = RolloutInput("d-n1", "s-n", _one_service("renamed"), node)
    await env.run(agent.install_agent, first)
    assert await env.run(agent.stage_images, first) == [HTTPD_IMAGE]
    assert (await env.run(agent.rollout, first)).services[0].healthy
    # The same content, re-tagged here: the node has the bytes, not the new name.
    renamed = f"kombify-test/renamed-{secrets.token_hex(3)}:1"
    docker.images.get(HTTPD_IMAGE).tag(renamed)
    try:
        second = RolloutInput(
            "d-n2", "s-n", _one_service("renamed", renamed), node, images_staged=True
        )
        assert await env.run(agent.stage_images, second) == [renamed]
        result = await env.run(agent.rollout, second)
    finally:
        docker.images.remove(renamed)

    assert [(s.name, s.state, s.healthy) for s in result.services] == [("web", "updated", True)]


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
    agent = AgentActivities(get_settings(), LogLines())  # type: ignore[arg-type]
    request = RolloutInput("d-stage", "s-stage", _one_service("staging"), node)

    with pytest.raises(ApplicationError, match="Docker engine") as raised:
        await ActivityEnvironment().run(agent.stage_images, request)

    assert raised.value.type == "NodeEngineNotReady" and raised.value.non_retryable
