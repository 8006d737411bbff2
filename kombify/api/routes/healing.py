"""Healing: a stack's incidents, a heal pass run now, and a drift check run now."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query

from kombify.api.deps import SessionDep, SettingsDep, TemporalDep
from kombify.api.owned import OwnsStack
from kombify.api.principal import OrgDep
from kombify.api.stack_runs import ask_worker, deployed_stack, org_stack
from kombify.contracts.heal import (
    DriftFound,
    HealPassResult,
    HealStackInput,
    Incident,
    StackRef,
    heal_pass_workflow_id,
)
from kombify.db import incidents as records
from kombify.names import StackName

router = APIRouter(prefix="/v1/stacks", tags=["healing"])

# A heal pass asks every node, repairs what it can and waits for health checks.
HEAL_WAIT = timedelta(minutes=5)
DRIFT_WAIT = timedelta(minutes=5)

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such stack", **_PROBLEM},
}
_RUN_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "The stack is not deployed (never, or destroyed since)", **_PROBLEM},
    502: {"description": "The run failed or did not finish in time", **_PROBLEM},
    503: {"description": "Temporal does not answer", **_PROBLEM},
}


def drift_workflow_id(organisation: str, stack: str, nonce: str) -> str:
    """A drift check started by hand (``kombify drift``)."""
    return f"drift/{organisation}/{stack}/{nonce}"


@router.get("/{name}/incidents", responses=_ERRORS)
def list_incidents(
    name: StackName,
    session: SessionDep,
    org: OrgDep,
    state: Literal["open", "recovered", "given-up"] | None = Query(
        default=None, description="Only incidents in this state."
    ),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[Incident]:
    """The stack's incidents, newest first: what failed, how it was found, what was done."""
    org, stack = org_stack(session, org, name)
    return records.list_incidents(session, org.slug, stack.name, state=state, limit=limit)


@router.post("/{name}/heal", responses=_RUN_ERRORS, dependencies=[OwnsStack])
async def heal_stack(
    name: StackName,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    org: OrgDep,
) -> HealPassResult:
    """Run one heal pass now (``HealStack``, as the schedule does) and return what it did.

    Started by hand, the pass also forgets crash loops it had given up on, and waits for a
    running deploy instead of skipping.
    """
    org, stack, _ = deployed_stack(session, org, name, doing="heal")
    result: HealPassResult = await ask_worker(
        client,
        settings,
        "HealStack",
        HealStackInput(org.slug, stack.name, manual=True),
        stack=(org.slug, stack.name),
        workflow_id=heal_pass_workflow_id(org.slug, stack.name, uuid.uuid4().hex[:12]),
        result_type=HealPassResult,
        timeout=HEAL_WAIT,
        what="the heal pass",
    )
    return result


@router.get("/{name}/drift", responses=_RUN_ERRORS, dependencies=[OwnsStack])
async def check_drift(
    name: StackName,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    org: OrgDep,
) -> DriftFound:
    """Compare what runs on the nodes (and OpenTofu's plan) with the spec now; each difference."""
    org, stack, _ = deployed_stack(session, org, name, doing="check drift of")
    found: DriftFound = await ask_worker(
        client,
        settings,
        "CheckDrift",
        StackRef(org.slug, stack.name),
        stack=(org.slug, stack.name),
        workflow_id=drift_workflow_id(org.slug, stack.name, uuid.uuid4().hex[:12]),
        result_type=DriftFound,
        timeout=DRIFT_WAIT,
        what="the drift check",
    )
    return found
