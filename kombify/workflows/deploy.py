"""DeployKombination and DestroyKombination: kombify's main job, durable end to end.

The workflow decides; activities act. Inputs, results, signals and queries carry ids, names,
paths and counts only: node keys, certificates and tfvars stay on disk where activities
resolve them, so no secret ever enters a workflow history.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

from kombify.contracts.deploy import (
    ApproveSignal,
    CancelSignal,
    DeployInput,
    DeployProgress,
    DeployResult,
    NodeProgress,
    NodeRollout,
    NodeTarget,
    PreparedDeploy,
    PrepareInput,
    RecordInput,
    RolloutInput,
    StepState,
    deploy_workflow_id,
    search_attributes,
)
from kombify.contracts.heal import DeployingNow, EnsureHealingInput, HealingPlan, StackRef
from kombify.contracts.routes import RoutesInput, RoutesResult
from kombify.contracts.swarm import SwarmFormed, SwarmInput, SwarmRollout
from kombify.hostkeys import fingerprint_of
from kombify.workflows.failures import unhealthy_text

with workflow.unsafe.imports_passed_through():
    # The converter resolves dataclass field hints through sys.modules of the sandbox, so the
    # modules defining result types must be imported here, not only transitively.
    import kombify.tofu.models  # noqa: F401
    from kombify.activities.agent import NODE_UNREACHABLE, AgentActivities
    from kombify.activities.deploy import DeployActivities
    from kombify.activities.headscale import HeadscaleActivities
    from kombify.activities.swarm import SwarmActivities
    from kombify.activities.tofu import (
        TofuActivities,
        TofuApplyInput,
        TofuDestroyInput,
        TofuPlanInput,
        TofuPlanResult,
    )
    from kombify.activities.vpn import VpnActivities
    from kombify.contracts.headscale import HeadscaleInput, HeadscaleResult
    from kombify.contracts.vpn import MeshInput, MeshResult
    from kombify.unifier.changes import plan_lines

STEPS = (
    "validate",
    "plan",
    "approve",
    "apply",
    "agent",
    "network",
    "rollout",
    "routes",
    "record",
)
DESTROY_STEPS = ("prepare", "services", "destroy", "record")
# workflow.patched ids: each marks a change in the order of commands, so that histories
# recorded before it still replay (tests/unit/test_workflow_replay.py).
_AGENT_BESIDE_PLAN = "agent-install-beside-plan"
_STAGE_IMAGES = "stage-images-beside-agent"
_WAIT_FOR_NODE = "rollout-waits-for-unreachable-node"
_HEAL_AFTER_DEPLOY = "healing-set-up-after-deploy"
_STOP_HEALING = "healing-stopped-before-destroy"
_SWARM_FORMED = "swarm-formed-before-rollout"
_SWARM_DISSOLVED = "swarm-dissolved-on-destroy"
_ROUTES_AFTER_ROLLOUT = "routes-after-rollout"
_VPN_MESH = "vpn-mesh-before-rollout"
_HEADSCALE = "headscale-prepare-and-enroll"
_STAGE_BESIDE_SWARM = "swarm-images-staged-beside-forming"

# A node lost mid-rollout (stopped, rebooting, network down) is waited for this long, retried
# with growing pauses, before the run fails naming it as needing repair. Its agent puts the
# previous revision back by itself once it runs again; the next apply converges the node.
NODE_REPAIR_WAIT = timedelta(minutes=3)
_NODE_RETRY_FIRST = timedelta(seconds=2)
_NODE_RETRY_MAX = timedelta(seconds=30)
_ONCE = RetryPolicy(maximum_attempts=1)

# Quick steps: retry transient failures a few times. User mistakes are non-retryable anyway.
_QUICK = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1))
# Steps that touch machines: fewer attempts, longer backoff.
_MACHINE = RetryPolicy(
    maximum_attempts=3, initial_interval=timedelta(seconds=3), backoff_coefficient=2.0
)


class _Cancelled(Exception):
    """The user asked to stop; raised at the next step boundary."""


class _Failed(Exception):
    """The run cannot go on; the message is what the user needs to know."""


class _RunBase:
    """What deploy and destroy share: steps, progress, cancel."""

    kind = "deploy"
    step_names: tuple[str, ...] = STEPS

    def __init__(self) -> None:
        self._progress = DeployProgress(deployment_id="", stack="", kind=self.kind)
        self._cancel: CancelSignal | None = None

    def _begin(self, deployment_id: str, stack: str) -> None:
        self._progress.deployment_id = deployment_id
        self._progress.stack = stack
        self._progress.steps = [StepState(name) for name in self.step_names]

    def _step(self, name: str) -> StepState:
        return next(s for s in self._progress.steps if s.name == name)

    def _now(self) -> str:
        return workflow.now().isoformat(timespec="seconds")

    def _start(self, name: str, detail: str = "") -> None:
        if self._cancel is not None:
            raise _Cancelled(self._cancel.reason or f"cancelled by {self._cancel.by}")
        step = self._step(name)
        step.state, step.started_at, step.detail = "running", self._now(), detail

    def _finish(self, name: str, detail: str = "", state: str = "done") -> None:
        step = self._step(name)
        step.state, step.finished_at = state, self._now()
        if detail:
            step.detail = detail

    def _fail_running(self, state: str) -> None:
        for step in self._progress.steps:
            if step.state in ("running", "waiting"):
                step.state, step.finished_at = state, self._now()

    async def _run(
        self, request: DeployInput, body: Coroutine[Any, Any, None], *, forget_nodes: bool = False
    ) -> DeployResult:
        """Run ``body``, turn its end into a state, record it (always), return the result.

        Args:
            request: The run's input.
            body: The steps.
            forget_nodes: Forget the stack's nodes when the run succeeds (destroy).
        """
        self._begin(request.deployment_id, request.stack)
        try:
            await body
            self._progress.state = "succeeded"
        except _Cancelled as exc:
            self._progress.state, self._progress.error = "cancelled", str(exc)
            self._fail_running("cancelled")
        except (ActivityError, _Failed) as exc:
            self._progress.state, self._progress.error = "failed", _error_text(exc)
            self._fail_running("failed")
        succeeded = self._progress.state == "succeeded"
        await self._record(request.deployment_id, forget_nodes=forget_nodes and succeeded)
        return DeployResult(
            request.deployment_id, self._progress.state, self._progress.error, self._progress.nodes
        )

    async def _record(self, deployment_id: str, *, forget_nodes: bool = False) -> None:
        """Store the outcome; runs even after a failure or a cancel, so it retries long."""
        step = self._step("record")
        step.state, step.started_at = "running", self._now()
        await workflow.execute_activity_method(
            DeployActivities.record,
            RecordInput(
                deployment_id=deployment_id,
                state=self._progress.state,
                error=self._progress.error,
                nodes=self._progress.nodes,
                plan=self._progress.plan,
                forget_nodes=forget_nodes,
            ),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=20),
        )
        self._finish("record")

    @workflow.query(name="progress")
    def progress(self) -> DeployProgress:
        """Steps with state and timings, per-node detail, the plan summary."""
        return self._progress

    @workflow.signal(name="cancel")
    def cancel(self, signal: CancelSignal) -> None:
        """Stop at the next step boundary; nodes are never left half rolled out."""
        self._cancel = signal


def _prepare_input(request: DeployInput) -> PrepareInput:
    """Which revision of which stack a run's first activity resolves."""
    return PrepareInput(
        deployment_id=request.deployment_id,
        organisation=request.organisation,
        stack=request.stack,
        revision=request.revision,
        simulate=request.simulate,
    )


