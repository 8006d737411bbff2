"""ReportUsage: every closed hour of metered usage, to Stripe, once.

A Temporal schedule (``kombify-usage-report``, hourly, created by the worker when billing is
on) starts it. It fixes the hours to report from its own clock (those that ended at least
``REPORT_SETTLE`` ago), measures their deploy minutes, then reports each organisation's
unreported hours in an activity of its own: one organisation Stripe refuses does not hold up
the others, and is tried again by the next run.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from kombify.contracts.usage import (
    OrgUsageInput,
    OrgUsageResult,
    ReportUsageInput,
    ReportUsageResult,
    UsageWindow,
)

with workflow.unsafe.imports_passed_through():
    from kombify.activities.usage import UsageActivities
    from kombify.billing.usage import closed_before

_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=4,
    non_retryable_error_types=["stripe-refused"],
)
# Organisations reported at once.
_PARALLEL = 8


@workflow.defn(name="ReportUsage")
class ReportUsage:
    """Measures deploy minutes, then reports every organisation's unreported closed hours."""

    @workflow.run
    async def run(self, request: ReportUsageInput) -> ReportUsageResult:
        until = request.until or closed_before(workflow.now()).isoformat()
        window = UsageWindow(until=until)
        result = ReportUsageResult(until=until)
        pending = request.pending
        if pending is None:
            result.measured = await workflow.execute_activity_method(
                UsageActivities.measure,
                window,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=_RETRY,
            )
            pending = await workflow.execute_activity_method(
                UsageActivities.organisations,
                window,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=_RETRY,
            )
        while pending:
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(ReportUsageInput(until=until, pending=pending))
            batch, pending = pending[:_PARALLEL], pending[_PARALLEL:]
            for org, (done, error) in zip(batch, await self._report(batch, until), strict=True):
                result.organisations += 1
                if done is None:
                    result.failed[org] = error
                else:
                    result.sent += done.sent
                    result.already_reported += done.already_reported
        return result

    async def _report(
        self, batch: list[str], until: str
    ) -> list[tuple[OrgUsageResult | None, str]]:
        """Each organisation's outcome: what it reported, or why it failed."""

        async def one(org: str) -> tuple[OrgUsageResult | None, str]:
            try:
                done = await workflow.execute_activity_method(
                    UsageActivities.report,
                    OrgUsageInput(organisation_id=org, until=until),
                    start_to_close_timeout=timedelta(minutes=10),
                    heartbeat_timeout=timedelta(minutes=1),
                    retry_policy=_RETRY,
                )
            except ActivityError as exc:
                return None, str(exc.cause or exc)
            return done, ""

        return list(await asyncio.gather(*(one(org) for org in batch)))
