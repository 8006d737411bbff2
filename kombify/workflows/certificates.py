"""RenewCertificates: replace agent and control-plane certificates before they expire.

A Temporal schedule (``renew-certificates``, created by every worker at start) runs it daily;
``kombify certs renew`` runs it now. Deploys renew too, but a homelab that is left alone for
months must not lose contact with its agents.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from kombify.contracts.deploy import (
    ListStacksInput,
    PreparedDeploy,
    RenewInput,
    RenewNodeInput,
    RenewResult,
    RolloutInput,
)

with workflow.unsafe.imports_passed_through():
    from kombify.activities.agent import AgentActivities
    from kombify.activities.deploy import DeployActivities

SCHEDULE_ID = "renew-certificates"
WORKFLOW_ID = "certificates/renew"
_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=5))


@workflow.defn(name="RenewCertificates")
class RenewCertificates:
    """Checks every node of every deployed stack; one unreachable node does not stop the rest."""

    @workflow.run
    async def run(self, request: RenewInput) -> RenewResult:
        result = RenewResult()
        await workflow.execute_activity_method(
            AgentActivities.renew_control_certificate,
            request,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
        )
        stacks = await workflow.execute_activity_method(
            DeployActivities.deployed_stacks,
            ListStacksInput(),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
        )
        for stack in stacks:
            try:
                prepared: PreparedDeploy = await workflow.execute_activity_method(
                    DeployActivities.stack_nodes,
                    stack,
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=_RETRY,
                )
            except ActivityError as exc:
                result.unreachable[stack.stack] = str(exc.cause or exc)
                continue
            for node in prepared.nodes:
                key = f"{stack.stack}/{node.name}"
                result.checked.append(key)
                try:
                    renewed = await workflow.execute_activity_method(
                        AgentActivities.renew_certificate,
                        RenewNodeInput(
                            RolloutInput(
                                stack.deployment_id, prepared.stack_id, prepared.workdir, node
                            ),
                            within_days=request.within_days,
                        ),
                        start_to_close_timeout=timedelta(minutes=5),
                        heartbeat_timeout=timedelta(seconds=60),
                        retry_policy=_RETRY,
                    )
                except ActivityError as exc:
                    result.unreachable[key] = str(exc.cause or exc)
                    continue
                if renewed:
                    result.renewed.append(key)
        return result
