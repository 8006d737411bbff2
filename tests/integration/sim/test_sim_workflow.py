"""RunSimulation on the time-skipping test server with the real Docker activities."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from kombify.activities.docker import CreateSimulationInput, SimActivities
from kombify.sim.engine import SimEngine
from kombify.sim.models import NodeSpec, SimulationSpec
from kombify.workflows.simulation import (
    RunSimulationInput,
    RunSimulationWorkflow,
    workflow_id,
)
from tests.integration.sim.conftest import unique_name
from tests.support.temporal import time_skipping_server

pytestmark = pytest.mark.docker


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server()
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


def _worker(env: WorkflowEnvironment, docker: Any, image: str, queue: str) -> Worker:
    return Worker(
        env.client,
        task_queue=queue,
        workflows=[RunSimulationWorkflow],
        activities=SimActivities(docker, image=image).all(),
    )


async def test_runs_until_ttl_then_tears_down(
    env: WorkflowEnvironment, docker: Any, node_image: str, engine: SimEngine
) -> None:
    name = unique_name("kt-wf")
    queue = f"q-{uuid.uuid4().hex}"
    spec = SimulationSpec(name=name, nodes=[NodeSpec(name="n1"), NodeSpec(name="n2")])
    try:
        async with _worker(env, docker, node_image, queue):
            result = await env.client.execute_workflow(
                RunSimulationWorkflow.run,
                RunSimulationInput(spec=spec, ttl_seconds=600, refresh_seconds=120),
                id=workflow_id(name),
                task_queue=queue,
            )
        assert result.ended_by == "ttl"
        assert set(result.ssh_seconds) == {"n1", "n2"}
    finally:
        engine.delete(name)
    assert engine.leftovers(name) == {"containers": [], "networks": [], "volumes": []}


async def test_stop_signal_and_node_query(
    env: WorkflowEnvironment, docker: Any, node_image: str, engine: SimEngine
) -> None:
    name = unique_name("kt-wf")
    queue = f"q-{uuid.uuid4().hex}"
    spec = SimulationSpec(name=name, nodes=[NodeSpec(name="solo")])
    try:
        async with _worker(env, docker, node_image, queue):
            handle = await env.client.start_workflow(
                RunSimulationWorkflow.run,
                RunSimulationInput(spec=spec, ttl_seconds=24 * 3600),
                id=workflow_id(name),
                task_queue=queue,
            )
            # Queries do not skip time; poll until the nodes are up.
            for _ in range(300):
                if await handle.query(RunSimulationWorkflow.phase) == "ready":
                    break
                await asyncio.sleep(0.2)
            nodes = await handle.query(RunSimulationWorkflow.nodes)
            assert [(n.name, n.state) for n in nodes] == [("solo", "running")]
            assert nodes[0].host == "127.0.0.1" and nodes[0].port > 0
            await handle.signal(RunSimulationWorkflow.stop)
            result = await handle.result()
        assert result.ended_by == "signal"
        assert engine.find(name) is None
    finally:
        engine.delete(name)


async def test_create_activity_is_idempotent(
    docker: Any, node_image: str, engine: SimEngine
) -> None:
    """A retried create (a worker killed mid-create) finishes without duplicates."""
    name = unique_name("kt-wf")
    activities = SimActivities(docker, image=node_image)
    spec = SimulationSpec(name=name, nodes=[NodeSpec(name="a"), NodeSpec(name="b")])
    try:
        # A first attempt that died after making only node `a`:
        engine.create(SimulationSpec(name=name, nodes=spec.nodes[:1]), start=False)
        state = await ActivityEnvironment().run(activities.create, CreateSimulationInput(spec))
        again = await ActivityEnvironment().run(activities.create, CreateSimulationInput(spec))
        assert [n.name for n in state.nodes] == ["a", "b"] == [n.name for n in again.nodes]
        assert len(engine.leftovers(name)["containers"]) == 2
    finally:
        engine.delete(name)


async def test_bad_spec_fails_without_retry(
    env: WorkflowEnvironment, docker: Any, node_image: str, engine: SimEngine
) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    spec = SimulationSpec(name="kt-bad", nodes=[NodeSpec(name="Bad_Name")])
    async with _worker(env, docker, node_image, queue):
        with pytest.raises(WorkflowFailureError):
            await env.client.execute_workflow(
                RunSimulationWorkflow.run,
                RunSimulationInput(spec=spec),
                id=workflow_id(f"kt-bad-{uuid.uuid4().hex[:6]}"),
                task_queue=queue,
            )
    assert engine.find("kt-bad") is None
