"""RunSimulation survives a worker killed mid-create: the real dev server, worker processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from kombify.sim import labels
from kombify.sim.engine import SimEngine, wait_gone
from kombify.sim.models import SimulationSpec
from kombify.sim.ssh import wait_all
from kombify.workflows.simulation import (
    RunSimulationInput,
    RunSimulationWorkflow,
    workflow_id,
)
from tests.integration.sim.conftest import unique_name
from tests.support.deploy_env import KombifyEnv

pytestmark = pytest.mark.docker


def _first_container(docker: Any, name: str, *, timeout: float = 120) -> None:
    """Return as soon as the engine holds any container of ``name``: create has begun."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker.api.containers(all=True, filters=labels.sim_filter(name)):
            return
        time.sleep(0.01)
    raise AssertionError(f"no container of `{name}` appeared within {timeout} s")


async def _wait_phase(handle: WorkflowHandle[Any, Any], phase: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    current = "?"
    while time.monotonic() < deadline:
        try:
            current = await handle.query(RunSimulationWorkflow.phase)
        except Exception:  # no worker answers queries for a moment after the kill
            current = "?"
        if current == phase:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"workflow still in phase `{current}` after {timeout} s, not `{phase}`")


async def _create_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    """The attempt of SimCreate that completed (history keeps only the last one's start)."""
    scheduled: set[int] = set()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == "SimCreate":
                scheduled.add(event.event_id)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                return started.attempt
    raise AssertionError("SimCreate never started")


async def test_killed_worker_mid_create_finishes_without_duplicates(
    temporal_address: str, tmp_path: Path, docker: Any, node_image: str, engine: SimEngine
) -> None:
    env = KombifyEnv(tmp_path / "home", temporal_address)
    name = unique_name("kt-crash")
    client = await Client.connect(temporal_address)
    try:
        env.start_worker()
        handle = await client.start_workflow(
            RunSimulationWorkflow.run,
            RunSimulationInput(
                spec=SimulationSpec.uniform(name, 3), ttl_seconds=3600, refresh_seconds=600
            ),
            id=workflow_id(name),
            task_queue=env.settings.task_queue,
        )
        await asyncio.to_thread(_first_container, docker, name)
        env.kill_worker()  # SIGKILL while SimCreate makes and starts the nodes
        env.start_worker()
        await _wait_phase(handle, "ready", timeout=150)

        assert await _create_attempts(handle) >= 2  # the first attempt died with the worker
        containers = docker.api.containers(all=True, filters=labels.sim_filter(name))
        nodes = sorted(c["Labels"][labels.NODE] for c in containers)
        assert nodes == ["node1", "node2", "node3"]  # exactly one container per node
        assert {c["State"] for c in containers} == {"running"}
        info = engine.info(name)
        await wait_all([n.ssh for n in info.nodes if n.ssh], timeout=30)

        await handle.signal(RunSimulationWorkflow.stop)
        result = await asyncio.wait_for(handle.result(), timeout=120)
        assert result.ended_by == "signal"
        assert await asyncio.to_thread(wait_gone, engine, name)
        assert engine.leftovers(name) == {"containers": [], "networks": [], "volumes": []}
    finally:
        await env.close()
        engine.delete(name)
