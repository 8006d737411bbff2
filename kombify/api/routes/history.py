"""A stack's history: its revisions and their runs, diffs between them, and rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from kombify.api.deps import SessionDep, SettingsDep, TemporalDep
from kombify.api.owned import OwnsStack
from kombify.api.principal import OrgDep
from kombify.db import stacks as store
from kombify.db.models import DeploymentPublic
from kombify.names import StackName
from kombify.operate.history import (
    MAX_REVISION,
    DiffPublic,
    RevisionSource,
    RevisionsPublic,
    RollbackCreate,
    diff_revisions,
    list_revisions,
    revision_source,
    start_rollback,
)

router = APIRouter(prefix="/v1/stacks", tags=["history"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such stack, or no such revision (named)", **_PROBLEM},
}
_ROLLBACK_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {
        "description": "A run of the stack is in progress, or (no `to`) there is no earlier "
        "revision that deployed successfully",
        **_PROBLEM,
    },
    422: {"description": "The revision's file no longer passes validation", **_PROBLEM},
}
Revision = Annotated[int, Path(ge=1, le=MAX_REVISION, description="A revision number.")]


def _revision_query(description: str, *, alias: str | None = None) -> Any:
    return Query(default=None, alias=alias, ge=1, le=MAX_REVISION, description=description)


@router.get("/{name}/revisions", responses=_ERRORS)
def revisions(
    name: StackName,
    session: SessionDep,
    org: OrgDep,
    offset: int = Query(default=0, ge=0, le=MAX_REVISION),
    limit: int = Query(default=50, ge=1, le=500),
) -> RevisionsPublic:
    """The stack's revisions, newest first: when, their runs and outcomes, what each changed
    against the one before it (env values and secret-looking values never shown), and which
    is current and which deployed."""
    stack = store.get_stack(session, organisation_id=org.id, name=name)
    return list_revisions(session, stack=stack, offset=offset, limit=limit)


@router.get("/{name}/revisions/{revision}", responses=_ERRORS)
def revision(
    name: StackName, revision: Revision, session: SessionDep, org: OrgDep
) -> RevisionSource:
    """One revision's file as it was stored."""
    stack = store.get_stack(session, organisation_id=org.id, name=name)
    return revision_source(session, stack=stack, revision=revision)


@router.get("/{name}/diff", responses=_ERRORS)
def diff(
    name: StackName,
    session: SessionDep,
    org: OrgDep,
    to: int | None = _revision_query(
        "The revision to compare with (what a rollback to it would change). "
        "Default: the current revision (what the next apply would change)."
    ),
    from_: int | None = _revision_query(
        "The revision to compare from. Default: the deployed one (nothing, if none is).",
        alias="from",
    ),
) -> DiffPublic:
    """What deploying a revision would change: services, nodes and settings, and the files'
    text diff, with env values and secret-looking values masked."""
    stack = store.get_stack(session, organisation_id=org.id, name=name)
    return diff_revisions(session, stack=stack, to=to, from_=from_)


@router.post(
    "/{name}/rollback",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_ROLLBACK_ERRORS,
    dependencies=[OwnsStack],
)
async def rollback(
    name: StackName,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    org: OrgDep,
    body: RollbackCreate | None = None,
) -> DeploymentPublic:
    """Deploy an earlier revision's file again, through the normal deploy run (plan, approval
    unless ``auto_approve``, health gate).

    The file is stored as the stack's next revision (unless the current one has the same
    text), and the run records ``rollback_of``; a refused run changes nothing.
    """
    return await start_rollback(
        session=session,
        org=org,
        client=client,
        settings=settings,
        name=name,
        request=body or RollbackCreate(),
    )
