"""HealNode, HealStack and CheckDrift: keeping a deployed stack as its last good deploy left it.

- ``HealNode`` (one per deployed node) holds the agent's report stream through the long
  ``WatchNode`` activity; each change comes back here, and this workflow decides: repair with
  backoff, give up on a crash loop, revive a node that went away, record and notify.
- ``HealStack`` runs on a Temporal Schedule (``spec.healing.every``) and by hand (``kombify
  heal``): it makes sure every node's HealNode runs, and finds and (``redeploy``) repairs drift.
- ``CheckDrift`` answers ``kombify drift``.

Healing never fights a deploy: while one runs (or a destroy), healing waits for it; repairs
restore the manifest the node's agent has in effect, which is what the last deploy set.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from kombify.contracts.heal import (
        GIVEN_UP,
        RECOVERED,
        DriftFound,
        DriftItem,
        DriftStillThere,
        EnsureHealingInput,
        HealingPlan,
        HealNodeInput,
        HealPassResult,
        HealStackInput,
        Incident,
        IncidentKey,
        IncidentOpen,
        IncidentUpdate,
        MoveResult,
        NodeHealReport,
        NodeRef,
        NotifyInput,
        ProblemSeen,
        RepairInput,
        RepairResult,
        ReviveResult,
        ServiceMemory,
        StackRef,
        WatchInput,
        WatchResult,
    )
    from kombify.contracts.swarm import SwarmHealth

# workflow.patched id: heal passes look after a swarm kit's swarm since this change.
_SWARM_HEALED = "swarm-checked-in-heal-pass"
# The incident kind of a swarm whose managers lost their quorum.
_QUORUM_LOST = "swarm-quorum-lost"

# Crash loops: a service that failed this many times inside the window is given up on.
CRASH_LOOP_FAILURES = 5
CRASH_LOOP_WINDOW = timedelta(minutes=10)
# Pause before the n-th attempt inside the window: 0, 2, 4, 8, 16 ... seconds, at most 60.
BACKOFF_FIRST = timedelta(seconds=2)
BACKOFF_MAX = timedelta(seconds=60)
# A node that stays down is tried again after growing pauses, at most this long apart.
NODE_RETRY_FIRST = timedelta(seconds=5)
NODE_RETRY_MAX = timedelta(minutes=5)
# A watch returns after this long without news, so the loop sees its own state now and then.
WATCH_ROUND_SECONDS = 300
# Rounds before the workflow continues as new with its memory (bounded history).
ROUNDS_PER_RUN = 200
# While a deploy of the stack runs, look again this often.
BUSY_POLL = timedelta(seconds=3)

_T = TypeVar("_T")

_QUICK = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1))
_RECORD = RetryPolicy(maximum_attempts=20, initial_interval=timedelta(seconds=1))


def backoff(failures: int) -> timedelta:
    """The pause before an attempt after ``failures`` failures in the window (first: none)."""
    if failures <= 1:
        return timedelta(0)
    return min(BACKOFF_FIRST * (1 << (failures - 2)), BACKOFF_MAX)


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g} s"


class _Healer:
    """What HealNode and HealStack share: recording incidents and telling the owner."""

    def _now(self) -> str:
        return workflow.now().isoformat(timespec="milliseconds")

    async def _record(self, activity: str, arg: object, result_type: type[_T]) -> _T:
        """A write to the incident records: quick, and retried long (the database may blink)."""
        result: _T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RECORD,
        )
        return result

    async def _open(self, incident: IncidentOpen) -> int:
        opened = await self._record("OpenIncident", incident, int)
        await self._notify(opened, "opened")
        return opened

    async def _update(self, update: IncidentUpdate) -> Incident:
        incident = await self._record("UpdateIncident", update, Incident)
        if update.state in (RECOVERED, GIVEN_UP):
            await self._notify(update.id, update.state)
        return incident

    async def _notify(self, incident: int, event: str) -> None:
        # A dead webhook is reported by the activity, never raised: it must not stop healing.
        await workflow.execute_activity(
            "NotifyIncident",
            NotifyInput(incident, event),
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )

    async def _busy(self, stack: StackRef) -> str:
        busy: str = await workflow.execute_activity(
            "StackBusy",
            stack,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_QUICK,
        )
        return busy

    async def _repair(self, node: NodeRef, service: str, *, recreate: bool) -> RepairResult:
        result: RepairResult = await workflow.execute_activity(
            "RepairService",
            RepairInput(node, service, recreate=recreate),
            result_type=RepairResult,
            start_to_close_timeout=timedelta(minutes=11),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=2)),
            # A destroy cancels healing and then removes services: a repair must be over first.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return result


def _cause(exc: ActivityError) -> str:
    """What went wrong in an activity, in its own words."""
    cause = exc.cause
    return str(getattr(cause, "message", None) or cause or exc)


def _problem_text(p: ProblemSeen) -> str:
    return f"{p.service}: {p.kind}" + (f" ({p.detail})" if p.detail else "")


@workflow.defn(name="HealNode")
class HealNode(_Healer):
    """Watches one node and heals what its agent reports, until the node leaves the stack."""

    def __init__(self) -> None:
        self._memory = HealNodeInput(NodeRef("", "", ""))
        self._reset = False
        self._wanted: int = 0  # heal_now requests taken
        self._done: int = 0  # rounds finished since the first request
        self._reports: dict[int, NodeHealReport] = {}
        self._round_actions: list[str] = []
        self._round_incidents: list[int] = []

    @workflow.signal(name="reset")
    def reset(self) -> None:
        """Forget failures and crash loops (a new apply): look at everything afresh."""
        self._reset = True

    @workflow.query(name="memory")
    def memory(self) -> HealNodeInput:
        """What the workflow remembers: failures, crash loops, open incidents."""
        return self._memory

    @workflow.update(name="heal_now")
    async def heal_now(self, reset: bool) -> NodeHealReport:
        """One round now, on the node's whole picture; what it found and did."""
        if reset:
            self._reset = True
        self._wanted += 1
        ticket = self._wanted
        await workflow.wait_condition(lambda: ticket in self._reports)
        return self._reports.pop(ticket)

    def _service(self, name: str) -> ServiceMemory:
        return self._memory.services.setdefault(name, ServiceMemory())

    @workflow.run
    async def run(self, request: HealNodeInput) -> str:
        self._memory = request
        node = request.node
        known: list[str] = []
        look_now = True  # act on whatever is wrong when the run starts
        for _ in range(ROUNDS_PER_RUN):
            if self._reset:
                self._reset = False
                for memory in self._memory.services.values():
                    memory.failures, memory.given_up = [], False
                known, look_now = [], True
            answering = self._wanted
            if answering > self._done:
                look_now = True
            result = await self._watch(node, known, look_now)
            look_now = False
            if result is None:  # a reset or a heal_now request cut the watch short
                continue
            self._round_actions, self._round_incidents = [], []
            if result.outcome == "gone":
                self._answer(node, False, [])
                return "the node is no longer part of the deployed stack"
            if not result.enabled:
                self._answer(node, True, [])
                return "healing is disabled for the stack"
            if result.outcome == "lost":
                await self._node_down(node, result)
                self._answer(node, False, [f"node: {result.error}"])
                known, look_now = [], True
                continue
            await self._node_back()
            if result.outcome == "changed":
                known = await self._handle(node, result)
            self._answer(node, True, [_problem_text(p) for p in result.problems])
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._memory)

    def _answer(self, node: NodeRef, answered: bool, problems: list[str]) -> None:
        """Hand this round's findings to every heal_now request waiting for it."""
        while self._done < self._wanted:
            self._done += 1
            self._reports[self._done] = NodeHealReport(
                node.node,
                answered,
                problems=problems,
                actions=list(self._round_actions),
                incidents=list(self._round_incidents),
            )

    async def _watch(self, node: NodeRef, known: list[str], look_now: bool) -> WatchResult | None:
        watch = asyncio.ensure_future(
            workflow.execute_activity(
                "WatchNode",
                WatchInput(node, known, WATCH_ROUND_SECONDS, report_first=look_now),
                result_type=WatchResult,
                start_to_close_timeout=timedelta(seconds=WATCH_ROUND_SECONDS + 120),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30)
                ),
            )
        )
        # Cut short by a reset, or by a heal_now request that came after this watch began
        # (one already waiting is answered by this watch's report: it started with look_now).
        requested = self._wanted
        await workflow.wait_condition(
            lambda: watch.done() or self._reset or self._wanted > requested
        )
        if not watch.done():
            watch.cancel()
            try:
                await watch
            except (asyncio.CancelledError, ActivityError):
                pass
            return None
        result: WatchResult = watch.result()
        return result

    # ---- services ----------------------------------------------------------------------------

    async def _handle(self, node: NodeRef, result: WatchResult) -> list[str]:
        """Act on a changed picture; the keys of the problems left alone on purpose."""
        by_service: dict[str, list[ProblemSeen]] = {}
        for p in result.problems:
            by_service.setdefault(p.service, []).append(p)
        # Services with an open incident that report nothing wrong any more: recovered.
        for name, memory in sorted(self._memory.services.items()):
            if name not in by_service and memory.incident and not memory.given_up:
                await self._recovered(memory, "healthy again")
            if name not in by_service and memory.given_up:
                # A given-up service that runs as specified again (an apply, a manual fix).
                memory.given_up = False
                if memory.incident:
                    await self._recovered(memory, "running as specified again")
        left_alone: list[str] = []
        while busy := await self._busy(node.stack_ref):
            workflow.logger.info("healing of %s waits: %s", node.stack, busy)
            await workflow.sleep(BUSY_POLL)
        for name, problems in sorted(by_service.items()):
            memory = self._service(name)
            if memory.given_up:
                left_alone += [p.key for p in problems]
                continue
            if all(p.kind == "restarting" for p in problems):
                # Docker's restart policy is at it already; kombify records, never races it.
                await self._incident(node, memory, problems, "left to Docker's restart policy")
                left_alone += [p.key for p in problems]
                continue
            await self._heal_service(node, name, memory, problems, result.strategy)
        return left_alone

    async def _incident(
        self, node: NodeRef, memory: ServiceMemory, problems: list[ProblemSeen], action: str = ""
    ) -> None:
        if memory.incident:
            return
        worst = problems[0]
        memory.incident = await self._open(
            IncidentOpen(
                organisation=node.organisation,
                stack=node.stack,
                node=node.node,
                service=worst.service,
                kind=worst.kind,
                detection="agent watch: " + ", ".join(sorted({p.kind for p in problems})),
                detail="; ".join(f"replica {p.replica}: {p.detail or p.kind}" for p in problems),
                detected_at=self._now(),
            )
        )
        self._round_incidents.append(memory.incident)
        if action:
            await self._update(IncidentUpdate(memory.incident, action=action))

    async def _recovered(self, memory: ServiceMemory, action: str) -> None:
        incident = memory.incident
        memory.incident = 0
        await self._update(
            IncidentUpdate(incident, action=action, state=RECOVERED, recovered_at=self._now())
        )
        self._round_incidents.append(incident)

    async def _heal_service(
        self,
        node: NodeRef,
        name: str,
        memory: ServiceMemory,
        problems: list[ProblemSeen],
        strategy: str,
    ) -> None:
        await self._incident(node, memory, problems)
        now = workflow.now()
        memory.failures = [
            t for t in memory.failures if now - datetime.fromisoformat(t) < CRASH_LOOP_WINDOW
        ] + [self._now()]
        failures = len(memory.failures)
        if failures > CRASH_LOOP_FAILURES:
            memory.given_up = True
            minutes = int(CRASH_LOOP_WINDOW.total_seconds() // 60)
            detail = (
                f"crash-looping: failed {failures} times in {minutes} min; kombify stops "
                "until the next apply or `kombify heal`"
            )
            logs: str = await workflow.execute_activity(
                "ServiceLogTail",
                RepairInput(node, name),
                result_type=str,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_QUICK,
            )
            detail += f"\nlast log lines:\n{logs or memory.log_tail or '(none)'}"
            await self._update(
                IncidentUpdate(
                    memory.incident,
                    action="gave up: crash-looping",
                    state=GIVEN_UP,
                    detail=detail,
                    kind="crash-looping",
                )
            )
            self._round_actions.append(f"{name}: gave up (crash-looping)")
            self._round_incidents.append(memory.incident)
            memory.incident = 0
            return
        pause = backoff(failures)
        if pause:
            await self._update(
                IncidentUpdate(
                    memory.incident,
                    action=f"failure {failures} in the window: backing off {_seconds(pause)}",
                )
            )
            await workflow.sleep(pause)
        recreate = strategy == "redeploy"
        try:
            repaired = await self._repair(node, name, recreate=recreate)
        except ActivityError as exc:
            text = _cause(exc)
            await self._update(IncidentUpdate(memory.incident, action=f"repair failed: {text}"))
            self._round_actions.append(f"{name}: repair failed: {text}")
            return
        done = ", ".join(repaired.actions) or "nothing to do"
        self._round_actions.append(f"{name}: {done}")
        if repaired.healthy:
            await self._recovered(memory, f"{done}: healthy")
            return
        memory.log_tail = repaired.log_tail
        await self._update(
            IncidentUpdate(memory.incident, action=f"{done}: still failing: {repaired.detail}")
        )

    # ---- the node ----------------------------------------------------------------------------

    async def _node_down(self, node: NodeRef, lost: WatchResult) -> None:
        """Revive a node that stopped answering, retried with backoff until it answers."""
        if busy := await self._busy(node.stack_ref):
            # A deploy waits for a lost node itself; the next watch tells how that ended.
            workflow.logger.info("healing of %s waits: %s", node.stack, busy)
            await workflow.sleep(BUSY_POLL)
            return
        if not self._memory.node_incident:
            self._memory.node_incident = await self._open(
                IncidentOpen(
                    organisation=node.organisation,
                    stack=node.stack,
                    node=node.node,
                    service="",
                    kind="node-down",
                    detection=f"agent watch: {lost.error}",
                    detail=lost.error,
                    detected_at=self._now(),
                )
            )
            self._round_incidents.append(self._memory.node_incident)
        if not self._memory.down_since:
            self._memory.down_since = self._now()
        pause = NODE_RETRY_FIRST
        while True:
            try:
                revived: ReviveResult = await workflow.execute_activity(
                    "ReviveNode",
                    node,
                    result_type=ReviveResult,
                    start_to_close_timeout=timedelta(minutes=5),
                    heartbeat_timeout=timedelta(seconds=60),
                    retry_policy=_QUICK,
                )
            except ActivityError as exc:
                # A node that hangs whoever reaches it is down all the same: try again later.
                revived = ReviveResult("down", action="", detail=_cause(exc))
            if revived.outcome == "gone":
                return
            if revived.action:
                await self._update(
                    IncidentUpdate(self._memory.node_incident, action=revived.action)
                )
                self._round_actions.append(f"node: {revived.action}")
            if revived.outcome == "back":
                # Its incident closes once the watch sees it answer (_node_back).
                return
            down_for = workflow.now() - datetime.fromisoformat(self._memory.down_since)
            if (
                lost.strategy == "reschedule"
                and not self._memory.moved
                and down_for >= timedelta(seconds=lost.every_seconds)
            ):
                await self._move_away(node)
            try:
                await workflow.wait_condition(lambda: self._reset, timeout=pause)
            except TimeoutError:  # the pause is over, no reset came: try again
                pass
            if self._reset:
                return
            # Growing pauses, but at least one try per healing period.
            pause = min(pause * 2, NODE_RETRY_MAX, timedelta(seconds=max(lost.every_seconds, 5)))

    async def _move(self, activity: str, node: NodeRef) -> MoveResult:
        """RescheduleServices or ReturnServices for the node."""
        result: MoveResult = await workflow.execute_activity(
            activity,
            node,
            result_type=MoveResult,
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=120),
            retry_policy=_QUICK,
        )
        return result

    async def _move_away(self, node: NodeRef) -> None:
        """``reschedule``: the node stayed down a whole healing period; its services move."""
        try:
            moved = await self._move("RescheduleServices", node)
        except ActivityError as exc:
            text = f"reschedule failed: {_cause(exc)}; tried again at the next attempt"
            await self._update(IncidentUpdate(self._memory.node_incident, action=text))
            return
        self._memory.moved = True
        words = []
        if moved.moved:
            words.append("moved " + ", ".join(moved.moved))
        if moved.left:
            words.append("could not move " + "; ".join(moved.left))
        action = "reschedule: " + ("; ".join(words) or "nothing to move")
        await self._update(IncidentUpdate(self._memory.node_incident, action=action))
        self._round_actions.append(f"node: {action}")

    async def _node_back(self) -> None:
        self._memory.down_since = ""
        if self._memory.moved:
            try:
                back = await self._move("ReturnServices", self._memory.node)
            except ActivityError as exc:
                # Stays moved: the next round that finds the node answering tries again.
                workflow.logger.warning(
                    "services of %s not moved back: %s", self._memory.node.node, _cause(exc)
                )
                return
            self._memory.moved = False
            if back.moved and self._memory.node_incident:
                await self._update(
                    IncidentUpdate(
                        self._memory.node_incident, action="moved back " + ", ".join(back.moved)
                    )
                )
        if self._memory.node_incident:
            incident = self._memory.node_incident
            self._memory.node_incident = 0
            await self._update(
                IncidentUpdate(
                    incident,
                    action="the node answers again",
                    state=RECOVERED,
                    recovered_at=self._now(),
                )
            )
            self._round_incidents.append(incident)


