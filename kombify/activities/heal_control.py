"""Healing's control activities: the HealStack schedule and the HealNode workflows of a stack.

These talk to Temporal (through the activity's own client), not to nodes: set a stack's
healing up as its deployed revision asks (after every good deploy, on every pass), take it
down before a destroy, and ask every HealNode for a round now (``kombify heal``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from kombify.activities.heal import HealActivities
from kombify.activities.heal_moves import MoveActivities
from kombify.contracts.deploy import search_attributes
from kombify.contracts.heal import (
    HEAL_RUN_KIND,
    EnsureHealingInput,
    HealingPlan,
    HealNodeInput,
    HealStackInput,
    NodeHealReport,
    NodeRef,
    StackRef,
    heal_node_workflow_id,
    heal_schedule_id,
)
from kombify.specs.quantities import parse_duration

# How long a destroy waits for the stack's HealNode workflows to end after cancelling them.
STOP_WAIT_SECONDS = 120.0


def _missing(exc: RPCError) -> bool:
    return exc.status == RPCStatusCode.NOT_FOUND


class HealControlActivities:
    """Schedules and HealNode workflows of stacks.

    Args:
        heal: The node-side healing activities (what is deployed).
        task_queue: The queue kombify's workers poll.
    """

    def __init__(self, heal: HealActivities, moves: MoveActivities, task_queue: str) -> None:
        self.heal = heal
        self.moves = moves
        self.task_queue = task_queue

    def _schedule(self, ref: StackRef, every: int, enabled: bool) -> Schedule:
        return Schedule(
            action=ScheduleActionStartWorkflow(
                "HealStack",
                HealStackInput(ref.organisation, ref.stack),
                id=f"heal-stack-run/{ref.organisation}/{ref.stack}",
                task_queue=self.task_queue,
                typed_search_attributes=search_attributes(
                    ref.organisation, ref.stack, HEAL_RUN_KIND
                ),
                execution_timeout=timedelta(minutes=30),
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every))]),
            # A pass still running when the next is due: the next one is skipped, not queued.
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            state=ScheduleState(
                paused=not enabled,
                note="spec.healing.enabled is false" if not enabled else "",
            ),
        )

    async def _node_workflows(self, client: Client, ref: StackRef) -> set[str]:
        """Nodes with a running HealNode workflow (listed; visibility may lag a moment)."""
        query = (
            f"WorkflowType = 'HealNode' AND ExecutionStatus = 'Running' AND "
            f"KombifyOrganisation = '{ref.organisation}' AND KombifyStack = '{ref.stack}'"
        )
        prefix = heal_node_workflow_id(ref.organisation, ref.stack, "")
        return {
            w.id.removeprefix(prefix)
            async for w in client.list_workflows(query)
            if w.id.startswith(prefix)
        }

    async def _cancel_nodes(self, client: Client, ref: StackRef, nodes: set[str]) -> list[str]:
        handles = [
            client.get_workflow_handle(heal_node_workflow_id(ref.organisation, ref.stack, n))
            for n in sorted(nodes)
        ]
        stopped = []
        for handle in handles:
            try:
                described = await handle.describe()
                if described.status != WorkflowExecutionStatus.RUNNING:
                    continue
                await handle.cancel()
                stopped.append(handle.id)
            except RPCError as exc:
                if not _missing(exc):
                    raise

        async def ended(handle: Any) -> None:
            try:
                await handle.result()
            except Exception:  # cancelled is how it is meant to end
                pass

        # A repair in flight finishes first (the workflow waits for it): nothing of healing
        # may touch the stack once this returns.
        running = [h for h in handles if h.id in stopped]
        if running:
            async with asyncio.timeout(STOP_WAIT_SECONDS):
                await asyncio.gather(*(ended(h) for h in running))
        return stopped

    @activity.defn(name="EnsureHealing")
    async def ensure(self, request: EnsureHealingInput) -> HealingPlan:
        """Schedule and HealNode workflows as the deployed revision's ``spec.healing`` says."""
        ref = StackRef(request.organisation, request.stack)
        deployed = await asyncio.to_thread(self.heal._deployed, ref, request.deploying)
        if deployed is None:
            return HealingPlan(deployed=False)
        if request.after_deploy:
            await asyncio.to_thread(self.moves.forget, ref.organisation, ref.stack)
        healing = deployed.kombination.spec.healing
        every = parse_duration(healing.every) or 300
        nodes = [n.name for n in deployed.kombination.spec.nodes]
        client = activity.client()
        schedule = self._schedule(ref, every, healing.enabled)
        schedule_id = heal_schedule_id(ref.organisation, ref.stack)
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(schedule_id).update(replace)
        running = await self._node_workflows(client, ref)
        if not healing.enabled:
            await self._cancel_nodes(client, ref, running | set(nodes))
        else:
            for node in nodes:
                handle = await client.start_workflow(
                    "HealNode",
                    HealNodeInput(NodeRef(ref.organisation, ref.stack, node)),
                    id=heal_node_workflow_id(ref.organisation, ref.stack, node),
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    search_attributes=search_attributes(ref.organisation, ref.stack, HEAL_RUN_KIND),
                )
                if request.reset:
                    await handle.signal("reset")
            # Nodes that left the stack: their HealNode ends by itself at its next watch
            # ("gone"); cancelling it now frees the node at once.
            await self._cancel_nodes(client, ref, running - set(nodes))
        return HealingPlan(
            nodes=nodes, enabled=healing.enabled, every_seconds=every, strategy=healing.strategy
        )

    @activity.defn(name="StopHealing")
    async def stop(self, ref: StackRef) -> list[str]:
        """Delete the stack's schedule and end its HealNode workflows (before a destroy)."""
        client = activity.client()
        try:
            await client.get_schedule_handle(heal_schedule_id(ref.organisation, ref.stack)).delete()
        except RPCError as exc:
            if not _missing(exc):
                raise
        deployed = await asyncio.to_thread(self.heal._deployed, ref)
        nodes = {n.name for n in deployed.kombination.spec.nodes} if deployed else set()
        nodes |= await self._node_workflows(client, ref)
        return await self._cancel_nodes(client, ref, nodes)

    @activity.defn(name="HealNodesNow")
    async def heal_now(self, ref: StackRef) -> list[NodeHealReport]:
        """A round now on every node's HealNode (``kombify heal``), crash loops forgotten."""
        deployed = await asyncio.to_thread(self.heal._deployed, ref)
        if deployed is None:
            return []
        client = activity.client()

        async def one(node: str) -> NodeHealReport:
            handle = client.get_workflow_handle(
                heal_node_workflow_id(ref.organisation, ref.stack, node)
            )
            try:
                report: NodeHealReport = await handle.execute_update(
                    "heal_now", True, result_type=NodeHealReport
                )
            except (RPCError, WorkflowUpdateFailedError) as exc:
                # Ended (the node left the stack) or failing: the pass says so, and its next
                # EnsureHealing starts the workflow again.
                return NodeHealReport(node, False, problems=[f"its HealNode did not answer: {exc}"])
            return report

        async def beat() -> None:
            while True:
                activity.heartbeat()
                await asyncio.sleep(10)

        beating = asyncio.create_task(beat())
        try:
            return list(
                await asyncio.gather(*(one(n.name) for n in deployed.kombination.spec.nodes))
            )
        finally:
            beating.cancel()

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.ensure, self.stop, self.heal_now]
