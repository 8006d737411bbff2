"""ObserveStack: one short workflow that asks a stack's node agents what runs, for status.

The API asks through a worker because only workers hold what reaching a node takes (SSH keys,
the control plane's client certificate); one attempt, since a status is wanted now or not at
all, and the caller says which node did not answer.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from kombify.contracts.observe import ObserveInput, StackSeen
    from kombify.contracts.vpn import VpnQuery, VpnSeen

# Every node is asked at once, each within the activity's own per-node limit.
OBSERVE_TIMEOUT = timedelta(seconds=45)


def observe_workflow_id(organisation: str, stack: str, nonce: str) -> str:
    """Ids carry meaning: which stack, and a nonce so two terminals can ask at once."""
    return f"observe/{organisation}/{stack}/{nonce}"


@workflow.defn(name="ObserveStack")
class ObserveStackWorkflow:
    """Runs the ObserveStack activity once and returns what the nodes said."""

    @workflow.run
    async def run(self, request: ObserveInput) -> StackSeen:
        seen: StackSeen = await workflow.execute_activity(
            "ObserveStack",
            request,
            result_type=StackSeen,
            start_to_close_timeout=OBSERVE_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return seen


def vpn_workflow_id(organisation: str, stack: str, nonce: str) -> str:
    """Which stack's mesh is asked, and a nonce so two callers can ask at once."""
    return f"observe-vpn/{organisation}/{stack}/{nonce}"


@workflow.defn(name="ObserveVpn")
class ObserveVpnWorkflow:
    """Runs the ObserveVpn activity once and returns what the nodes' mesh interfaces say."""

    @workflow.run
    async def run(self, request: VpnQuery) -> VpnSeen:
        seen: VpnSeen = await workflow.execute_activity(
            "ObserveVpn",
            request,
            result_type=VpnSeen,
            start_to_close_timeout=OBSERVE_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return seen
