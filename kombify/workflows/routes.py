"""ObserveRoutes: one short workflow that asks a stack's reverse proxy what it routes now.

Like ObserveStack: the API asks through a worker, which holds what reaching a node takes;
one attempt, since an answer is wanted now or not at all.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from kombify.contracts.routes import RoutesQuery, RoutesSeen

OBSERVE_ROUTES_TIMEOUT = timedelta(seconds=45)


def routes_workflow_id(organisation: str, stack: str, nonce: str) -> str:
    """Which stack, and a nonce so two terminals can ask at once."""
    return f"routes/{organisation}/{stack}/{nonce}"


@workflow.defn(name="ObserveRoutes")
class ObserveRoutesWorkflow:
    """Runs the ObserveRoutes activity once and returns what the proxy said."""

    @workflow.run
    async def run(self, request: RoutesQuery) -> RoutesSeen:
        seen: RoutesSeen = await workflow.execute_activity(
            "ObserveRoutes",
            request,
            result_type=RoutesSeen,
            start_to_close_timeout=OBSERVE_ROUTES_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return seen
