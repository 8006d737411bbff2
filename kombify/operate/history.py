"""A stack's revisions with what became of them, diffs between them, and rollback.

A rollback stores the chosen revision's file as the stack's next revision (unless the current
one already has the same text) and deploys it through the normal deploy run: plan, approval,
health gate. The run records ``rollback_of`` among its options, so the history shows
"revision 3: rollback of 1"; the revision numbers only ever grow, and the current revision
stays the one that is deployed, so the next ``kombify apply`` does not undo the rollback.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select
from temporalio.client import Client

from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.models import (
    Deployment,
    DeploymentCreate,
    DeploymentPublic,
    Organisation,
    Stack,
    StackRevision,
)
from kombify.errors import ConflictError, NotFoundError
from kombify.operate.revision_diff import (
    Change,
    SourceDiff,
    diff_sources,
    semantic_changes,
    summarize,
)
from kombify.operate.start_run import start_run
from kombify.settings import Settings

# ---- what the API shows ------------------------------------------------------------------------


class ChangePublic(BaseModel):
    """One difference between two revisions; never an env value or a secret-looking one."""

    kind: str
    object: str
    name: str
    details: list[str]

    @classmethod
    def of(cls, change: Change) -> ChangePublic:
        return cls(
            kind=change.kind, object=change.object, name=change.name, details=list(change.details)
        )


class RunOutcome(BaseModel):
    """A run of a revision and how it ended (``running`` while it goes on)."""

    id: str
    kind: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    rollback_of: int | None = None
    error: str | None = None


class RevisionPublic(BaseModel):
    """A stored revision: when, its runs, and what it changed against the one before it."""

    revision: int
    created_at: datetime
    sha256: str
    current: bool
    deployed: bool
    rollback_of: int | None
    outcome: str
    runs: list[RunOutcome]
    previous: int | None
    summary: str
    changes: list[ChangePublic]


class RevisionsPublic(BaseModel):
    """A page of a stack's revisions, newest first, and which are current and deployed."""

    stack: str
    current_revision: int
    deployed_revision: int | None
    data: list[RevisionPublic]
    count: int


class RevisionSource(BaseModel):
    """One revision's file as stored (the same the stack's own route returns)."""

    stack: str
    revision: int
    created_at: datetime
    sha256: str
    source: str


class DiffPublic(BaseModel):
    """What deploying ``to_revision`` over ``from_revision`` would change."""

    stack: str
    from_revision: int | None
    to_revision: int
    identical: bool
    summary: str
    changes: list[ChangePublic]
    text: str


# Revisions are stored as 32-bit integers (PostgreSQL's INTEGER).
MAX_REVISION = 2**31 - 1


class RollbackCreate(BaseModel):
    """Options of a rollback run."""

    to: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REVISION,
        description="The revision to deploy again. Default: the newest revision before the "
        "deployed one whose deploy succeeded and whose file differs from it.",
    )
    auto_approve: bool = Field(default=False, description="Skip the plan approval gate.")
    simulate: bool | None = Field(
        default=None,
        description="Rehearse on simulated nodes. Default: as the deployed run did.",
    )


# ---- reading ----------------------------------------------------------------------------------


def _revisions(session: Session, stack: Stack) -> list[StackRevision]:
    query = select(StackRevision).where(StackRevision.stack_id == stack.id)
    return list(session.exec(query.order_by(col(StackRevision.revision))).all())


def _all_runs(session: Session, stack: Stack) -> list[Deployment]:
    query = select(Deployment).where(Deployment.stack_id == stack.id)
    return list(session.exec(query.order_by(col(Deployment.started_at))).all())


def _rollback_of(row: Deployment) -> int | None:
    value = (row.summary.get("options") or {}).get("rollback_of")
    return int(value) if isinstance(value, int) else None


def _outcome(row: Deployment) -> RunOutcome:
    error = row.summary.get("error")
    return RunOutcome(
        id=row.id,
        kind=row.kind,
        state=row.state,
        started_at=row.started_at,
        finished_at=row.finished_at,
        rollback_of=_rollback_of(row),
        error=str(error) if error else None,
    )


def _outcome_word(deploys: list[Deployment]) -> str:
    if not deploys:
        return "never deployed"
    last = deploys[-1]
    tried = f" ({len(deploys)} deploys)" if len(deploys) > 1 else ""
    return f"{last.state}{tried}"


def deployed_revision(session: Session, stack: Stack) -> int | None:
    """The revision whose services should be on the nodes now (see ``last_rollout``)."""
    last = runs.last_rollout(session, stack=stack)
    return last.revision if last is not None else None


