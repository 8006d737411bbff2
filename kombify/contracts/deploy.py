"""The dataclasses that cross the boundary of the deploy workflows.

Workflows, activities, the API and the CLI all import these; they hold ids, names, paths and
counts, never secret material (keys and certificates are files that activities read).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

# What an operator filters kombify's runs on in the Temporal UI.
ORGANISATION = SearchAttributeKey.for_keyword("KombifyOrganisation")
STACK = SearchAttributeKey.for_keyword("KombifyStack")
RUN_KIND = SearchAttributeKey.for_keyword("KombifyRunKind")


def deploy_workflow_id(organisation: str, stack: str) -> str:
    """One id per stack, so Temporal itself refuses a second concurrent run."""
    return f"deploy/{organisation}/{stack}"


def search_attributes(organisation: str, stack: str, kind: str) -> TypedSearchAttributes:
    """What an operator filters on in the Temporal UI."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(ORGANISATION, organisation),
            SearchAttributePair(STACK, stack),
            SearchAttributePair(RUN_KIND, kind),
        ]
    )


@dataclass(frozen=True)
class DeployInput:
    """A request to bring a stack to one revision of its kombination (or to destroy it)."""

    deployment_id: str
    organisation: str
    stack: str
    revision: int
    auto_approve: bool = False
    simulate: bool = False
    # How long a rollout waits for a node that became unreachable; 0: NODE_REPAIR_WAIT.
    node_wait_seconds: int = 0
    # Destroy only: leave nodes that cannot be reached (stopped, unreachable) and list them as
    # skipped, instead of failing.
    force: bool = False


@dataclass(frozen=True)
class NodeTarget:
    """How to reach one node. ``identity_file`` is a path: the key never leaves the disk.

    ``host_key`` is the node's pinned SSH host public key (``ssh-ed25519 AAAA...``; public,
    so fine in a history): every connection verifies the node against it.
    """

    name: str
    provider: str
    role: str
    host: str
    port: int
    user: str
    identity_file: str
    simulated: bool = False
    host_key: str = ""


@dataclass(frozen=True)
class PrepareInput:
    """Which revision of which stack to validate and unify."""

    deployment_id: str
    organisation: str
    stack: str
    revision: int
    simulate: bool = False
    # Destroy without --force: a stopped simulated node fails the resolve (what runs on it
    # would stay); every other caller gets it left out, as not running.
    refuse_stopped: bool = False


@dataclass(frozen=True)
class PreparedDeploy:
    """A unified plan on disk and the nodes it targets.

    ``skipped``: nodes of the stack that cannot be reached now and were left out (only when
    the caller forced it; otherwise resolving them fails), each as ``name: why``.
    """

    stack_id: str
    workdir: str
    nodes: list[NodeTarget]
    plan_hash: str
    skipped: list[str] = field(default_factory=list)
    # "swarm" when the kit's services run as Swarm services (manifests/_swarm.json); else "".
    platform: str = ""
    # "wireguard": the stack has a WireGuard mesh (the deploy's network step builds it);
    # "down": it had one and no longer has (the step takes it away); "": neither.
    vpn: str = ""
    vpn_subnet: str = ""
    # The stack runs Headscale (network.vpn.provider: headscale): the network step checks and
    # configures it, and its nodes are enrolled once it runs (after rollout).
    headscale: bool = False


@dataclass(frozen=True)
class RolloutInput:
    """One node's part of a run; ``images_staged``: StageImages already shipped what it lacks."""

    deployment_id: str
    stack_id: str
    workdir: str
    node: NodeTarget
    images_staged: bool = False


@dataclass(frozen=True)
class ServiceReport:
    """How one service ended on one node."""

    name: str
    state: str  # unchanged | created | updated | removed | rolled-back | failed
    healthy: bool
    reason: str = ""
    containers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NodeRollout:
    """What a node's rollout did, service by service."""

    node: str
    services: list[ServiceReport]


@dataclass
class StepState:
    """One step of a run as the progress query shows it."""

    name: str
    state: str = "pending"  # pending | running | waiting | done | failed | skipped | cancelled
    started_at: str | None = None
    finished_at: str | None = None
    detail: str = ""


@dataclass
class NodeProgress:
    """Where one node is in a run."""

    name: str
    # pending | bootstrapped | agent-ready | rolled-out | failed | unreachable | needs-repair
    state: str = "pending"
    provider: str = ""
    role: str = ""
    services: dict[str, str] = field(default_factory=dict)
    healthy: dict[str, bool] = field(default_factory=dict)
    containers: dict[str, list[str]] = field(default_factory=dict)
    detail: str = ""
    host_key: str = ""  # fingerprint of the pinned SSH host key (SHA256:...)


@dataclass
class DeployProgress:
    """The answer of the ``progress`` query: live, cheap, secret-free."""

    deployment_id: str
    stack: str
    kind: str
    state: str = "running"  # running | waiting-approval | succeeded | failed | cancelled
    steps: list[StepState] = field(default_factory=list)
    nodes: list[NodeProgress] = field(default_factory=list)
    plan: dict[str, int] | None = None
    error: str | None = None
    # Per node what OpenTofu changes and why (``node box: no change``), then where service
    # changes go; names and reasons only.
    plan_lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeployResult:
    """How a run ended."""

    deployment_id: str
    state: str
    error: str | None = None
    nodes: list[NodeProgress] = field(default_factory=list)


@dataclass(frozen=True)
class RecordInput:
    """The outcome to store with the deployment."""

    deployment_id: str
    state: str
    error: str | None
    nodes: list[NodeProgress]
    plan: dict[str, int] | None
    forget_nodes: bool = False


@dataclass(frozen=True)
class ApproveSignal:
    """Approval of the plan a run waits on."""

    by: str = "cli"


@dataclass(frozen=True)
class CancelSignal:
    """Stop the run at the next safe point (never halfway through a node's rollout)."""

    by: str = "cli"
    reason: str = ""


@dataclass(frozen=True)
class ListStacksInput:
    """Which stacks to list (all of them, for now)."""

    organisation: str | None = None


@dataclass(frozen=True)
class RenewInput:
    """Renew every certificate that expires within ``within_days``."""

    within_days: int = 30


@dataclass(frozen=True)
class RenewNodeInput:
    """One node's certificate check."""

    node: RolloutInput
    within_days: int = 30


@dataclass(frozen=True)
class RenewResult:
    """What a renewal run did."""

    checked: list[str] = field(default_factory=list)  # "<stack>/<node>"
    renewed: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # "<stack>/<node>" -> why
