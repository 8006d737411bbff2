"""Simulation runs: a simulation kept by the durable ``RunSimulation`` workflow.

Unlike ``/v1/simulations`` (which acts on the engine at once), a run creates the nodes,
waits until each answers SSH, keeps them until its TTL passes or it is told to stop, then
tears everything down, and survives worker and Temporal restarts on the way.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import Field
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from kombify.api import sim_owners
from kombify.api.deps import SessionDep, SettingsDep, TemporalDep, get_temporal
from kombify.api.owned import SeesSimulation
from kombify.api.principal import OrgDep
from kombify.api.routes.sims import ERRORS, SimulationCreate, engine_names, spec_from_request
from kombify.billing import entitlements
from kombify.db.models import Organisation
from kombify.errors import ConflictError, NotFoundError
from kombify.names import SimulationName
from kombify.workflows.simulation import RunSimulationInput, RunSimulationWorkflow, workflow_id

router = APIRouter(prefix="/v1/simulation-runs", tags=["simulations"])


class SimulationRunCreate(SimulationCreate):
    """A simulation as for ``POST /v1/simulations``, plus how long to keep it."""

    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 24 * 3600)


async def _query(client: Client, name: str) -> dict[str, Any]:
    handle = client.get_workflow_handle(workflow_id(name))
    try:
        phase = await handle.query(RunSimulationWorkflow.phase)
        nodes = await handle.query(RunSimulationWorkflow.nodes)
    except RPCError as exc:
        raise NotFoundError(f"no simulation run `{name}`") from exc
    return {"name": name, "phase": phase, "nodes": [asdict(n) for n in nodes]}


async def _running(client: Client, name: str) -> bool:
    """Whether simulation ``name`` has a run in progress."""
    try:
        described = await client.get_workflow_handle(workflow_id(name)).describe()
    except RPCError:
        return False
    return described.status == WorkflowExecutionStatus.RUNNING


async def _live(client: Client, session: Session, org: Organisation) -> set[str]:
    """The organisation's simulations that exist or have a run in progress.

    A run counts from its start (its nodes may not be on the engine yet) until its simulation
    is gone; one that was recorded but neither runs nor exists counts no more.
    """
    alive = set(await asyncio.to_thread(engine_names))
    for name in entitlements.simulation_names(session, org):
        if name not in alive and await _running(client, name):
            alive.add(name)
    return alive


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def start_run(
    body: SimulationRunCreate,
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    org: OrgDep,
) -> dict[str, Any]:
    """Start a run; poll ``GET /v1/simulation-runs/{name}`` until its phase is ``ready``."""
    spec = spec_from_request(body, org)
    entitlements.check_simulation_nodes(session, org, settings, nodes=len(spec.nodes))
    alive: set[str] | None = None
    if entitlements.effective_plan(session, org, settings).entitlements.simulations is not None:
        alive = await _live(await get_temporal(request), session, org)
    entitlements.check_simulation(
        session,
        org,
        settings,
        name=spec.name,
        nodes=len(spec.nodes),
        live=None if alive is None else alive.copy,
    )
    # Claimed before Temporal is dialled: another organisation's name is a 409 either way.
    sim_owners.claim(session, org, spec.name)
    client = await get_temporal(request)
    try:
        await client.start_workflow(
            RunSimulationWorkflow.run,
            RunSimulationInput(spec=spec, ttl_seconds=body.ttl_seconds),
            id=workflow_id(spec.name),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            execution_timeout=timedelta(seconds=body.ttl_seconds + 3600),
        )
    except WorkflowAlreadyStartedError as exc:
        raise ConflictError(f"simulation `{spec.name}` already has a run in progress") from exc
    return {
        "name": spec.name,
        "workflow_id": workflow_id(spec.name),
        "ttl_seconds": body.ttl_seconds,
    }


@router.get("/{name}", responses=ERRORS, dependencies=[SeesSimulation])
async def get_run(
    name: SimulationName, client: TemporalDep, session: SessionDep, org: OrgDep
) -> dict[str, Any]:
    """The run's phase (image, creating, waiting-ssh, ready, deleting, deleted) and nodes."""
    sim_owners.check_visible(session, org, name)
    return await _query(client, name)


@router.post("/{name}/stop", responses=ERRORS, dependencies=[SeesSimulation])
async def stop_run(
    name: SimulationName, client: TemporalDep, session: SessionDep, org: OrgDep
) -> dict[str, Any]:
    """End the run now: the workflow tears the simulation down."""
    sim_owners.check_visible(session, org, name)
    current = await _query(client, name)
    await client.get_workflow_handle(workflow_id(name)).signal(RunSimulationWorkflow.stop)
    return current
