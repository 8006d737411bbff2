"""PrepareDeployment heartbeats while its work runs: a slow prepare is not timed out.

The deploy gives PrepareDeployment a heartbeat timeout; building the node image or waiting
for new nodes' SSH can take longer than that without a line to report. Here the activity's
work is made slower (three heartbeat timeouts) than a short heartbeat timeout on a real
Temporal dev server allows without heartbeats.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from kombify.activities.deploy import DeployActivities
from kombify.contracts.deploy import PreparedDeploy, PrepareInput
from kombify.settings import Settings

HEARTBEAT_TIMEOUT = timedelta(seconds=2)


class SlowPrepare(DeployActivities):
    """The real activity, whose work takes three heartbeat timeouts."""

    def _prepare(self, request: PrepareInput, *, create: bool) -> PreparedDeploy:
        time.sleep(HEARTBEAT_TIMEOUT.total_seconds() * 3)
        return PreparedDeploy(stack_id=request.stack, workdir="/nowhere", nodes=[], plan_hash="h")


@workflow.defn(name="PrepareOnly")
class PrepareOnly:
    @workflow.run
    async def run(self, request: PrepareInput) -> PreparedDeploy:
        result: PreparedDeploy = await workflow.execute_activity(
            "PrepareDeployment",
            request,
            result_type=PreparedDeploy,
            start_to_close_timeout=timedelta(minutes=1),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return result


async def test_a_slow_prepare_heartbeats_through(
    temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    activities = SlowPrepare(Settings(home=tmp_path, temporal_address=temporal_address))
    client = await Client.connect(temporal_address)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[PrepareOnly],
        activities=[activities.prepare],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await client.execute_workflow(
            PrepareOnly.run,
            PrepareInput(
                deployment_id=uuid.uuid4().hex, organisation="local", stack="lab", revision=1
            ),
            id=f"prepare-heartbeat/{uuid.uuid4().hex}",
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=1),
        )
    assert result.stack_id == "lab"
