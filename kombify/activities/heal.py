"""Healing activities: watch a node's agent, repair a service, revive a node, find drift.

They act on the stack's *last successful deploy* (never a newer revision that has not been
rolled out, never an older one): that is what healing restores, so a heal cannot roll a
service back past what the last good deploy set. Every node is reached like a deploy reaches
it (host key pinned, mTLS to its agent through SSH).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from kombify.activities.agent import AgentActivities, node_identity
from kombify.activities.deploy import simulation_name, stack_workdir
from kombify.activities.heartbeat import heartbeating
from kombify.activities.ssh import NodeSession, node_session
from kombify.activities.tofu import TofuActivities
from kombify.contracts.deploy import NodeTarget, RolloutInput, deploy_workflow_id
from kombify.contracts.heal import (
    DeployingNow,
    DriftFound,
    DriftItem,
    NodeRef,
    ProblemSeen,
    RepairInput,
    RepairResult,
    ReviveResult,
    StackRef,
    WatchInput,
    WatchResult,
)
from kombify.db import deployments as runs
from kombify.db import stacks
from kombify.db.models import Stack
from kombify.errors import AgentError, KombifyError, NotFoundError, SpecError
from kombify.specs import load_kombination
from kombify.specs.models import Kombination
from kombify.specs.quantities import parse_duration

# A node's agent sends a report at least this often (a keep-alive when nothing changes).
KEEPALIVE_SECONDS = 5
# No report for this long: the connection is dead even if TCP has not noticed yet.
SILENCE_SECONDS = 15.0
# One node may take this long to answer a drift inspection.
DRIFT_NODE_TIMEOUT = 30.0
# Log lines an incident keeps of a service that is given up on.
LOG_TAIL_LINES = 20
# Hard bound on a simulated node's boot (sshd and agent) after kombify started it.
REVIVE_WAIT_SECONDS = 90.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Deployed:
    """A stack as its last successful deploy left it."""

    stack: Stack
    kombination: Kombination
    deployment_id: str
    revision: int
    simulate: bool


def _problem(p: Any) -> ProblemSeen:
    return ProblemSeen(
        service=p.service,
        replica=int(p.replica),
        container=p.container_id,
        kind=p.kind,
        detail=p.detail,
        since=p.since,
        restart_count=int(p.restart_count),
    )


class HealActivities:
    """Healing's hands: everything HealNode, HealStack and CheckDrift do to nodes.

    Args:
        agent: The agent activities (SSH tunnel, control-plane certificate, agent install).
        tofu: OpenTofu, for the plan that should be empty on a deployed stack.
    """

    def __init__(self, agent: AgentActivities, tofu: TofuActivities) -> None:
        self.agent = agent
        self.deploy = agent.deploy
        self.tofu = tofu

    # ---- what is deployed, and how to reach it ---------------------------------------------

    def _deployed(self, ref: StackRef, deploying: DeployingNow | None = None) -> Deployed | None:
        """The stack's last good deploy, or None when it is not deployed (or destroyed).

        ``deploying``: the run that is about to record its success (it sets healing up just
        before), which is then what is deployed.
        """
        with self.deploy._session() as session:
            try:
                org = stacks.get_organisation(session, slug=ref.organisation)
                stack = stacks.get_stack(session, organisation_id=org.id, name=ref.stack)
            except NotFoundError:
                return None
            if deploying is not None:
                deployment_id, revision = deploying.deployment_id, deploying.revision
                simulate = deploying.simulate
            else:
                last = runs.last_good_deploy(session, stack=stack)
                if last is None:
                    return None
                deployment_id, revision = last.id, last.revision
                simulate = bool(last.summary.get("options", {}).get("simulate", False))
            source = stacks.get_revision(session, stack=stack, revision=revision).source
            session.expunge(stack)
        k = load_kombination(source, filename=f"{ref.stack}.yaml")
        return Deployed(stack, k, deployment_id, revision, simulate)

    def _reach(self, ref: NodeRef) -> tuple[Deployed | None, NodeTarget | None]:
        """The deploy and the node's pinned target (None: the node does not run now)."""
        deployed = self._deployed(ref.stack_ref)
        if deployed is None or ref.node not in {n.name for n in deployed.kombination.spec.nodes}:
            return None, None
        k = deployed.kombination
        _, targets, instances = self.deploy._targets(k, deployed.simulate, create=False)
        target = next((t for t in targets if t.name == ref.node), None)
        if target is None:
            return deployed, None
        _, pinned, _ = self.deploy._pin(deployed.stack, k, [target], instances)
        return deployed, pinned[0]

    @asynccontextmanager
    async def _connected(
        self, ref: NodeRef, target: NodeTarget
    ) -> AsyncIterator[tuple[NodeSession, Any]]:
        """The node's SSH session and its agent's client."""
        async with node_session(target) as session:
            if not await self.agent._agent_running(session):
                raise AgentError("its node agent is not running")
            identity = node_identity(ref.organisation, ref.stack, ref.node)
            async with self.agent.agent(session, identity) as client:
                yield session, client

    @asynccontextmanager
    async def _client(self, ref: NodeRef, target: NodeTarget) -> AsyncIterator[Any]:
        async with self._connected(ref, target) as (_, client):
            yield client

    def _provider(self, deployed: Deployed, node: str) -> str:
        spec = deployed.kombination.spec.node(node)
        return "sim" if deployed.simulate else spec.provider

    # ---- watch -----------------------------------------------------------------------------

    @activity.defn(name="WatchNode")
    async def watch(self, request: WatchInput) -> WatchResult:
        """Hold the agent's report stream until the picture differs from what is known.

        Returns ``lost`` instead of raising when the node cannot be reached: that is news
        for the workflow, not a failure of the activity.
        """
        ref = request.node
        try:
            deployed, target = await asyncio.to_thread(self._reach, ref)
        except (SpecError, NotFoundError) as exc:
            return WatchResult("gone", error=exc.message)
        except KombifyError as exc:  # its host key cannot be read: it does not answer
            return WatchResult("lost", error=exc.message)
        if deployed is None:
            if await self.busy(ref.stack_ref):
                # The stack's first deploy sets healing up just before it records its
                # success: not deployed yet, but about to be.
                await asyncio.sleep(2.0)
                return WatchResult("idle")
            return WatchResult("gone", error="the node is not part of a deployed stack")
        healing = deployed.kombination.spec.healing
        base = WatchResult(
            "",
            strategy=healing.strategy,
            enabled=healing.enabled,
            provider=self._provider(deployed, ref.node),
            every_seconds=parse_duration(healing.every) or 300,
        )
        if target is None:
            return replace(base, outcome="lost", error="the simulated node is not running")
        known = set(request.known)
        deadline = time.monotonic() + request.max_seconds
        first = True
        try:
            async with self._client(ref, target) as client:
                reports = client.watch_services(keepalive_seconds=KEEPALIVE_SECONDS).__aiter__()
                while True:
                    try:
                        report = await asyncio.wait_for(reports.__anext__(), SILENCE_SECONDS)
                    except TimeoutError:
                        return replace(
                            base, outcome="lost", error=f"no report for {SILENCE_SECONDS:.0f} s"
                        )
                    except StopAsyncIteration:
                        return replace(base, outcome="lost", error="the agent ended the stream")
                    problems = [_problem(p) for p in report.problems]
                    activity.heartbeat(len(problems))
                    if {p.key for p in problems} != known or (first and request.report_first):
                        return replace(base, outcome="changed", problems=problems)
                    first = False
                    if time.monotonic() >= deadline:
                        return replace(base, outcome="idle", problems=problems)
        except KombifyError as exc:
            return replace(base, outcome="lost", error=exc.message)
        except OSError as exc:
            return replace(base, outcome="lost", error=f"connection lost: {exc}")

    # ---- repair ----------------------------------------------------------------------------

    @activity.defn(name="RepairService")
    async def repair(self, request: RepairInput) -> RepairResult:
        """Bring one service back to the manifest in effect on its node (the agent's)."""
        ref = request.node
        deployed, target = await asyncio.to_thread(self._reach, ref)
        if deployed is None or target is None:
            raise ApplicationError(
                f"node `{ref.node}` cannot be reached to repair `{request.service}`",
                type="node-unreachable",
            )
        try:
            async with self._client(ref, target) as client:
                async with asyncio.timeout(600):
                    reply = await client.repair_service(request.service, recreate=request.recreate)
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code) from exc
        return RepairResult(
            healthy=reply.healthy,
            actions=list(reply.actions),
            detail=reply.detail,
            log_tail=reply.log_tail,
        )

    @activity.defn(name="ServiceLogTail")
    async def log_tail(self, request: RepairInput) -> str:
        """The last log lines of a service's containers on its node ("" when unreachable)."""
        ref = request.node
        try:
            _, target = await asyncio.to_thread(self._reach, ref)
            if target is None:
                return ""
            lines: list[str] = []
            async with asyncio.timeout(30), self._client(ref, target) as client:
                async for line in client.stream_logs(request.service, tail=LOG_TAIL_LINES):
                    lines.append(line.line)
        except (KombifyError, TimeoutError, OSError):
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    # ---- revive ----------------------------------------------------------------------------

    def _start_simulated(self, ref: NodeRef) -> str:
        from kombify.sim.client import docker_client
        from kombify.sim.engine import SimEngine

        client = docker_client()
        try:
            engine = SimEngine(client)
            info = engine.find(simulation_name(ref.stack))
            if info is None:
                raise NotFoundError(f"the simulation of stack `{ref.stack}` does not exist")
            node = next((n for n in info.nodes if n.name == ref.node), None)
            if node is None:
                raise NotFoundError(f"the simulation has no node `{ref.node}`")
            if node.state == "running":
                return ""
            engine.start(info.name)
            return "started the simulated node"
        finally:
            client.close()

    @activity.defn(name="ReviveNode")
    async def revive(self, ref: NodeRef) -> ReviveResult:
        """Make a node that stopped answering answer again, where kombify can.

        A simulated node is started; its agent is made sure of (a node without a supervisor
        for it comes back without its agent). A local box is reported: kombify cannot power
        it on. Either way, once the agent answers, the workflow's watch converges services.
        """
        deployed = await asyncio.to_thread(self._deployed, ref.stack_ref)
        if deployed is None or ref.node not in {n.name for n in deployed.kombination.spec.nodes}:
            return ReviveResult("gone")
        provider = self._provider(deployed, ref.node)
        actions: list[str] = []
        deadline = time.monotonic() + (REVIVE_WAIT_SECONDS if provider == "sim" else 10.0)
        last = ""
        while True:
            activity.heartbeat(last)
            if provider == "sim":
                # Asked each time: a node being stopped still reads "running" for a while,
                # and must be started once it has stopped.
                try:
                    started = await asyncio.to_thread(self._start_simulated, ref)
                except KombifyError as exc:
                    return ReviveResult("down", action="could not start it", detail=exc.message)
                if started and started not in actions:
                    actions.append(started)
            try:
                await self._ensure_agent(ref, deployed)
            except KombifyError as exc:
                last = exc.message
            except ApplicationError as exc:
                last = exc.message
            else:
                actions.append("its agent answers")
                return ReviveResult("back", action="; ".join(actions))
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(2.0)
        if provider == "sim":
            action = "; ".join(actions) or "the simulated node runs but does not answer"
        elif provider == "local":
            action = "reported: kombify cannot power on a local node; retrying with backoff"
        else:
            action = (
                f"reported: replacing a {provider} server needs the provider's OpenTofu plugin "
                "and credentials, which this installation does not have; retrying with backoff"
            )
        return ReviveResult("down", action=action, detail=last)

    async def _ensure_agent(self, ref: NodeRef, deployed: Deployed) -> None:
        _, target = await asyncio.to_thread(self._reach, ref)
        if target is None:
            raise AgentError("the node is not running yet")
        workdir = stack_workdir(self.deploy.settings, ref.organisation, ref.stack)
        await self.agent.install_agent(
            RolloutInput(f"heal-{deployed.deployment_id}", deployed.stack.id, str(workdir), target)
        )

    # ---- deploys in progress ---------------------------------------------------------------

    @activity.defn(name="StackBusy")
    async def busy(self, ref: StackRef) -> str:
        """What deploy or destroy of the stack runs now ("" when none): healing waits."""
        handle = activity.client().get_workflow_handle(
            deploy_workflow_id(ref.organisation, ref.stack)
        )
        try:
            described = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return ""
            raise
        if described.status != WorkflowExecutionStatus.RUNNING:
            return ""
        return (
            "a destroy runs"
            if described.workflow_type == "DestroyKombination"
            else ("a deploy runs")
        )

    # ---- drift -----------------------------------------------------------------------------

    async def _node_drift(self, ref: NodeRef) -> list[DriftItem]:
        try:
            _, target = await asyncio.to_thread(self._reach, ref)
            if target is None:
                return [DriftItem(ref.node, "unreachable", detail="the node is not running")]
            async with asyncio.timeout(DRIFT_NODE_TIMEOUT), self._client(ref, target) as client:
                report = await client.inspect_drift()
        except TimeoutError:
            why = f"did not answer within {DRIFT_NODE_TIMEOUT:.0f} s"
            return [DriftItem(ref.node, "unreachable", detail=why)]
        except KombifyError as exc:
            return [DriftItem(ref.node, "unreachable", detail=exc.message)]
        return [
            DriftItem(ref.node, d.kind, service=d.service, container=d.container, detail=d.detail)
            for d in report.drifts
        ]

    async def _tofu_drift(self, ref: StackRef) -> list[DriftItem]:
        workdir = stack_workdir(self.deploy.settings, ref.organisation, ref.stack)
        if not (workdir / "main.tf.json").exists() and not any(workdir.glob("*.tf*")):
            return []
        runner = self.tofu.runner
        try:
            await runner.ensure_init(workdir, on_line=lambda _: None)
            summary = await runner.plan(workdir, on_line=lambda _: None)
        except KombifyError as exc:
            return [DriftItem("", "tofu", detail=f"OpenTofu could not plan: {exc.message}")]
        if not (summary.add or summary.change or summary.destroy):
            return []
        changed = ", ".join(r.address for r in summary.resources[:5])
        return [
            DriftItem(
                "",
                "tofu",
                detail=(
                    f"OpenTofu plans {summary.add} to add, {summary.change} to change, "
                    f"{summary.destroy} to destroy ({changed})"
                ),
            )
        ]

    @activity.defn(name="DetectDrift")
    async def drift(self, ref: StackRef) -> DriftFound:
        """Every node's drift from the deployed revision, and OpenTofu's (a plan not empty)."""
        deployed = await asyncio.to_thread(self._deployed, ref)
        if deployed is None:
            raise ApplicationError(
                f"stack `{ref.stack}` is not deployed", type="not-deployed", non_retryable=True
            )
        nodes = [n.name for n in deployed.kombination.spec.nodes]
        async with heartbeating("checking drift"):
            found = await asyncio.gather(
                *(self._node_drift(NodeRef(ref.organisation, ref.stack, n)) for n in nodes),
                self._tofu_drift(ref),
            )
        return DriftFound(
            items=[item for items in found for item in items],
            checked_at=_now(),
            strategy=deployed.kombination.spec.healing.strategy,
        )

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.watch, self.repair, self.log_tail, self.revive, self.busy, self.drift]