def _fingerprint(host_key: str) -> str:
    """The pin's fingerprint for the progress (pure hashing: deterministic on replay)."""
    try:
        return fingerprint_of(host_key)
    except ValueError:
        return ""


def _unreachable(exc: ActivityError) -> bool:
    """The activity lost its node: the connection went, or the node stopped answering."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return cause.type == NODE_UNREACHABLE and not cause.non_retryable
    return isinstance(cause, TimeoutError)


def _agent_absent(exc: ActivityError) -> bool:
    """InstallNodeAgent found the node but its agent did not answer (yet): try again."""
    cause = exc.cause
    return isinstance(cause, ApplicationError) and cause.type in ("ssh-error", "agent-error")


def _error_text(exc: BaseException) -> str:
    cause: BaseException = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause)


@workflow.defn(name="DeployKombination")
class DeployKombination(_RunBase):
    """validate → unify → plan → (approve) → apply → agent → network → rollout → routes →
    record."""

    def __init__(self) -> None:
        super().__init__()
        self._approved: ApproveSignal | None = None
        self._staged: set[str] = set()  # nodes whose images StageImages shipped
        # Swarm kits: StageImages runs from each node's agent install until the rollout.
        self._staging: list[asyncio.Task[None]] = []
        self._swarm_formed: SwarmFormed | None = None  # platform swarm: what FormSwarm made

    @workflow.signal(name="approve")
    def approve(self, signal: ApproveSignal) -> None:
        """Let a run that waits on plan approval go on."""
        self._approved = signal

    @workflow.run
    async def run(self, request: DeployInput) -> DeployResult:
        return await self._run(request, self._deploy(request))

    async def _set_up_healing(self, request: DeployInput) -> None:
        """Healing follows the revision just deployed; crash loops given up on are forgotten.

        The run's record is not written yet, so the set-up looks up the deployed revision
        through the deployment id this run carries, not the last recorded good deploy.
        """
        try:
            await workflow.execute_activity(
                "EnsureHealing",
                EnsureHealingInput(
                    request.organisation,
                    request.stack,
                    reset=True,
                    after_deploy=True,
                    deploying=DeployingNow(
                        request.deployment_id, request.revision, request.simulate
                    ),
                ),
                result_type=HealingPlan,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=_QUICK,
            )
        except ActivityError as exc:
            # The deploy itself succeeded and is recorded so; the next HealStack pass or
            # apply sets healing up again.
            workflow.logger.warning("healing of %s not set up: %s", request.stack, exc.cause)

    async def _deploy(self, request: DeployInput) -> None:
        self._start("validate", "validate and unify")
        prepared: PreparedDeploy = await workflow.execute_activity_method(
            DeployActivities.prepare,
            _prepare_input(request),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_QUICK,
        )
        self._progress.nodes = [
            NodeProgress(
                n.name, provider=n.provider, role=n.role, host_key=_fingerprint(n.host_key)
            )
            for n in prepared.nodes
        ]
        self._finish("validate", f"{len(prepared.nodes)} node(s), plan {prepared.plan_hash[-12:]}")

        try:
            await self._bootstrap_and_agents(request, prepared)
            await self._network(request, prepared)
            await asyncio.gather(*self._staging)  # swarm kits: images staged beside forming
        finally:
            # Staging still under way only when the run fails before its rollout.
            for staging in self._staging:
                staging.cancel()
            await asyncio.gather(*self._staging, return_exceptions=True)

        self._start("rollout", "roll out services, health-gated")
        # A swarm kit's services go through a manager beside the nodes' own (empty) manifests.
        swarm_task = (
            asyncio.create_task(self._swarm_rollout(request, prepared, self._swarm_formed))
            if self._swarm_formed is not None
            else None
        )
        try:
            rollouts = await asyncio.gather(
                *(self._rollout(request, prepared, n) for n in prepared.nodes)
            )
        finally:
            if swarm_task is not None and not swarm_task.done():
                await asyncio.wait([swarm_task])  # never left running behind a failure
        failed = [(r.node, s.name, s.reason) for r in rollouts for s in r.services if not s.healthy]
        swarm_detail = ""
        if swarm_task is not None:
            swarm = swarm_task.result()
            failed += [
                (f"swarm via {swarm.manager}", s.name, s.reason)
                for s in swarm.services
                if not s.healthy
            ]
            swarm_detail = "swarm: " + ", ".join(f"{s.name} {s.state}" for s in swarm.services)
        if failed:
            text = unhealthy_text(failed)
            self._finish("rollout", text, state="failed")
            raise _Failed(text)
        self._finish("rollout", swarm_detail)
        if prepared.headscale and workflow.patched(_HEADSCALE):
            await self._enroll(request, prepared)
        if workflow.patched(_ROUTES_AFTER_ROLLOUT):
            await self._routes(request, prepared)
        else:  # a run recorded before routes: no step boundary (a cancel must not land here)
            self._finish("routes", state="skipped")
        if workflow.patched(_HEAL_AFTER_DEPLOY):
            # Before the outcome is recorded: once a run reads as ended, the stack's next
            # deploy may start (one workflow id per stack), and healing is already in place.
            await self._set_up_healing(request)

    async def _bootstrap_and_agents(self, request: DeployInput, prepared: PreparedDeploy) -> None:
        """Plan, approval, then the bootstrap (apply) beside the agent installs.

        The agent needs only SSH, not the bootstrap, so it is installed beside OpenTofu; both
        converge, so if the bootstrap disturbs an install, its retry finishes the job. With
        --auto-approve there is no gate to wait for and it starts beside the plan already;
        otherwise nothing touches a node before the plan is approved.
        """
        agents: asyncio.Task[None] | None = None
        if request.auto_approve and workflow.patched(_AGENT_BESIDE_PLAN):
            self._start("agent", "install or upgrade the node agent")
            agents = asyncio.create_task(self._agents(request, prepared))
        try:
            planned = await self._plan(prepared)
            await self._approval(request)
            if agents is not None and agents.done():
                agents.result()  # an install that already failed fails the run before apply
            self._start("apply", "bootstrap nodes over SSH")
            apply = self._apply(prepared, planned.summary.has_changes)
            if agents is None:
                self._start("agent", "install or upgrade the node agent")
                await asyncio.gather(apply, self._agents(request, prepared))
            else:
                await asyncio.gather(apply, agents)
        finally:
            if agents is not None and not agents.done():  # the plan failed or was cancelled
                agents.cancel()
                await asyncio.gather(agents, return_exceptions=True)

    async def _swarm(self, request: DeployInput, prepared: PreparedDeploy) -> SwarmFormed:
        """Forms (or converges) the stack's Docker Swarm through the node agents."""
        formed: SwarmFormed = await workflow.execute_activity_method(
            SwarmActivities.form,
            SwarmInput(request.deployment_id, prepared.stack_id, prepared.workdir, prepared.nodes),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=_MACHINE,
        )
        return formed

    async def _swarm_rollout(
        self, request: DeployInput, prepared: PreparedDeploy, formed: SwarmFormed
    ) -> SwarmRollout:
        """The stack's Swarm services through a manager; Swarm rolls back a failed update."""
        rollout: SwarmRollout = await workflow.execute_activity_method(
            SwarmActivities.apply,
            SwarmInput(
                request.deployment_id,
                prepared.stack_id,
                prepared.workdir,
                prepared.nodes,
                publish_mode=formed.publish_mode,
                images_staged=all(n.name in self._staged for n in prepared.nodes),
            ),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=120),
            retry_policy=_MACHINE,
        )
        return rollout

    async def _routes(self, request: DeployInput, prepared: PreparedDeploy) -> None:
        """The proxy routes what the stack exposes now (and nothing it no longer exposes)."""
        self._start("routes", "load routes into the reverse proxy")
        result: RoutesResult = await workflow.execute_activity(
            "ApplyRoutes",
            RoutesInput(request.deployment_id, prepared.stack_id, prepared.workdir, prepared.nodes),
            result_type=RoutesResult,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_MACHINE,
        )
        self._finish("routes", result.detail, state="done" if result.state == "done" else "skipped")

    async def _plan(self, prepared: PreparedDeploy) -> TofuPlanResult:
        self._start("plan")
        planned: TofuPlanResult = await workflow.execute_activity_method(
            TofuActivities.plan,
            TofuPlanInput(stack_id=prepared.stack_id, workdir=prepared.workdir),
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_QUICK,
        )
        s = planned.summary
        self._progress.plan = {"add": s.add, "change": s.change, "destroy": s.destroy}
        self._progress.plan_lines = plan_lines(s, [n.name for n in prepared.nodes])
        self._finish("plan", f"{s.add} to add, {s.change} to change, {s.destroy} to destroy")
        return planned

    async def _apply(self, prepared: PreparedDeploy, has_changes: bool) -> None:
        if has_changes:
            await workflow.execute_activity_method(
                TofuActivities.apply,
                # The deploy reaches nodes through PrepareDeployment's targets, not outputs.
                TofuApplyInput(stack_id=prepared.stack_id, workdir=prepared.workdir, outputs=False),
                start_to_close_timeout=timedelta(minutes=60),
                heartbeat_timeout=timedelta(seconds=120),
                retry_policy=_MACHINE,
            )
        for node in self._progress.nodes:
            if node.state == "pending":
                node.state = "bootstrapped"
        self._finish("apply", "" if has_changes else "nodes already as planned")

    async def _agents(self, request: DeployInput, prepared: PreparedDeploy) -> None:
        stage = workflow.patched(_STAGE_IMAGES)
        await asyncio.gather(
            *(self._ready_node(request, prepared, n, stage) for n in prepared.nodes)
        )
        self._finish("agent")

    async def _ready_node(
        self, request: DeployInput, prepared: PreparedDeploy, node: NodeTarget, stage: bool
    ) -> None:
        """The agent, and (since _STAGE_IMAGES) the images the node lacks, side by side.

        On a swarm kit the images wait for the node's agent and then go beside the swarm's
        forming: on a busy host the staging's CPU would otherwise delay the agents that the
        forming waits for, while the forming itself (Raft, joins) mostly waits on the network.
        """
        if not stage:
            await self._install_agent(request, prepared, node)
            return
        if prepared.platform == "swarm" and workflow.patched(_STAGE_BESIDE_SWARM):
            await self._install_agent(request, prepared, node)
            self._staging.append(asyncio.create_task(self._stage_images(request, prepared, node)))
            return
        await asyncio.gather(
            self._install_agent(request, prepared, node),
            self._stage_images(request, prepared, node),
        )

    async def _stage_images(
        self, request: DeployInput, prepared: PreparedDeploy, node: NodeTarget
    ) -> None:
        try:
            await workflow.execute_activity_method(
                AgentActivities.stage_images,
                RolloutInput(request.deployment_id, prepared.stack_id, prepared.workdir, node),
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=120),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
            self._staged.add(node.name)
        except ActivityError:
            # Only a head start: the rollout ships whatever is still missing, through the agent.
            workflow.logger.warning(
                "staging images on %s failed; the rollout ships them", node.name
            )

    async def _network(self, request: DeployInput, prepared: PreparedDeploy) -> None:
        """What joins the nodes before services roll out on them: the WireGuard mesh."""
        self._start("network", "join the nodes")
        done: list[str] = []
        if prepared.vpn and workflow.patched(_VPN_MESH):
            done.append(await self._mesh(request, prepared))
        if prepared.headscale and workflow.patched(_HEADSCALE):
            done.append(await self._prepare_headscale(request, prepared))
        if prepared.platform == "swarm" and workflow.patched(_SWARM_FORMED):
            self._swarm_formed = await self._swarm(request, prepared)
            formed = self._swarm_formed
            done.append(
                f"swarm: {formed.managers} manager(s), {formed.workers} worker(s), quorum "
                f"{'held' if formed.quorum else 'lost'}, ports in {formed.publish_mode} mode"
            )
        if done:
            self._finish("network", "; ".join(done))
        else:
            self._finish("network", "nothing to join", state="skipped")

    async def _mesh(self, request: DeployInput, prepared: PreparedDeploy) -> str:
        """Build (or take down) the stack's WireGuard mesh through the agents; a summary."""
        result: MeshResult = await workflow.execute_activity_method(
            VpnActivities.mesh,
            MeshInput(
                request.deployment_id,
                prepared.stack_id,
                prepared.workdir,
                prepared.nodes,
                subnet=prepared.vpn_subnet,
                state="down" if prepared.vpn == "down" else "up",
            ),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_MACHINE,
        )
        if not result.subnet:
            return "WireGuard mesh removed"
        text = f"WireGuard mesh {result.subnet}: " + ", ".join(
            f"{n.name} {n.address.split('/')[0]}" for n in result.nodes
        )
        if result.unreachable:
            text += f" (no direct path: {', '.join(result.unreachable)})"
        return text

    def _headscale_input(self, request: DeployInput, prepared: PreparedDeploy) -> HeadscaleInput:
        return HeadscaleInput(
            request.deployment_id, prepared.stack_id, prepared.workdir, prepared.nodes
        )

    async def _prepare_headscale(self, request: DeployInput, prepared: PreparedDeploy) -> str:
        """Refuse a Headscale that cannot enroll (what is missing, by name); ship its config."""
        result: HeadscaleResult = await workflow.execute_activity_method(
            HeadscaleActivities.prepare,
            self._headscale_input(request, prepared),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_MACHINE,
        )
        return f"headscale on {result.server} ({result.server_url}): config and ACL policy"

    async def _enroll(self, request: DeployInput, prepared: PreparedDeploy) -> None:
        """Enroll the nodes once Headscale runs (after rollout); reported on the network step."""
        network = self._step("network")
        try:
            result: HeadscaleResult = await workflow.execute_activity_method(
                HeadscaleActivities.enroll,
                self._headscale_input(request, prepared),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=_MACHINE,
            )
        except ActivityError as exc:
            network.state = "failed"
            raise _Failed(f"headscale enrollment: {_error_text(exc)}") from exc
        parts = [f"enrolled {', '.join(result.enrolled)}"] if result.enrolled else []
        parts += [f"already in: {', '.join(result.already)}"] if result.already else []
        network.detail = "; ".join([network.detail, *parts])

    async def _approval(self, request: DeployInput) -> None:
        if request.auto_approve:
            self._start("approve")
            self._finish("approve", "auto-approved", state="skipped")
            return
        self._start("approve", "waiting for approval")
        self._step("approve").state = "waiting"
        self._progress.state = "waiting-approval"
        await workflow.wait_condition(
            lambda: self._approved is not None or self._cancel is not None
        )
        if self._cancel is not None:
            raise _Cancelled(self._cancel.reason or f"cancelled by {self._cancel.by}")
        self._progress.state = "running"
        assert self._approved is not None
        self._finish("approve", f"approved by {self._approved.by}")

    def _node(self, name: str) -> NodeProgress:
        return next(n for n in self._progress.nodes if n.name == name)

    async def _install_agent(
        self, request: DeployInput, prepared: PreparedDeploy, node: NodeTarget
    ) -> None:
        await workflow.execute_activity_method(
            AgentActivities.install_agent,
            RolloutInput(request.deployment_id, prepared.stack_id, prepared.workdir, node),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_MACHINE,
        )
        self._node(node.name).state = "agent-ready"

    async def _rollout(
        self, request: DeployInput, prepared: PreparedDeploy, node: NodeTarget
    ) -> NodeRollout:
        rollout = RolloutInput(
            request.deployment_id,
            prepared.stack_id,
            prepared.workdir,
            node,
            images_staged=node.name in self._staged,
        )
        try:
            result = await self._rollout_once(rollout, _MACHINE)
        except ActivityError as exc:
            if not _unreachable(exc) or not workflow.patched(_WAIT_FOR_NODE):
                raise
            result = await self._wait_for_node(request, rollout, exc)
        progress = self._node(node.name)
        progress.services = {s.name: s.state for s in result.services}
        progress.healthy = {s.name: s.healthy for s in result.services}
        progress.containers = {s.name: s.containers for s in result.services}
        progress.state = "rolled-out" if all(s.healthy for s in result.services) else "failed"
        progress.detail = "; ".join(s.reason for s in result.services if s.reason)
        return result

    async def _rollout_once(self, rollout: RolloutInput, retry: RetryPolicy) -> NodeRollout:
        result: NodeRollout = await workflow.execute_activity_method(
            AgentActivities.rollout,
            rollout,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=retry,
        )
        return result

    async def _wait_for_node(
        self, request: DeployInput, rollout: RolloutInput, lost: ActivityError
    ) -> NodeRollout:
        """Retry the rollout of a node that went away until it is back or the wait is over.

        Each try finds the node anew (a simulated node publishes its SSH port afresh when it
        starts) and makes sure of its agent: a node that rebooted without a supervisor for it
        comes back without its agent.

        Raises:
            _Failed: The node stayed unreachable; it is marked ``needs-repair``.
        """
        name = rollout.node.name
        progress = self._node(name)
        wait = (
            timedelta(seconds=request.node_wait_seconds)
            if request.node_wait_seconds
            else NODE_REPAIR_WAIT
        )
        deadline = workflow.now() + wait
        pause, last = _NODE_RETRY_FIRST, _error_text(lost)
        while (remaining := deadline - workflow.now()) > timedelta(0):
            progress.state = "unreachable"
            progress.detail = f"waiting for the node, retrying: {last}"
            await workflow.sleep(min(pause, remaining))
            pause = min(pause * 2, _NODE_RETRY_MAX)
            try:
                found: PreparedDeploy = await workflow.execute_activity_method(
                    DeployActivities.stack_nodes,
                    _prepare_input(request),
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=_ONCE,
                )
                node = next((n for n in found.nodes if n.name == name), None)
                if node is None:
                    last = "the node is not running"
                    continue
                rollout = dataclasses.replace(rollout, node=node)
                await workflow.execute_activity_method(
                    AgentActivities.install_agent,
                    rollout,
                    start_to_close_timeout=timedelta(minutes=10),
                    heartbeat_timeout=timedelta(seconds=60),
                    retry_policy=_ONCE,
                )
                return await self._rollout_once(rollout, _ONCE)
            except ActivityError as exc:
                if not _unreachable(exc) and not _agent_absent(exc):
                    raise
                last = _error_text(exc)
        seconds = int(wait.total_seconds())
        progress.state = "needs-repair"
        progress.detail = (
            f"unreachable for {seconds}s mid-rollout ({last}); once it runs again its agent "
            "puts the previous revision back, and the next apply converges it"
        )
        raise _Failed(f"node `{name}` needs repair: {progress.detail}")


