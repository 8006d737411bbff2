"""The live log stream of a real deploy on KombiSim: a subscriber that joins mid-deploy gets
every line exactly once, stored ones first, then live ones, then the run's end."""

from __future__ import annotations

import pytest

from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import one_node
from tests.support.live_logs import reading
from tests.support.served_api import served

pytestmark = [pytest.mark.docker, pytest.mark.slow]


async def test_a_subscriber_joining_mid_deploy_gets_every_line_exactly_once(
    kombify: KombifyEnv,
) -> None:
    stack = kombify.new_stack()
    run = await kombify.start(one_node(stack))
    # Mid-deploy: OpenTofu has written its lines, the agent and rollout have not.
    await kombify.wait_for_step(run, "agent")
    before = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    with served(kombify.app) as base:
        async with reading(base, kombify.app.state.admin_token, run["id"]) as reader:
            pass  # until the stream's end event
    finished = await kombify.wait(run)
    assert finished["state"] == "succeeded", finished.get("summary")

    stored = (await kombify.call("GET", f"/v1/deployments/{run['id']}/logs"))["data"]
    got = reader.lines
    assert [(line["id"], line["message"]) for line in got] == [
        (line["id"], line["message"]) for line in stored
    ]
    assert len({line["id"] for line in got}) == len(got)  # none twice
    # It joined with lines stored and got live ones after: the seam was crossed.
    assert 0 < len(before["data"]) < len(stored)
    assert reader.events[-1].event == "end" and reader.events[-1].json() == {"state": "succeeded"}
    sources = {line["source"] for line in got}
    assert {"tofu", "agent/box", "rollout/box"} <= sources, sources
    assert {line["level"] for line in got} <= {"info", "warning", "error"}
    assert all(line["time"].endswith("Z") for line in got)
