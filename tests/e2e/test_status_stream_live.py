"""A stack's live status stream on KombiSim: a container killed behind kombify's back shows up
as a ``status`` event, without anyone asking again.

The stream is read from a second API process-alike (the same home, database, Temporal and
task queue) served on a loopback port: a streaming response needs a real connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kombify.api.app import create_app
from kombify.cli.sse import SseEvent
from tests.support.deploy_env import KombifyEnv
from tests.support.kombinations import NO_HEALING, one_node
from tests.support.served_api import served
from tests.support.status_stream import status_stream

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
async def stack(kombify: KombifyEnv) -> str:
    name = kombify.new_stack()
    run = await kombify.deploy(one_node(name, healing=NO_HEALING))
    assert run["state"] == "succeeded", run.get("summary")
    return name


@pytest.fixture
def api(kombify: KombifyEnv) -> Iterator[tuple[str, str]]:
    app = create_app(kombify.settings.model_copy(update={"status_stream_seconds": 2}))
    with served(app) as base:
        yield base, app.state.admin_token


def _web(event: SseEvent) -> dict[str, Any]:
    web: dict[str, Any] = event.json()["nodes"][0]["services"]["web"]
    return web


async def test_a_killed_container_arrives_as_a_status_event(
    kombify: KombifyEnv, stack: str, api: tuple[str, str]
) -> None:
    base, token = api
    async with status_stream(base, token, stack) as reader:
        first = await reader.wait_event("status")
        status = first.json()
        assert status["observed"] is True and status["nodes"][0]["answered"] is True
        assert _web(first)["state"] == "running" and _web(first)["healthy"] is True
        (web_id,) = (await kombify.containers(stack, "box"))["web"]

        await kombify.on_node(stack, "box", f"sudo docker kill {web_id}")

        # Within a couple of intervals (the wait's own bound is only a safety net).
        changed = await reader.wait_for(
            lambda e: e.event == "status" and int(e.id or 0) > 1 and not _web(e)["healthy"]
        )
    web = _web(changed)
    assert web["state"] == "exited" and web["health"] == "unknown"
    assert web["containers"][0].startswith(web_id)
    assert all(e.event == "status" for e in reader.events)  # no error on the way
    # The JSON route tells the same.
    again = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    assert again["nodes"][0]["services"]["web"]["state"] == "exited"