@workflow.defn(name="CheckDrift")
class CheckDrift:
    """What differs between the stack's nodes (and OpenTofu's state) and its deployed spec."""

    @workflow.run
    async def run(self, stack: StackRef) -> DriftFound:
        found: DriftFound = await workflow.execute_activity(
            "DetectDrift",
            stack,
            result_type=DriftFound,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return found


# Drift a `redeploy` strategy repairs by recreating the service; the rest is reported only
# (kombify never removes a container it did not create).
_REPAIRABLE = ("changed", "extra", "missing-service")


@workflow.defn(name="HealStack")
class HealStack(_Healer):
    """One pass over a stack: HealNode everywhere, drift found and (redeploy) repaired."""

    @workflow.run
    async def run(self, request: HealStackInput) -> HealPassResult:
        stack = StackRef(request.organisation, request.stack)
        while busy := await self._busy(stack):
            if not request.manual:
                return HealPassResult(skipped=f"{busy}: this pass is skipped")
            await workflow.sleep(BUSY_POLL)
        plan: HealingPlan = await workflow.execute_activity(
            "EnsureHealing",
            EnsureHealingInput(request.organisation, request.stack, reset=request.manual),
            result_type=HealingPlan,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=_QUICK,
        )
        if not plan.deployed:
            return HealPassResult(skipped="the stack is not deployed")
        if not plan.enabled:
            return HealPassResult(
                skipped="healing is disabled for the stack (spec.healing.enabled: false)"
            )
        result = HealPassResult()
        if request.manual:
            reports: list[NodeHealReport] = await workflow.execute_activity(
                "HealNodesNow",
                stack,
                result_type=list[NodeHealReport],
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
            for report in reports:
                if not report.answered:
                    result.nodes_down.append(
                        f"{report.node}: " + ("; ".join(report.problems) or "did not answer")
                    )
                    continue
                result.problems.extend(f"{report.node}/{p}" for p in report.problems)
                result.actions.extend(f"{report.node}/{a}" for a in report.actions)
                result.incidents.extend(report.incidents)
        found: DriftFound = await workflow.execute_activity(
            "DetectDrift",
            stack,
            result_type=DriftFound,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=2),
        )
        down = {d.node for d in found.items if d.kind == "unreachable"}
        for item in found.items:
            if item.kind == "unreachable":
                if not any(n.startswith(f"{item.node}:") for n in result.nodes_down):
                    result.nodes_down.append(f"{item.node}: {item.detail}")
                continue
            result.drift.append(item)
        await self._drift_incidents(stack, result, found.strategy, down)
        if workflow.patched(_SWARM_HEALED):
            await self._swarm(stack, result)
        return result

    async def _swarm(self, stack: StackRef, result: HealPassResult) -> None:
        """A swarm kit's swarm: nodes back but out of it join again; a lost quorum is an
        incident (closed as recovered once the managers have it again)."""
        try:
            health: SwarmHealth = await workflow.execute_activity(
                "HealSwarm",
                stack,
                result_type=SwarmHealth,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        except ActivityError as exc:
            result.problems.append(f"swarm: not checked: {_cause(exc)}")
            return
        if not health.swarm:
            return
        result.actions.extend(f"{node}: joined the swarm again" for node in health.rejoined)
        open_one: Incident | None = await workflow.execute_activity(
            "OpenIncidentFor",
            IncidentKey(stack.organisation, stack.stack, "", "swarm", _QUORUM_LOST),
            result_type=Incident | None,  # type: ignore[arg-type]
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RECORD,
        )
        if not health.quorum:
            result.problems.append(f"swarm: {health.detail}")
            incident = open_one.id if open_one else 0
            if not incident:
                incident = await self._open(
                    IncidentOpen(
                        organisation=stack.organisation,
                        stack=stack.stack,
                        node="",
                        service="swarm",
                        kind=_QUORUM_LOST,
                        detection="heal pass: swarm check",
                        detail=health.detail,
                        detected_at=self._now(),
                    )
                )
            result.incidents.append(incident)
        elif open_one is not None:
            await self._update(
                IncidentUpdate(
                    open_one.id,
                    action=f"the managers have their quorum again ({health.detail})",
                    state=RECOVERED,
                    recovered_at=self._now(),
                )
            )
            result.incidents.append(open_one.id)

    async def _drift_incidents(
        self, stack: StackRef, result: HealPassResult, strategy: str, down: set[str]
    ) -> None:
        """One incident per drifting node/service; repaired with `redeploy`, else reported."""
        groups: dict[tuple[str, str], list[DriftItem]] = {}
        for item in result.drift:
            groups.setdefault((item.node, item.service), []).append(item)
        for (node, service), items in sorted(groups.items()):
            open_one: Incident | None = await workflow.execute_activity(
                "OpenIncidentFor",
                IncidentKey(stack.organisation, stack.stack, node, service, "drift"),
                result_type=Incident | None,  # type: ignore[arg-type]
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_RECORD,
            )
            incident = open_one.id if open_one else 0
            if not incident:
                incident = await self._open(
                    IncidentOpen(
                        organisation=stack.organisation,
                        stack=stack.stack,
                        node=node,
                        service=service,
                        kind="drift",
                        detection="heal pass: drift check",
                        detail="; ".join(f"{i.kind}: {i.detail}" for i in items),
                        detected_at=self._now(),
                    )
                )
            result.incidents.append(incident)
            repairable = service and node and any(i.kind in _REPAIRABLE for i in items)
            if strategy != "redeploy" or not repairable:
                why = (
                    "reported: kombify never removes a container it did not create"
                    if not repairable
                    else f"reported: strategy `{strategy}` reports drift, `redeploy` repairs it"
                )
                await self._update(IncidentUpdate(incident, action=why))
                continue
            try:
                repaired = await self._repair(
                    NodeRef(stack.organisation, stack.stack, node), service, recreate=True
                )
            except ActivityError as exc:
                text = _cause(exc)
                await self._update(IncidentUpdate(incident, action=f"repair failed: {text}"))
                result.actions.append(f"{node}/{service}: repair failed: {text}")
                continue
            done = ", ".join(repaired.actions) or "nothing to do"
            result.actions.append(f"{node}/{service}: {done}")
            if repaired.healthy:
                await self._update(
                    IncidentUpdate(
                        incident,
                        action=f"{done}: as specified again",
                        state=RECOVERED,
                        recovered_at=self._now(),
                    )
                )
            else:
                await self._update(
                    IncidentUpdate(incident, action=f"{done}: still failing: {repaired.detail}")
                )
        # Drift incidents whose drift is gone were mended by hand or by an apply.
        await workflow.execute_activity(
            "CloseMendedDrift",
            DriftStillThere(stack, [f"{n}/{s}" for n, s in groups], sorted(down)),
            result_type=list[int],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RECORD,
        )
