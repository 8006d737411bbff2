"""HealStack on a swarm kit: a lost manager quorum opens an incident, its return closes it.

The workflow runs for real on Temporal's time-skipping test server; the activities it calls
are stand-ins that record what they were asked (the swarm itself is tested end to end in
tests/e2e/test_swarm.py, HealSwarm included).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kombify.contracts.heal import (
    DriftFound,
    DriftStillThere,
    EnsureHealingInput,
    HealingPlan,
    HealPassResult,
    HealStackInput,
    Incident,
    IncidentKey,
    IncidentOpen,
    IncidentUpdate,
    NotifyInput,
    StackRef,
)
from kombify.contracts.swarm import SwarmHealth
from kombify.workflows.heal import HealStack
from tests.support.temporal import time_skipping_server


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server()
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


class _Fakes:
    """The heal pass's activities, answering from what the test sets."""

    def __init__(self) -> None:
        self.health = SwarmHealth(swarm=True)
        self.incidents: dict[int, Incident] = {}
        self.updates: list[IncidentUpdate] = []

    def all(self) -> list[Any]:
        @activity.defn(name="StackBusy")
        async def busy(_: StackRef) -> str:
            return ""

        @activity.defn(name="EnsureHealing")
        async def ensure(_: EnsureHealingInput) -> HealingPlan:
            return HealingPlan(nodes=["m1"], enabled=True, deployed=True)

        @activity.defn(name="DetectDrift")
        async def drift(_: StackRef) -> DriftFound:
            return DriftFound()

        @activity.defn(name="CloseMendedDrift")
        async def close(_: DriftStillThere) -> list[int]:
            return []

        @activity.defn(name="HealSwarm")
        async def heal_swarm(_: StackRef) -> SwarmHealth:
            return self.health

        @activity.defn(name="OpenIncidentFor")
        async def open_for(key: IncidentKey) -> Incident | None:
            return next(
                (
                    i
                    for i in self.incidents.values()
                    if (i.node, i.service, i.kind, i.state)
                    == (key.node, key.service, key.kind, "open")
                ),
                None,
            )

        @activity.defn(name="OpenIncident")
        async def open_incident(opened: IncidentOpen) -> int:
            number = len(self.incidents) + 1
            self.incidents[number] = Incident(
                number, opened.stack, opened.node, opened.service, opened.kind,
                opened.detection, opened.detail, opened.detected_at, "", [], "", "open",
            )  # fmt: skip
            return number

        @activity.defn(name="UpdateIncident")
        async def update(change: IncidentUpdate) -> Incident:
            self.updates.append(change)
            old = self.incidents[change.id]
            self.incidents[change.id] = Incident(
                old.id, old.stack, old.node, old.service, old.kind, old.detection, old.detail,
                old.detected_at, change.action, [*old.actions, change.action],
                change.recovered_at, change.state or old.state,
            )  # fmt: skip
            return self.incidents[change.id]

        @activity.defn(name="NotifyIncident")
        async def notify(_: NotifyInput) -> list[str]:
            return []

        return [busy, ensure, drift, close, heal_swarm, open_for, open_incident, update, notify]


async def _pass(env: WorkflowEnvironment, queue: str) -> HealPassResult:
    result: HealPassResult = await env.client.execute_workflow(
        HealStack.run,
        HealStackInput("local", "lab"),
        id=f"heal/local/lab/{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )
    return result


async def test_a_lost_quorum_is_an_incident_until_the_managers_have_it_again(
    env: WorkflowEnvironment,
) -> None:
    fakes = _Fakes()
    queue = f"test-{uuid.uuid4().hex[:12]}"
    async with Worker(env.client, task_queue=queue, workflows=[HealStack], activities=fakes.all()):
        fakes.health = SwarmHealth(swarm=True, quorum=False, detail="lost their quorum (m1)")
        first = await _pass(env, queue)
        second = await _pass(env, queue)  # still lost: the same incident, not a second one
        fakes.health = SwarmHealth(swarm=True, quorum=True, rejoined=["w2"], detail="3 managers")
        back = await _pass(env, queue)

    assert first.incidents == second.incidents == [1]
    assert "swarm: lost their quorum (m1)" in first.problems
    (incident,) = fakes.incidents.values()
    assert (incident.service, incident.kind, incident.state) == (
        "swarm",
        "swarm-quorum-lost",
        "recovered",
    )
    assert back.incidents == [1] and back.actions == ["w2: joined the swarm again"]
    assert fakes.updates[-1].action == "the managers have their quorum again (3 managers)"


async def test_a_stack_without_a_swarm_adds_nothing(env: WorkflowEnvironment) -> None:
    fakes = _Fakes()
    fakes.health = SwarmHealth(swarm=False)
    queue = f"test-{uuid.uuid4().hex[:12]}"
    async with Worker(env.client, task_queue=queue, workflows=[HealStack], activities=fakes.all()):
        result = await _pass(env, queue)

    assert (result.incidents, result.problems, result.actions) == ([], [], [])
    assert fakes.incidents == {}
