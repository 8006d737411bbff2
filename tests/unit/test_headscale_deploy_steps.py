"""DeployKombination with a Headscale VPN, on the time-skipping test server with stand-in
activities: a Headscale that cannot enroll fails the network step with the activity's
message (before any service rolls out); one that can is enrolled after the rollout and the
network step says which nodes joined."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kombify.activities.tofu import TofuPlanInput, TofuPlanResult
from kombify.contracts.deploy import (
    DeployInput,
    DeployProgress,
    NodeRollout,
    NodeTarget,
    PreparedDeploy,
    PrepareInput,
    RecordInput,
    RolloutInput,
)
from kombify.contracts.headscale import HeadscaleInput, HeadscaleResult
from kombify.contracts.heal import HealingPlan
from kombify.contracts.routes import RoutesInput, RoutesResult
from kombify.tofu.models import PlanSummary
from kombify.workflows.deploy import DeployKombination
from tests.support.temporal import time_skipping_server

MISSING = (
    "headscale: no `tailscale` binary on home (kombify enrolls each node with `tailscale up`: "
    "install Tailscale there)"
)
NODES = [
    NodeTarget("home", "local", "main", "127.0.0.1", 2201, "root", "/dev/null"),
    NodeTarget("edge", "hetzner", "edge", "127.0.0.1", 2202, "root", "/dev/null"),
]


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server()
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


class Stand:
    """Stand-ins for the deploy's activities; ``can_enroll`` picks PrepareHeadscale's answer."""

    def __init__(self, *, can_enroll: bool) -> None:
        self.can_enroll = can_enroll
        self.called: list[str] = []

    def all(self) -> list[Any]:
        @activity.defn(name="PrepareDeployment")
        async def prepare(_: PrepareInput) -> PreparedDeploy:
            return PreparedDeploy("s1", "/nowhere/tofu", NODES, "hash", headscale=True)

        @activity.defn(name="InstallNodeAgent")
        async def install(_: RolloutInput) -> str:
            return "1"

        @activity.defn(name="StageImages")
        async def stage(_: RolloutInput) -> list[str]:
            return []

        @activity.defn(name="TofuPlan")
        async def plan(_: TofuPlanInput) -> TofuPlanResult:
            return TofuPlanResult("s1", PlanSummary(0, 0, 0))

        @activity.defn(name="PrepareHeadscale")
        async def prepare_headscale(_: HeadscaleInput) -> HeadscaleResult:
            self.called.append("PrepareHeadscale")
            if not self.can_enroll:
                raise ApplicationError(MISSING, type="vpn-prerequisite", non_retryable=True)
            return HeadscaleResult("edge", "http://203.0.113.7:8480")

        @activity.defn(name="RolloutServices")
        async def rollout(request: RolloutInput) -> NodeRollout:
            self.called.append(f"RolloutServices {request.node.name}")
            return NodeRollout(request.node.name, [])

        @activity.defn(name="EnrollHeadscale")
        async def enroll(_: HeadscaleInput) -> HeadscaleResult:
            self.called.append("EnrollHeadscale")
            return HeadscaleResult("edge", "http://203.0.113.7:8480", ["home"], ["edge"])

        @activity.defn(name="ApplyRoutes")
        async def routes(_: RoutesInput) -> RoutesResult:
            return RoutesResult("skipped", "no proxy")

        @activity.defn(name="EnsureHealing")
        async def healing(_: Any) -> HealingPlan:
            return HealingPlan()

        @activity.defn(name="RecordDeployment")
        async def record(_: RecordInput) -> None:
            return None

        return [
            prepare, install, stage, plan, prepare_headscale, rollout, enroll, routes, healing,
            record,
        ]  # fmt: skip


async def _deploy(env: WorkflowEnvironment, stand: Stand) -> tuple[Any, DeployProgress]:
    queue = f"q-{uuid.uuid4().hex}"
    async with Worker(
        env.client, task_queue=queue, workflows=[DeployKombination], activities=stand.all()
    ):
        handle: WorkflowHandle[Any, Any] = await env.client.start_workflow(
            DeployKombination.run,
            DeployInput("d1", "org", "lab", 1, auto_approve=True),
            id=f"deploy/org/lab-{queue}",
            task_queue=queue,
        )
        result = await handle.result()
        progress = await handle.query(DeployKombination.progress)
    return result, progress


def _step(progress: DeployProgress, name: str) -> Any:
    return next(s for s in progress.steps if s.name == name)


async def test_a_headscale_that_cannot_enroll_fails_the_network_step_naming_what_is_missing(
    env: WorkflowEnvironment,
) -> None:
    stand = Stand(can_enroll=False)
    result, progress = await _deploy(env, stand)
    assert result.state == "failed"
    assert result.error == MISSING
    assert _step(progress, "network").state == "failed"
    assert not any(c.startswith("RolloutServices") for c in stand.called)  # nothing rolled out


async def test_headscale_is_prepared_before_rollout_and_enrolls_after_it(
    env: WorkflowEnvironment,
) -> None:
    stand = Stand(can_enroll=True)
    result, progress = await _deploy(env, stand)
    assert result.state == "succeeded", result.error
    assert stand.called[0] == "PrepareHeadscale" and stand.called[-1] == "EnrollHeadscale"
    assert _step(progress, "network").state == "done"
    assert _step(progress, "network").detail == (
        "headscale on edge (http://203.0.113.7:8480): config and ACL policy; enrolled home; "
        "already in: edge"
    )
