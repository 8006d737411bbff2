"""The core domain as sqlmodel tables; the same code runs on SQLite and PostgreSQL.

Families follow the FastAPI template: ``XBase`` (shared fields), ``X(table=True)``, and the
API's ``XPublic``/``XCreate`` models in ``kombify/api``. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Dialect, Index, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)


def new_id() -> str:
    """A random id as text: portable across SQLite and PostgreSQL, safe in URLs."""
    return uuid.uuid4().hex


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every engine.

    SQLite keeps no offset and reads back naive datetimes, which the API would then send
    without one (not an RFC 3339 date-time, as the OpenAPI document declares); PostgreSQL
    reads back aware ones. Both now read back aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        del dialect
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        del dialect
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _ts(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), **kwargs))


class Organisation(SQLModel, table=True):
    """Who owns stacks; every user belongs to one. The local install has one, ``local``."""

    id: str = Field(default_factory=new_id, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=63)
    name: str = Field(max_length=200)
    created_at: datetime = _ts(nullable=False)


class User(SQLModel, table=True):
    """A person who can sign in. ``organisation_id`` is their home organisation (the one a
    session acts in unless the client names another); roles are in ``Membership``."""

    id: str = Field(default_factory=new_id, primary_key=True)
    organisation_id: str = Field(foreign_key="organisation.id", index=True)
    email: str = Field(index=True, unique=True, max_length=320)
    name: str = Field(default="", max_length=200)
    is_admin: bool = False
    created_at: datetime = _ts(nullable=False)


class Stack(SQLModel, table=True):
    """One homelab: a named kombination owned by an organisation."""

    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    organisation_id: str = Field(foreign_key="organisation.id", index=True)
    name: str = Field(max_length=63)
    stackkit: str = Field(max_length=100)
    current_revision: int = 1
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class StackRevision(SQLModel, table=True):
    """The kombination source as the user wrote it, kept for every change."""

    __table_args__ = (UniqueConstraint("stack_id", "revision"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    stack_id: str = Field(foreign_key="stack.id", index=True, ondelete="CASCADE")
    revision: int
    source: str = Field(sa_column=Column(Text, nullable=False))
    sha256: str = Field(max_length=64)
    created_at: datetime = _ts(nullable=False)


class Deployment(SQLModel, table=True):
    """One run of a deploy/destroy workflow against a stack revision."""

    id: str = Field(default_factory=new_id, primary_key=True)
    stack_id: str = Field(foreign_key="stack.id", index=True, ondelete="CASCADE")
    revision: int
    kind: str = Field(default="deploy", max_length=20)
    workflow_id: str = Field(max_length=255, index=True)
    run_id: str | None = Field(default=None, max_length=255)
    state: str = Field(default="pending", max_length=20)
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class Node(SQLModel, table=True):
    """A machine of a stack as kombify last saw it."""

    __table_args__ = (UniqueConstraint("stack_id", "name"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    stack_id: str = Field(foreign_key="stack.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=63)
    provider: str = Field(max_length=20)
    role: str = Field(max_length=40)
    address: str | None = Field(default=None, max_length=255)
    state: str = Field(default="unknown", max_length=20)
    services: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _ts(nullable=False)


class HostKeyPin(SQLModel, table=True):
    """The SSH host key kombify trusts for one node of a stack.

    Recorded on first contact (``first-use``), taken from the kombination (``stated``) or
    re-trusted by the user after a change (``trusted``). A stack's rehearsal on simulated
    nodes pins apart from its real nodes (``simulated``), so neither overwrites the other;
    ``instance`` is the simulated node's container, so a node kombify re-creates is pinned anew.
    """

    __table_args__ = (UniqueConstraint("stack_id", "node", "simulated"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    stack_id: str = Field(foreign_key="stack.id", index=True, ondelete="CASCADE")
    node: str = Field(max_length=63)
    simulated: bool = False
    algorithm: str = Field(max_length=40)
    key: str = Field(sa_column=Column(Text, nullable=False))  # base64 of the public key blob
    fingerprint: str = Field(max_length=80)
    source: str = Field(max_length=20)  # first-use | stated | trusted
    address: str = Field(default="", max_length=255)  # host:port the key was read from
    instance: str = Field(default="", max_length=80)
    recorded_at: datetime = _ts(nullable=False)


class IncidentRow(SQLModel, table=True):
    """Something that went wrong on a deployed stack, and what healing did about it.

    ``kombify.contracts.heal.Incident`` is how it travels; this is how it is kept. One row per
    stack, node, service, kind and detection time: a retried write finds its own row.
    """

    __tablename__ = "incident"
    __table_args__ = (
        UniqueConstraint("stack_id", "node", "service", "kind", "detected_at"),
        Index("ix_incident_stack_id_state", "stack_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    stack_id: str = Field(foreign_key="stack.id", ondelete="CASCADE")
    node: str = Field(max_length=63)
    service: str = Field(default="", max_length=63)
    kind: str = Field(max_length=40)
    detection: str = Field(default="", max_length=200)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    detected_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    actions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="open", max_length=20)
    recovered_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )
    updated_at: datetime = _ts(nullable=False)


class Simulation(SQLModel, table=True):
    """A KombiSim simulation kombify created; live state always comes from the engine."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=63)
    # Who created it through the API: other organisations never see it. Simulations made
    # before accounts (or by the CLI on the engine directly) have none: the local ones.
    organisation_id: str | None = Field(
        default=None, foreign_key="organisation.id", index=True, ondelete="CASCADE"
    )
    template: str | None = Field(default=None, max_length=100)
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    workflow_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = _ts(nullable=False)


