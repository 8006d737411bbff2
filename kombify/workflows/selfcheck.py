"""SelfCheck: a round trip through Temporal to a worker, used by ``kombify status``.

A running Temporal server says nothing about whether any worker polls kombify's task queue;
this workflow does, and reports which worker answered and whether it can reach the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from kombify.activities.selfcheck import WorkerProbe, probe_worker


@dataclass(frozen=True)
class SelfCheckInput:
    """Nothing to pass yet; a dataclass so fields can be added without breaking histories."""

    requested_by: str = "cli"


@dataclass(frozen=True)
class SelfCheckResult:
    """What the worker that picked up the check reported."""

    worker: WorkerProbe


@workflow.defn(name="SelfCheck")
class SelfCheckWorkflow:
    """Runs one probe activity on whichever worker polls the queue."""

    @workflow.run
    async def run(self, _: SelfCheckInput) -> SelfCheckResult:
        probe = await workflow.execute_activity(
            probe_worker,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return SelfCheckResult(worker=probe)
