"""Healing: what HealNode, HealStack, their activities, the API and the CLI pass each other.

Like every contract here, these carry names, ids, times and words only: no key, token or
address of a node enters a workflow history (activities resolve those from disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Incident states.
OPEN = "open"
RECOVERED = "recovered"
GIVEN_UP = "given-up"
INCIDENT_STATES = (OPEN, RECOVERED, GIVEN_UP)

# Run kinds of the KombifyRunKind search attribute.
HEAL_RUN_KIND = "heal"


@dataclass(frozen=True)
class StackRef:
    """One stack of one organisation."""

    organisation: str
    stack: str


@dataclass(frozen=True)
class NodeRef:
    """One node of a deployed stack."""

    organisation: str
    stack: str
    node: str

    @property
    def stack_ref(self) -> StackRef:
        """The stack the node belongs to."""
        return StackRef(self.organisation, self.stack)


@dataclass(frozen=True)
class ProblemSeen:
    """One way a node's services differ from the manifest in effect (agent.proto ``Problem``).

    Attributes:
        service: The service.
        replica: Its replica index.
        container: Container id ("" when missing).
        kind: exited, missing, unhealthy or restarting.
        detail: What the agent saw, for a person.
        since: When the container entered that state (RFC 3339) or "".
        restart_count: Docker's RestartCount of the container.
    """

    service: str
    replica: int
    container: str
    kind: str
    detail: str = ""
    since: str = ""
    restart_count: int = 0

    @property
    def key(self) -> str:
        """What identifies the problem between two reports (details and times may change)."""
        return f"{self.service}/{self.replica}/{self.kind}/{self.container[:12]}"


@dataclass(frozen=True)
class WatchInput:
    """Watch one node until its picture differs from ``known`` (or ``max_seconds`` pass).

    Attributes:
        node: The node.
        known: Keys (:attr:`ProblemSeen.key`) of the problems the workflow already knows of;
            an empty list returns at the first report that has any problem.
        max_seconds: Return ``idle`` after this long without a change, so the workflow
            can look at its own state (signals, continue-as-new) now and then.
        report_first: Return the first report even when it matches ``known``.
    """

    node: NodeRef
    known: list[str] = field(default_factory=list)
    max_seconds: int = 300
    report_first: bool = False


@dataclass(frozen=True)
class WatchResult:
    """Why the watch returned.

    Attributes:
        outcome: ``changed`` (problems differ from the known ones), ``lost`` (the node or
            its agent stopped answering), ``idle`` (nothing changed for ``max_seconds``),
            ``gone`` (the node is no longer part of the deployed stack, or the stack is not
            deployed any more).
        problems: Every problem now (for ``changed``).
        error: Why the node was lost, in the user's words.
        strategy: ``spec.healing.strategy`` of the deployed revision.
        enabled: ``spec.healing.enabled`` of the deployed revision.
        provider: The node's provider (sim, local, or a cloud).
        every_seconds: ``spec.healing.every`` in seconds.
    """

    outcome: str
    problems: list[ProblemSeen] = field(default_factory=list)
    error: str = ""
    strategy: str = "restart"
    enabled: bool = True
    provider: str = ""
    every_seconds: int = 300


@dataclass(frozen=True)
class RepairInput:
    """Bring one service of one node back to the manifest in effect there.

    Attributes:
        node: The node.
        service: The service.
        recreate: Remove and create its containers anew (drift repair) instead of the least
            that mends it.
    """

    node: NodeRef
    service: str
    recreate: bool = False


@dataclass(frozen=True)
class RepairResult:
    """What a repair did and how the service is now.

    Attributes:
        healthy: The service passed its health check afterwards.
        actions: One entry per container touched ("restarted web-1").
        detail: The health check's result.
        log_tail: The containers' last log lines when not healthy.
    """

    healthy: bool
    actions: list[str] = field(default_factory=list)
    detail: str = ""
    log_tail: str = ""


@dataclass(frozen=True)
class ReviveResult:
    """What kombify could do for a node that stopped answering.

    Attributes:
        outcome: ``back`` (it answers again; its services were converged), ``down`` (still
            not answering), ``gone`` (no longer part of the deployed stack).
        action: What was done ("started the simulated node", "reported: kombify cannot power
            on a local node", "replacement planned: ...").
        detail: Why it is still down, when it is.
    """

    outcome: str
    action: str = ""
    detail: str = ""


@dataclass
class MoveResult:
    """What the ``reschedule`` strategy moved (``service -> node``), and what it could not.

    Attributes:
        moved: ``service -> node`` for every service now run elsewhere (or back home).
        left: ``service: why`` for every service no node could take.
    """

    moved: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DriftItem:
    """One difference between what runs and the spec.

    Attributes:
        node: The node ("" for OpenTofu drift of the whole stack).
        kind: changed, extra, unmanaged, missing-service, missing-volume, unreachable or tofu.
        service: The service ("" when none applies).
        container: The container's name ("" when none applies).
        detail: What differs.
    """

    node: str
    kind: str
    service: str = ""
    container: str = ""
    detail: str = ""

    @property
    def key(self) -> str:
        """What identifies the same drift in two checks."""
        return f"{self.node}/{self.kind}/{self.service}/{self.container}"


@dataclass(frozen=True)
class DriftFound:
    """Every difference found in one check of a whole stack.

    Attributes:
        items: The differences.
        checked_at: When (RFC 3339, UTC).
        strategy: ``spec.healing.strategy`` of the deployed revision.
    """

    items: list[DriftItem] = field(default_factory=list)
    checked_at: str = ""
    strategy: str = "restart"


@dataclass(frozen=True)
class IncidentOpen:
    """A new incident.

    Attributes:
        organisation: Organisation slug.
        stack: Stack name.
        node: Node name.
        service: Service name ("" for the node itself).
        kind: What failed: exited, missing, unhealthy, restarting, crash-looping, node-down,
            or drift.
        detection: How it was detected ("agent watch: docker event", "heal pass", ...).
        detail: What was seen.
        detected_at: When (RFC 3339, UTC).
    """

    organisation: str
    stack: str
    node: str
    service: str
    kind: str
    detection: str
    detail: str
    detected_at: str


@dataclass(frozen=True)
class IncidentUpdate:
    """A change to an incident: an action taken, and/or a new state.

    Attributes:
        id: The incident.
        action: Appended to its actions ("" adds none).
        state: The new state ("" keeps it): open, recovered or given-up.
        recovered_at: When it was healthy again (with ``state`` recovered).
        detail: Replaces the detail when not empty (a crash loop's last log lines).
        kind: Replaces the kind when not empty (unhealthy -> crash-looping).
    """

    id: int
    action: str = ""
    state: str = ""
    recovered_at: str = ""
    detail: str = ""
    kind: str = ""


@dataclass(frozen=True)
class Incident:
    """An incident as stored and shown (``kombify incidents``, the API).

    Attributes:
        id: Its number.
        stack: Stack name.
        node: Node name.
        service: Service name ("" for the node itself).
        kind: What failed.
        detection: How it was detected.
        detail: What was seen (and, for a crash loop, the last log lines).
        detected_at: When it was detected (RFC 3339, UTC).
        action: What was done, the last step ("" when nothing yet).
        actions: Every step, in order.
        recovered_at: When it was healthy again ("" while not).
        state: open, recovered or given-up.
        time_to_recovery_s: Seconds from detection to recovery (None while not recovered).
    """

    id: int
    stack: str
    node: str
    service: str
    kind: str
    detection: str
    detail: str
    detected_at: str
    action: str
    actions: list[str]
    recovered_at: str
    state: str
    time_to_recovery_s: float | None = None


@dataclass(frozen=True)
class DriftStillThere:
    """What a drift check found, so that drift incidents mended since can be closed.

    Attributes:
        stack: The stack.
        drifting: "node/service" of every group still drifting.
        unreachable: Nodes that did not answer (their incidents stay as they are).
    """

    stack: StackRef
    drifting: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NotifyInput:
    """Tell the owner about an incident through the configured notification URLs.

    Attributes:
        incident: The incident's id.
        event: opened, recovered or given-up.
    """

    incident: int
    event: str


@dataclass(frozen=True)
class DeployingNow:
    """The deploy that sets healing up, right before it records its success.

    Attributes:
        deployment_id: The run.
        revision: The revision it rolled out.
        simulate: Whether it ran on simulated nodes.
    """

    deployment_id: str
    revision: int
    simulate: bool = False


@dataclass(frozen=True)
class EnsureHealingInput:
    """Make a stack's healing match its deployed revision (after a deploy, on each pass).

    Attributes:
        organisation: Organisation slug.
        stack: Stack name.
        reset: Forget crash loops given up on (a new apply, ``kombify heal``).
        after_deploy: A deploy just rolled the plan out everywhere: services the
            ``reschedule`` strategy had moved are where the plan puts them again.
        deploying: That deploy, not recorded yet: its revision is what healing follows.
    """

    organisation: str
    stack: str
    reset: bool = False
    after_deploy: bool = False
    deploying: DeployingNow | None = None


@dataclass(frozen=True)
class HealingPlan:
    """The healing a stack's deployed revision asks for, as it was set up.

    Attributes:
        nodes: The deployed nodes (each has a HealNode workflow while enabled).
        enabled: ``spec.healing.enabled``: false pauses the schedule and stops HealNode.
        every_seconds: ``spec.healing.every`` in seconds: the HealStack schedule's interval.
        strategy: ``spec.healing.strategy``.
        deployed: False when the stack is not deployed (nothing was set up).
    """

    nodes: list[str] = field(default_factory=list)
    enabled: bool = False
    every_seconds: int = 0
    strategy: str = "restart"
    deployed: bool = True


@dataclass
class ServiceMemory:
    """What HealNode remembers of one service between rounds (and across continue-as-new).

    Attributes:
        failures: When it failed (RFC 3339), inside the crash-loop window.
        given_up: Crash-looping: left alone until the next apply or ``kombify heal``.
        incident: Its open incident (0: none).
        log_tail: The last log lines a failed repair brought back.
    """

    failures: list[str] = field(default_factory=list)
    given_up: bool = False
    incident: int = 0
    log_tail: str = ""


@dataclass
class HealNodeInput:
    """HealNode's input, which also carries its memory across continue-as-new.

    Attributes:
        node: The node it heals.
        services: Memory by service.
        node_incident: The open incident of the node being down (0: none).
        down_since: When the node stopped answering (RFC 3339; "" while it answers).
        moved: Its services run on other nodes (``reschedule``) until it returns.
    """

    node: NodeRef
    services: dict[str, ServiceMemory] = field(default_factory=dict)
    node_incident: int = 0
    down_since: str = ""
    moved: bool = False


@dataclass(frozen=True)
class NodeHealReport:
    """One HealNode round asked for by hand (the ``heal_now`` update).

    Attributes:
        node: The node.
        answered: Whether its agent answered.
        problems: What it reported, as "service: kind (detail)".
        actions: What was done.
        incidents: Incidents opened or closed.
    """

    node: str
    answered: bool
    problems: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    incidents: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class HealStackInput:
    """One pass of HealStack.

    Attributes:
        organisation: Organisation slug.
        stack: Stack name.
        manual: Started by ``kombify heal`` (not the schedule): also forgets crash loops
            given up on, and waits for a running deploy instead of skipping the pass.
    """

    organisation: str
    stack: str
    manual: bool = False


@dataclass(frozen=True)
class HealPassResult:
    """What one HealStack pass found and did (``kombify heal`` prints it).

    Attributes:
        skipped: Why the pass did nothing ("" when it ran): a deploy runs, healing is off.
        nodes_down: Nodes that did not answer, with why ("name: why").
        problems: Problems the nodes reported, as "node/service: kind (detail)".
        drift: Differences from the spec.
        actions: What was done, in order.
        incidents: Ids of incidents the pass opened or closed.
    """

    skipped: str = ""
    nodes_down: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    drift: list[DriftItem] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    incidents: list[int] = field(default_factory=list)


def heal_node_workflow_id(organisation: str, stack: str, node: str) -> str:
    """One HealNode per node: Temporal itself refuses a second."""
    return f"heal-node/{organisation}/{stack}/{node}"


def heal_schedule_id(organisation: str, stack: str) -> str:
    """The HealStack schedule of a stack."""
    return f"heal-stack/{organisation}/{stack}"


def heal_pass_workflow_id(organisation: str, stack: str, nonce: str) -> str:
    """A HealStack pass started by hand (``kombify heal``)."""
    return f"heal-pass/{organisation}/{stack}/{nonce}"


@dataclass(frozen=True)
class IncidentKey:
    """What OpenIncidentFor looks for: the open incident of one node, service and kind.

    Attributes:
        organisation: Organisation slug.
        stack: Stack name.
        node: Node name.
        service: Service name ("" for the node itself).
        kind: What failed (as opened, or as last replaced by an update).
    """

    organisation: str
    stack: str
    node: str
    service: str
    kind: str
