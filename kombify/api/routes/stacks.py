"""Stacks: a homelab's kombination file, validated and kept with every revision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response, status

from kombify.api import sim_owners
from kombify.api.deps import MAX_DB_INT, SessionDep, SettingsDep
from kombify.api.principal import OrgDep
from kombify.billing import entitlements
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.models import (
    Stack,
    StackCreate,
    StackDetail,
    StackPublic,
    StacksPublic,
    StackSummary,
)
from kombify.errors import ConflictError
from kombify.names import StackName
from kombify.operate.start_run import deployment_public
from kombify.specs import load_kombination

router = APIRouter(prefix="/v1/stacks", tags=["stacks"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such stack", **_PROBLEM},
    409: {
        "description": "The name is taken, a run of the stack is in progress, or (delete) "
        "the stack is deployed: destroy it first",
        **_PROBLEM,
    },
    422: {"description": "The kombination file is invalid (errors list every problem)", **_PROBLEM},
    402: {
        "description": "The organisation's plan does not allow it (`plan` names the one that "
        "does; a StackKit beyond the plan is reported at `spec.stackkit`)",
        **_PROBLEM,
    },
}


def _detail(session: SessionDep, stack: Stack) -> StackDetail:
    revision = store.current_revision(session, stack=stack)
    return StackDetail(
        **StackPublic.model_validate(stack, from_attributes=True).model_dump(),
        source=revision.source,
        sha256=revision.sha256,
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
def create_stack(
    body: StackCreate, session: SessionDep, org: OrgDep, settings: SettingsDep
) -> StackDetail:
    """Create a stack from a kombination file; nothing is stored when the file is invalid or
    the organisation's plan allows no more stacks or not its StackKit (402)."""
    kombination = load_kombination(body.source, filename=body.filename)
    entitlements.check_stackkit(
        session, org, settings, stackkit=kombination.spec.stackkit, source=body.source
    )
    entitlements.check_new_stack(session, org, settings)
    name = kombination.metadata.name
    # Stack names name the simulations, containers and networks of the installation's one
    # engine: unique across organisations (answered like any taken name, nothing more).
    if sim_owners.owner_of(session, name) not in (None, org.id):
        raise ConflictError(
            f"metadata.name: `{name}` is taken on this installation; choose another"
        )
    stack = store.create_stack(
        session,
        organisation_id=org.id,
        name=kombination.metadata.name,
        stackkit=kombination.spec.stackkit,
        source=body.source,
    )
    return _detail(session, stack)


@router.get("", responses=_ERRORS)
def list_stacks(
    session: SessionDep,
    org: OrgDep,
    offset: int = Query(default=0, ge=0, le=MAX_DB_INT),
    limit: int = Query(default=100, ge=1, le=1000),
) -> StacksPublic:
    """The stacks, by name, each with its newest run (``last_run``; null before the first)."""
    rows, count = store.list_stacks(session, organisation_id=org.id, offset=offset, limit=limit)
    data = []
    for stack in rows:
        last = runs.latest_deployment(session, stack=stack)
        data.append(
            StackSummary(
                **StackPublic.model_validate(stack, from_attributes=True).model_dump(),
                last_run=deployment_public(stack, last, None) if last is not None else None,
            )
        )
    return StacksPublic(data=data, count=count)


@router.get("/{name}", responses=_ERRORS)
def get_stack(name: StackName, session: SessionDep, org: OrgDep) -> StackDetail:
    """One stack with the source of its current revision."""
    return _detail(session, store.get_stack(session, organisation_id=org.id, name=name))


@router.put("/{name}", responses=_ERRORS)
def revise_stack(
    name: StackName, body: StackCreate, session: SessionDep, org: OrgDep, settings: SettingsDep
) -> StackDetail:
    """Store a new revision of the stack's kombination file (unchanged text: no new revision).

    Refused while a run of the stack is in progress: its status would name a revision that
    run does not deploy. ``POST /v1/stacks/{name}/deployments`` with ``source`` stores and
    deploys a revision in one step.
    """
    kombination = load_kombination(body.source, filename=body.filename)
    if kombination.metadata.name != name:
        raise ConflictError(
            f"the file's metadata.name is `{kombination.metadata.name}`, not `{name}`"
        )
    stack = store.get_stack(session, organisation_id=org.id, name=name)
    entitlements.check_stackkit(
        session, org, settings, stackkit=kombination.spec.stackkit, source=body.source
    )
    store.refuse_while_running(stack, store.running_deployment(session, stack=stack), "change")
    stack = store.revise_stack(
        session, stack=stack, stackkit=kombination.spec.stackkit, source=body.source
    )
    return _detail(session, stack)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
def delete_stack(name: StackName, session: SessionDep, org: OrgDep) -> Response:
    """Forget a stack and its revisions; refused while it runs or is deployed (destroy first)."""
    store.delete_stack(session, stack=store.get_stack(session, organisation_id=org.id, name=name))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
