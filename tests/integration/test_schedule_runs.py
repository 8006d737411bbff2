"""A schedule's runs are real RunUserWorkflow runs: a worker process completes them, and a
restarted worker completes the next ones (the schedule lives in Temporal, not in the worker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.test_schedules import WORKFLOW
from tests.support.deploy_env import KombifyEnv


@pytest.fixture
async def env(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[KombifyEnv]:
    kombify = KombifyEnv(tmp_path_factory.mktemp("schedule-home"), temporal_address)
    kombify.start_worker()
    yield kombify
    await kombify.close()


async def _completed_after(env: KombifyEnv, name: str, after: str, timeout: float = 120) -> Any:
    """The newest completed run started after ``after`` (RFC 3339), once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        shown = await env.call("GET", f"/v1/schedules/{name}")
        done = [
            r
            for r in shown["recent_runs"]
            if r["status"] == "completed" and r["started_at"] > after
        ]
        if done:
            return done[0]
        assert time.monotonic() < deadline, f"no completed run after {after}: {shown}"
        await asyncio.sleep(0.5)


async def test_scheduled_runs_complete_and_go_on_after_a_worker_restart(env: KombifyEnv) -> None:
    made = await env.call(
        "POST",
        "/v1/schedules",
        json={"name": "nap", "source": WORKFLOW, "filename": "nap.yaml", "every": "2s"},
    )

    first = await _completed_after(env, "nap", made["created_at"])
    # The run is one of the organisation's workflow runs, with its steps done.
    run = await env.call("GET", f"/v1/workflow-runs/{first['workflow_id']}")
    assert run["id"] == first["workflow_id"]
    assert [s["state"] for s in run["steps"]] == ["succeeded"]
    runs = (await env.call("GET", "/v1/workflow-runs"))["data"]
    listed = next(r for r in runs if r["id"] == first["workflow_id"])
    assert (listed["workflow"], listed["triggered_by"]) == ("nap", "schedule:nap")
    env.stop_worker()
    env.start_worker()
    later = await _completed_after(env, "nap", first["started_at"])
    assert later["workflow_id"] != first["workflow_id"]
    await env.call("DELETE", "/v1/schedules/nap")