def list_revisions(
    session: Session, *, stack: Stack, offset: int = 0, limit: int = 50
) -> RevisionsPublic:
    """The stack's revisions, newest first, each with its runs and changes.

    A revision stored for a run that never started (a crash in between) is left out, as
    nothing deploys or shows it.
    """
    rows = _revisions(session, stack)
    by_revision: dict[int, list[Deployment]] = {}
    for run in _all_runs(session, stack):
        by_revision.setdefault(run.revision, []).append(run)
    rows = [r for r in rows if r.revision <= stack.current_revision or r.revision in by_revision]
    deployed = deployed_revision(session, stack)
    shown: list[RevisionPublic] = []
    newest_first = list(reversed(rows))
    for index, row in enumerate(newest_first[offset : offset + limit], start=offset):
        before = newest_first[index + 1] if index + 1 < len(newest_first) else None
        # Only the semantic changes: the masked text diff costs a slower parse per revision.
        changes = semantic_changes(before.source if before else None, row.source)
        summary = summarize(
            changes, text_changed=before is not None and before.sha256 != row.sha256
        )
        its_runs = by_revision.get(row.revision, [])
        deploys = [r for r in its_runs if r.kind == "deploy"]
        marks = [m for m in (_rollback_of(r) for r in deploys) if m is not None]
        shown.append(
            RevisionPublic(
                revision=row.revision,
                created_at=row.created_at,
                sha256=row.sha256,
                current=row.revision == stack.current_revision,
                deployed=row.revision == deployed,
                rollback_of=marks[0] if marks else None,
                outcome=_outcome_word(deploys),
                runs=[_outcome(r) for r in its_runs],
                previous=before.revision if before else None,
                summary=summary if before else "first revision",
                changes=[ChangePublic.of(c) for c in changes] if before else [],
            )
        )
    return RevisionsPublic(
        stack=stack.name,
        current_revision=stack.current_revision,
        deployed_revision=deployed,
        data=shown,
        count=len(rows),
    )


def revision_source(session: Session, *, stack: Stack, revision: int) -> RevisionSource:
    """One revision's stored file; NotFoundError naming it when there is none."""
    row = store.get_revision(session, stack=stack, revision=revision)
    return RevisionSource(
        stack=stack.name,
        revision=row.revision,
        created_at=row.created_at,
        sha256=row.sha256,
        source=row.source,
    )


def diff_revisions(
    session: Session, *, stack: Stack, to: int | None = None, from_: int | None = None
) -> DiffPublic:
    """What deploying revision ``to`` would change over revision ``from_``.

    Defaults: ``from_`` is the deployed revision (nothing, when none is: all is added) and
    ``to`` the current one, i.e. what the next ``kombify apply`` of the stack would change.

    Raises:
        NotFoundError: Either revision does not exist (the message names it).
    """
    target = store.get_revision(
        session, stack=stack, revision=to if to is not None else stack.current_revision
    )
    start = from_ if from_ is not None else deployed_revision(session, stack)
    base = store.get_revision(session, stack=stack, revision=start) if start is not None else None
    diff: SourceDiff = diff_sources(
        base.source if base else None,
        target.source,
        old_label=f"revision {base.revision}" if base else "nothing deployed",
        new_label=f"revision {target.revision}",
    )
    return DiffPublic(
        stack=stack.name,
        from_revision=base.revision if base else None,
        to_revision=target.revision,
        identical=base is not None and base.sha256 == target.sha256,
        summary=diff.summary,
        changes=[ChangePublic.of(c) for c in diff.changes],
        text=diff.text,
    )


# ---- rollback ---------------------------------------------------------------------------------


def rollback_target(session: Session, *, stack: Stack) -> int:
    """The revision a rollback without ``to`` goes back to.

    The newest revision before the deployed one whose deploy succeeded and whose file differs
    from the deployed one's.

    Raises:
        ConflictError: Nothing is deployed, or no such revision exists.
    """
    deployed = deployed_revision(session, stack)
    if deployed is None:
        raise ConflictError(
            f"stack `{stack.name}` is not deployed, so there is nothing to roll back from: "
            f"name a revision with `kombify rollback {stack.name} --to REVISION`"
        )
    now = store.get_revision(session, stack=stack, revision=deployed)
    succeeded = {
        r.revision
        for r in _all_runs(session, stack)
        if r.kind == "deploy" and r.state == "succeeded" and r.revision < deployed
    }
    for row in reversed(_revisions(session, stack)):
        if row.revision in succeeded and row.sha256 != now.sha256:
            return row.revision
    raise ConflictError(
        f"stack `{stack.name}` has no revision before {deployed} that deployed successfully "
        "and differs from it: name one with `--to REVISION` (`kombify history` lists them)"
    )


async def start_rollback(
    *,
    session: Session,
    org: Organisation,
    client: Client,
    settings: Settings,
    name: str,
    request: RollbackCreate,
) -> DeploymentPublic:
    """Deploy an earlier revision's file again, as the stack's next revision.

    Raises:
        NotFoundError: No such stack, or no such revision (named).
        ConflictError: A run is in progress, or there is no revision to go back to.
        SpecError: The old file no longer passes validation.
    """
    stack = store.get_stack(session, organisation_id=org.id, name=name)
    store.refuse_while_running(stack, store.running_deployment(session, stack=stack), "roll back")
    if request.to is not None and request.to < 1:
        raise NotFoundError(f"stack `{stack.name}` has no revision {request.to}")
    target = request.to if request.to is not None else rollback_target(session, stack=stack)
    row = store.get_revision(session, stack=stack, revision=target)
    simulate = request.simulate
    if simulate is None:
        last = runs.last_rollout(session, stack=stack)
        simulate = runs.simulated(last) if last is not None else False
    options = DeploymentCreate(
        auto_approve=request.auto_approve,
        simulate=simulate,
        source=row.source,
        filename=f"revision {target} of {stack.name}",
    )
    return await start_run(
        session=session,
        org=org,
        client=client,
        settings=settings,
        name=stack.name,
        kind="deploy",
        options=options,
        rollback_of=target,
    )