class Event(SQLModel, table=True):
    """A log line or progress event of a deployment or simulation, in arrival order."""

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=255, index=True)  # e.g. "deployment/<id>"
    source: str = Field(max_length=100)  # e.g. "tofu", "agent/nas"
    level: str = Field(default="info", max_length=10)
    message: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts(nullable=False)


class StackCreate(SQLModel):
    """What a client sends to create or revise a stack: the kombination file's text."""

    source: str = Field(description="The kombination.yaml text, as written.")
    filename: str = Field(default="kombination.yaml", description="Named in error messages.")


class StackPublic(SQLModel):
    """A stack as the API shows it."""

    id: str
    name: str
    stackkit: str
    current_revision: int
    created_at: datetime
    updated_at: datetime


class StackDetail(StackPublic):
    """A stack with the source of its current revision."""

    source: str
    sha256: str




class DeploymentCreate(SQLModel):
    """Options of a deploy run."""

    auto_approve: bool = Field(default=False, description="Skip the plan approval gate.")
    simulate: bool = Field(
        default=False, description="Rehearse on simulated nodes of the same names and roles."
    )
    source: str | None = Field(
        default=None,
        description="A new kombination file to deploy: stored as the stack's next revision "
        "only when the run starts (a refused run changes nothing). Default: the current one.",
    )
    filename: str = Field(default="kombination.yaml", description="Named in error messages.")

    def options(self) -> dict[str, bool]:
        """The run's options as recorded with it (the file is kept as a revision instead)."""
        return {"auto_approve": self.auto_approve, "simulate": self.simulate}


class DestroyCreate(SQLModel):
    """Options of a destroy run."""

    force: bool = Field(
        default=False,
        description="Leave nodes that cannot be reached and list them as skipped, instead of "
        "failing (what runs on them stays).",
    )


class DeploymentPublic(SQLModel):
    """A run as the API shows it; ``progress`` is live while the workflow runs."""

    id: str
    stack: str
    revision: int
    kind: str
    workflow_id: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    summary: dict[str, Any]
    progress: dict[str, Any] | None = None


class StackSummary(StackPublic):
    """A stack in a list, with its newest run (what state it is in, without asking a node)."""

    last_run: DeploymentPublic | None = None


class StacksPublic(SQLModel):
    """A page of stacks."""

    data: list[StackSummary]
    count: int


class EventPublic(SQLModel):
    """One stored output line."""

    id: int
    source: str
    level: str
    message: str
    created_at: datetime


class EventsPublic(SQLModel):
    """Output lines after a cursor; pass ``next`` as ``after`` to continue."""

    data: list[EventPublic]
    next: int


