"""kombify scaled out: two ``kombify worker`` and two ``kombify api`` processes on PostgreSQL.

Both workers poll one task queue of a Temporal started apart from them
(``KOMBIFY_TEMPORAL_ADDRESS``); all four processes share one ``KOMBIFY_HOME`` and one
database, and start together on both empty (they migrate the database, make the admin token
and, with the first deploys, the CA). Several stacks deploy at once, a worker killed
mid-deploy leaves the run to the other, and either API serves what the other started.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from kombify.db.engine import get_engine
from tests.support.cluster import Cluster
from tests.support.kombinations import one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STACKS_AT_ONCE = 3  # 2 cores: enough to overlap every step of the deploys


@pytest.fixture(scope="module")
def scale_database(postgres_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the module's cluster."""
    name = f"scale_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
async def cluster(
    temporal_address: str,
    scale_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    test_images: str,
) -> AsyncIterator[Cluster]:
    """Two workers and two API processes sharing a home, a database and a task queue."""
    env = Cluster(tmp_path_factory.mktemp("scale-home"), temporal_address, scale_database)
    try:
        env.start_worker(0)
        env.start_worker(1)
        await asyncio.gather(env.start_api(0), env.start_api(1))
        env.connect_apis()
        await env.wait_for_pollers()
        yield env
    finally:
        await env.close()


async def _deployed_at_once(cluster: Cluster, count: int) -> list[dict[str, Any]]:
    stacks = [cluster.new_stack() for _ in range(count)]
    runs = await asyncio.gather(
        *(cluster.start(one_node(s), api=i % 2) for i, s in enumerate(stacks))
    )
    return list(await asyncio.gather(*(cluster.wait(r) for r in runs)))


async def test_stacks_deployed_at_once_complete_on_two_workers(cluster: Cluster) -> None:
    finals = await _deployed_at_once(cluster, STACKS_AT_ONCE)

    assert [f["state"] for f in finals] == ["succeeded"] * STACKS_AT_ONCE, finals
    for final in finals:
        counts = {k: len(v) for k, v in (await cluster.containers(final["stack"], "box")).items()}
        assert counts == {"web": 1, "notes": 1}, final["stack"]
    # The work was shared: both worker processes ran activities of these runs.
    ran_on = {pid for f in finals for _, pid in await cluster.activity_workers(f)}
    assert ran_on == set(cluster.worker_pids().values())


async def test_each_api_serves_runs_the_other_started(cluster: Cluster) -> None:
    stacks = [cluster.new_stack() for _ in range(2)]
    runs = [await cluster.start(one_node(s), api=i) for i, s in enumerate(stacks)]
    for run in runs:
        await cluster.wait(run)

    for started_by, run in enumerate(runs):
        other = 1 - started_by
        seen = await cluster.call("GET", f"/v1/deployments/{run['id']}", api=other)
        assert seen["state"] == "succeeded" and seen["stack"] == run["stack"]
        status = await cluster.call("GET", f"/v1/stacks/{run['stack']}/status", api=other)
        assert status["observed"] is True, status
        assert status["last_deployment"]["id"] == run["id"]
        (node,) = status["nodes"]
        assert node["answered"] is True
        assert {n: s["state"] for n, s in node["services"].items()} == {
            "web": "running",
            "notes": "running",
        }
        logs = await cluster.call("GET", f"/v1/deployments/{run['id']}/logs", api=other)
        assert logs["data"], "no output lines stored for the run"
        assert any(line["source"] == "tofu" for line in logs["data"])


async def test_worker_killed_mid_deploy_the_other_finishes(cluster: Cluster) -> None:
    stack = cluster.new_stack()
    run = await cluster.start(one_node(stack), api=1)
    await cluster.wait_for_step(run, "agent")
    killed, interrupted = await cluster.busy_worker(run)
    index = cluster.kill_worker_pid(killed)
    try:
        (survivor,) = cluster.worker_pids().values()

        final = await cluster.wait(run)

        assert final["state"] == "succeeded", final
        counts = {k: len(v) for k, v in (await cluster.containers(stack, "box")).items()}
        assert counts == {"web": 1, "notes": 1}
        ran = await cluster.activity_workers(run)
        # What the killed worker was running, the survivor ran to the end; the rest too.
        last_attempt = dict(ran)  # by activity name: the worker of its last started attempt
        assert {name: last_attempt[name] for name in interrupted} == dict.fromkeys(
            interrupted, survivor
        )
        assert ran[-1] == ("RecordDeployment", survivor)
    finally:
        cluster.start_worker(index)
        await cluster.wait_for_pollers()
