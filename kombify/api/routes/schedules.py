"""Schedules: an owner's workflow file run on a cron or an interval by a Temporal Schedule.

Ownership is looked up in the database before Temporal is asked anything
(:mod:`kombify.operate.schedules`); changes are recorded in the activity log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from kombify.api.activity_log import record_event
from kombify.api.deps import SessionDep, SettingsDep, get_temporal
from kombify.api.principal import AuthorizedDep, OrgDep
from kombify.names import ScheduleName
from kombify.operate import schedules as ops
from kombify.operate.schedules import (
    ScheduleCreate,
    ScheduleNote,
    SchedulePublic,
    SchedulesPublic,
)

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such schedule", **_PROBLEM},
    503: {"description": "Temporal does not answer", **_PROBLEM},
}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {
        "description": "The name is taken, or (trigger) a run is still going and the "
        "schedule skips overlapping runs",
        **_PROBLEM,
    },
    422: {
        "description": "A bad cron, interval, jitter or workflow file (the field is named)",
        **_PROBLEM,
    },
}


def _audit(
    request: Request, session: SessionDep, principal: AuthorizedDep, action: str, name: str
) -> None:
    record_event(
        session,
        request,
        action=f"schedule-{action}",
        principal=principal,
        object_type="schedule",
        object_id=name,
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=_CHANGE_ERRORS)
async def create_schedule(
    body: ScheduleCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    org: OrgDep,
    principal: AuthorizedDep,
) -> SchedulePublic:
    """Schedule a workflow file (``cron`` or ``every``); nothing is kept when it is refused."""
    made = await ops.create(
        session=session,
        connect=lambda: get_temporal(request),
        org=org,
        body=body,
        task_queue=settings.task_queue,
        created_by=principal.actor,
    )
    _audit(request, session, principal, "create", body.name)
    return made


@router.get("", responses=_ERRORS)
async def list_schedules(request: Request, session: SessionDep, org: OrgDep) -> SchedulesPublic:
    """The organisation's schedules, by name, with their next runs."""
    rows = ops.list_rows(session, org)
    if not rows:
        return SchedulesPublic(data=[], count=0)
    return await ops.describe_all(client=await get_temporal(request), rows=rows)


@router.get("/{name}", responses=_ERRORS)
async def get_schedule(
    name: ScheduleName, request: Request, session: SessionDep, org: OrgDep
) -> SchedulePublic:
    """One schedule: spec, pause state, the next 5 runs and recent runs with their outcome."""
    row = ops.get_row(session, org, name)
    return await ops.describe(client=await get_temporal(request), row=row)


@router.post("/{name}/pause", responses=_ERRORS)
async def pause_schedule(
    name: ScheduleName,
    request: Request,
    session: SessionDep,
    org: OrgDep,
    principal: AuthorizedDep,
    body: ScheduleNote | None = None,
) -> SchedulePublic:
    """Start no more runs until resumed (runs already going go on)."""
    row = ops.get_row(session, org, name)
    note = body.note if body and body.note else f"paused by {principal.actor}"
    done = await ops.pause(client=await get_temporal(request), row=row, note=note)
    _audit(request, session, principal, "pause", name)
    return done


@router.post("/{name}/resume", responses=_ERRORS)
async def resume_schedule(
    name: ScheduleName,
    request: Request,
    session: SessionDep,
    org: OrgDep,
    principal: AuthorizedDep,
    body: ScheduleNote | None = None,
) -> SchedulePublic:
    """Start runs again from the next due time (missed ones are not made up)."""
    row = ops.get_row(session, org, name)
    note = body.note if body and body.note else f"resumed by {principal.actor}"
    done = await ops.resume(client=await get_temporal(request), row=row, note=note)
    _audit(request, session, principal, "resume", name)
    return done


@router.post("/{name}/trigger", responses=_CHANGE_ERRORS)
async def trigger_schedule(
    name: ScheduleName,
    request: Request,
    session: SessionDep,
    org: OrgDep,
    principal: AuthorizedDep,
) -> SchedulePublic:
    """Start a run now, as the schedule would (paused or not)."""
    row = ops.get_row(session, org, name)
    done = await ops.trigger(client=await get_temporal(request), row=row)
    _audit(request, session, principal, "trigger", name)
    return done


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
async def delete_schedule(
    name: ScheduleName,
    request: Request,
    session: SessionDep,
    org: OrgDep,
    principal: AuthorizedDep,
) -> Response:
    """Delete the schedule (runs already going go on)."""
    row = ops.get_row(session, org, name)
    await ops.delete(session=session, client=await get_temporal(request), row=row)
    _audit(request, session, principal, "delete", name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