@workflow.defn(name="DestroyKombination")
class DestroyKombination(_RunBase):
    """Stop and remove services, destroy what OpenTofu made, forget the nodes."""

    kind = "destroy"
    step_names = DESTROY_STEPS

    async def _dissolve(
        self, request: DeployInput, prepared: PreparedDeploy, skipped: list[str]
    ) -> None:
        """Removes the swarm's services and network; every node leaves the swarm."""
        try:
            await workflow.execute_activity_method(
                SwarmActivities.dissolve,
                SwarmInput(
                    request.deployment_id, prepared.stack_id, prepared.workdir, prepared.nodes
                ),
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=_MACHINE,
            )
        except ActivityError as exc:
            if not request.force:
                raise
            skipped.append(f"swarm: {_error_text(exc)}")

    @workflow.run
    async def run(self, request: DeployInput) -> DeployResult:
        return await self._run(request, self._destroy(request), forget_nodes=True)

    async def _destroy(self, request: DeployInput) -> None:
        self._start("prepare")
        prepared: PreparedDeploy = await workflow.execute_activity_method(
            DeployActivities.stack_nodes,
            dataclasses.replace(_prepare_input(request), refuse_stopped=not request.force),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_QUICK,
        )
        self._progress.nodes = [
            NodeProgress(n.name, provider=n.provider, role=n.role) for n in prepared.nodes
        ]
        skipped = list(prepared.skipped)
        self._progress.nodes += [
            NodeProgress(entry.split(":", 1)[0], state="skipped") for entry in skipped
        ]
        if workflow.patched(_STOP_HEALING):
            # Healing must not put back what the destroy removes: it ends first.
            await workflow.execute_activity(
                "StopHealing",
                StackRef(request.organisation, request.stack),
                result_type=list[str],
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=_QUICK,
            )
        self._finish("prepare")

        self._start("services", "stop and remove services")
        if prepared.platform == "swarm" and workflow.patched(_SWARM_DISSOLVED):
            # Before the nodes' own removal, which takes their agents away with it.
            await self._dissolve(request, prepared, skipped)
        outcomes = await asyncio.gather(
            *(
                workflow.execute_activity_method(
                    AgentActivities.remove_services,
                    RolloutInput(request.deployment_id, prepared.stack_id, prepared.workdir, n),
                    start_to_close_timeout=timedelta(minutes=10),
                    heartbeat_timeout=timedelta(seconds=60),
                    retry_policy=_MACHINE,
                )
                for n in prepared.nodes
            ),
            return_exceptions=request.force,
        )
        by_name = {node.name: node for node in self._progress.nodes}
        for target, outcome in zip(prepared.nodes, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, ActivityError):
                    raise outcome
                # --force: a node that cannot be reached is left, and said so.
                by_name[target.name].state = "skipped"
                skipped.append(f"{target.name}: {outcome.cause or outcome}")
            else:
                by_name[target.name].state = "services-removed"
        self._finish("services", f"skipped {'; '.join(skipped)}" if skipped else "")

        self._start("destroy", "OpenTofu destroy")
        await workflow.execute_activity_method(
            TofuActivities.destroy,
            TofuDestroyInput(stack_id=prepared.stack_id, workdir=prepared.workdir),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=120),
            retry_policy=_MACHINE,
        )
        for node in self._progress.nodes:
            if node.state != "skipped":
                node.state = "destroyed"
        self._finish("destroy")


__all__ = [
    "ApproveSignal",
    "CancelSignal",
    "DeployInput",
    "DeployKombination",
    "DeployProgress",
    "DeployResult",
    "DestroyKombination",
    "StepState",
    "deploy_workflow_id",
    "search_attributes",
]