class ContainerStatus(SQLModel):
    """One container as its node's engine reports it now."""

    id: str
    state: str
    health: str
    image: str
    since: str


class ServiceStatus(SQLModel):
    """A service on one node: desired beside what runs, asked from the node now."""

    state: str = Field(
        description="running, degraded (fewer replicas run than wanted), missing (wanted, no "
        "container), exited/created/... (Docker's state when none runs), stopped-by-owner "
        "(`kombify service stop`: held stopped, not healed), not-wanted (left over: "
        "the next apply removes it), unknown (the node did not answer)"
    )
    healthy: bool
    health: str = Field(description="healthy, unhealthy, none (no health check) or unknown")
    desired_replicas: int
    image: str
    containers: list[str] = Field(description="Ids of its containers on the node, any state.")
    details: list[ContainerStatus]
    endpoints: list[str] = Field(description="Where it answers: `host:port -> port/protocol`.")
    stopped_by_owner: bool = Field(
        default=False,
        description="Its owner stopped it (`kombify service stop`); `start` or the next apply "
        "ends that.",
    )


class NodeStatus(SQLModel):
    """One node: did it answer, and what runs on it."""

    name: str
    answered: bool
    error: str | None
    observed_at: str
    services: dict[str, ServiceStatus]


class HostKeyPublic(SQLModel):
    """A node's pinned host key (or its absence) as ``kombify nodes`` shows it."""

    node: str
    simulated: bool
    address: str
    algorithm: str | None
    fingerprint: str | None
    source: str | None
    recorded_at: datetime | None


class HostKeysPublic(SQLModel):
    """The pins of a stack's nodes, by node name."""

    stack: str
    data: list[HostKeyPublic]


class HostKeyCheck(SQLModel):
    """What a node presents now beside what is pinned (read before re-trusting it)."""

    node: str
    simulated: bool
    address: str
    pinned: str | None = Field(description="Fingerprint of the pinned key, if any.")
    presented: str = Field(description="Fingerprint of the key the node presents now.")
    algorithm: str
    recorded: bool = Field(default=False, description="Whether the presented key is now pinned.")


class HostKeyTrust(SQLModel):
    """Re-trust a node's key: the fingerprint the user checked on the node (or saw in GET)."""

    fingerprint: str = Field(
        min_length=8, max_length=80, description="SHA256:... of the key to pin; must match."
    )


class SwarmTaskStatus(SQLModel):
    """One task of a Swarm service: where it runs and Docker's task state."""

    node: str
    state: str
    error: str


class SwarmServiceStatus(SQLModel):
    """A Swarm service as a manager of the stack reports it now."""

    mode: str = Field(description="replicated or global")
    wanted: int
    running: int = Field(description="Tasks running (healthy, when the service has a check).")
    healthy: bool
    publish_mode: str = Field(description="host (on the nodes running a task) or ingress")
    image: str
    tasks: list[SwarmTaskStatus]
    endpoints: list[str] = Field(description="Where it answers: `host:port -> port/protocol`.")
    update_state: str
    update_message: str


class SwarmStatus(SQLModel):
    """A swarm kit's swarm, asked from one of its managers now."""

    manager: str = Field(description="The manager that answered.")
    answered: bool
    error: str | None
    quorum: bool
    managers: int
    reachable_managers: int
    nodes: int
    nodes_ready: int
    services: dict[str, SwarmServiceStatus]


class StackStatus(SQLModel):
    """A stack as its nodes report it now, beside the deployed spec and the last run."""

    stack: str
    revision: int = Field(description="The stack's current (newest stored) revision.")
    deployed_revision: int | None = Field(
        description="The revision the last deploy rolled out (its services are wanted)."
    )
    observed: bool = Field(description="Whether the nodes could be asked at all.")
    error: str | None = Field(description="Why not, when they could not.")
    last_deployment: DeploymentPublic | None
    nodes: list[NodeStatus]
    swarm: SwarmStatus | None = Field(
        default=None, description="On a swarm kit: its swarm and services, asked from a manager."
    )
