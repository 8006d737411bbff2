"""Simulations: KombiSim nodes on this machine's Docker engine, and the templates for them.

Routes act on the engine directly (sync handlers run in FastAPI's thread pool, since the
Docker SDK blocks); live state always comes from the engine, never from the database. The
durable, TTL-bound path is the ``RunSimulation`` workflow (``sim/<name>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, Field

from kombify.api import sim_owners
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.owned import SeesSimulation
from kombify.api.principal import OrgDep
from kombify.billing import entitlements
from kombify.db.models import Organisation
from kombify.db.stacks import LOCAL_ORG
from kombify.errors import ForbiddenError, SpecError
from kombify.names import SimulationName
from kombify.sim import templates as tpl
from kombify.sim.client import docker_client
from kombify.sim.engine import SimEngine
from kombify.sim.models import SimulationSpec

router = APIRouter(prefix="/v1/simulations", tags=["simulations"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such simulation or template", **_PROBLEM},
    409: {"description": "A name is taken by something else", **_PROBLEM},
    422: {"description": "Invalid template or spec (errors list every problem)", **_PROBLEM},
    502: {"description": "The Docker engine failed", **_PROBLEM},
    402: {
        "description": "KombiSim basic (the Free plan): one simulation at a time, of up to "
        "3 nodes; `plan` names the plan with full KombiSim",
        **_PROBLEM,
    },
}


class SimulationCreate(BaseModel):
    """Create from a template (by name), from template YAML, or as N identical nodes."""

    name: SimulationName | None = Field(
        default=None, description="Simulation name (default: the template's)."
    )
    template: SimulationName | None = Field(
        default=None, description="Name of a template of the library (never a path)."
    )
    source: str | None = Field(default=None, description="Template YAML.")
    nodes: int | None = Field(default=None, ge=1, le=32, description="N identical nodes.")


class TemplateCreate(BaseModel):
    """A user template as YAML text."""

    source: str


@contextmanager
def sim_engine() -> Iterator[SimEngine]:
    """A :class:`SimEngine` on the local engine (its client closed after)."""
    client = docker_client()
    try:
        yield SimEngine(client)
    finally:
        client.close()


def engine_names() -> list[str]:
    """The names of the simulations on the engine now."""
    with sim_engine() as engine:
        return [s.name for s in engine.list_all()]


def get_sim_engine() -> Iterator[SimEngine]:
    """A :class:`SimEngine` on the local engine for one request (its client closed after)."""
    with sim_engine() as engine:
        yield engine


EngineDep = Annotated[SimEngine, Depends(get_sim_engine)]


def _user_templates_allowed(org: Organisation) -> bool:
    # User templates are files of the installation: only its default organisation has them.
    return org.slug == LOCAL_ORG


def spec_from_request(body: SimulationCreate, org: Organisation) -> SimulationSpec:
    """The simulation a request describes (template, template YAML, or N nodes)."""
    if body.source is not None:
        spec = tpl.load_text(body.source, file="<request>")
    elif body.template is not None:
        found = tpl.get_template(body.template)
        if not _user_templates_allowed(org) and found.source != "builtin":
            raise SpecError(f"template: no built-in template `{body.template}`")
        spec = found.spec
    elif body.nodes is not None and body.name:
        return SimulationSpec.uniform(body.name, body.nodes)
    else:
        raise SpecError("give `template`, `source`, or `name` with `nodes`")
    if body.name:
        spec = SimulationSpec(name=body.name, nodes=spec.nodes, description=spec.description)
    return spec


@router.get("", responses=ERRORS)
def list_simulations(engine: EngineDep, session: SessionDep, org: OrgDep) -> dict[str, Any]:
    """The organisation's simulations, as the engine reports them."""
    sims = [s for s in engine.list_all() if sim_owners.visible(session, org, s.name)]
    data = [
        {"name": s.name, "state": s.state, "nodes": len(s.nodes), "description": s.description}
        for s in sims
    ]
    return {"data": data, "count": len(data)}


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
def create_simulation(
    body: SimulationCreate, session: SessionDep, org: OrgDep, settings: SettingsDep
) -> dict[str, Any]:
    """Create and start a simulation (idempotent); nodes answer SSH shortly after."""
    spec = spec_from_request(body, org)
    entitlements.check_simulation(
        session, org, settings, name=spec.name, nodes=len(spec.nodes), live=engine_names
    )
    # The name is claimed before the engine is dialled: another organisation's name is a 409
    # whether or not the engine answers.
    sim_owners.claim(session, org, spec.name)
    with sim_engine() as engine:
        return engine.create(spec).to_public()


@router.get("/templates", responses=ERRORS)
def list_templates(org: OrgDep) -> dict[str, Any]:
    """Built-in and user templates (user templates: the default organisation's only)."""
    found = [
        t for t in tpl.list_templates() if t.source == "builtin" or _user_templates_allowed(org)
    ]
    return {"data": [t.to_public() for t in found], "count": len(found)}


@router.post("/templates", status_code=status.HTTP_201_CREATED, responses=ERRORS)
def create_template(body: TemplateCreate, org: OrgDep) -> dict[str, Any]:
    """Validate and store a user template (nothing is stored when it is invalid)."""
    if not _user_templates_allowed(org):
        raise ForbiddenError(
            "user templates are files of the installation, kept for its default organisation "
            f"`{LOCAL_ORG}`; send the template's YAML as `source` when you create a simulation"
        )
    return tpl.save_user_template(body.source).to_public()


@router.get("/{name}", responses=ERRORS, dependencies=[SeesSimulation])
def get_simulation(
    name: SimulationName, engine: EngineDep, session: SessionDep, org: OrgDep
) -> dict[str, Any]:
    """A simulation's nodes, states and SSH connection info, as the engine reports them."""
    sim_owners.check_visible(session, org, name)
    return engine.info(name).to_public()


@router.post("/{name}/{action}", responses=ERRORS, dependencies=[SeesSimulation])
def lifecycle(
    name: SimulationName, action: str, engine: EngineDep, session: SessionDep, org: OrgDep
) -> dict[str, Any]:
    """``start``, ``stop`` or ``restart`` every node (idempotent)."""
    sim_owners.check_visible(session, org, name)
    if action == "start":
        return engine.start(name).to_public()
    if action == "stop":
        return engine.stop(name).to_public()
    if action == "restart":
        return engine.restart(name).to_public()
    raise SpecError(f"unknown action `{action}` (start, stop, restart)")


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
    dependencies=[SeesSimulation],
)
def delete_simulation(
    name: SimulationName, engine: EngineDep, session: SessionDep, org: OrgDep
) -> Response:
    """Remove every container, network and volume of a simulation (idempotent)."""
    sim_owners.check_visible(session, org, name)
    engine.delete(name)
    sim_owners.release(session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/stats", responses=ERRORS, dependencies=[SeesSimulation])
def simulation_stats(
    name: SimulationName, engine: EngineDep, session: SessionDep, org: OrgDep
) -> dict[str, Any]:
    """CPU, memory and network per running node, sampled from the engine."""
    sim_owners.check_visible(session, org, name)
    sampled = engine.stats(name)
    return {"data": [s.to_public() for s in sampled], "count": len(sampled)}


@router.get("/{name}/export", responses=ERRORS, dependencies=[SeesSimulation])
def export_simulation(
    name: SimulationName, engine: EngineDep, session: SessionDep, org: OrgDep
) -> Response:
    """The simulation as template YAML that re-creates it."""
    sim_owners.check_visible(session, org, name)
    text = tpl.spec_to_yaml(engine.export(name))
    return Response(content=text, media_type="application/yaml")
