"""Ownership checks that run before a route reaches Temporal or the Docker engine.

A route's own dependencies (``TemporalDep``, the simulation engine) are resolved before its
body runs, so a check in the body comes too late: another organisation's caller would make
the API dial Temporal or Docker for an object it may not even learn exists, and would get a
503 or a 502 instead of the 404 a missing object gets. Route-level dependencies are resolved
first (after the router's ``Authorized``), so routes that reach a backend list one of these.
"""

from __future__ import annotations

from fastapi import Depends

from kombify.api import sim_owners
from kombify.api.deps import SessionDep
from kombify.api.principal import OrgDep
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.names import DeploymentId, SimulationName, StackName


def owned_stack(name: StackName, session: SessionDep, org: OrgDep) -> None:
    """NotFoundError unless the caller's organisation has stack ``name``."""
    store.get_stack(session, organisation_id=org.id, name=name)


def owned_deployment(deployment_id: DeploymentId, session: SessionDep, org: OrgDep) -> None:
    """NotFoundError unless the deployment is of a stack of the caller's organisation."""
    runs.get_deployment(session, deployment_id=deployment_id, organisation_id=org.id)


def visible_simulation(name: SimulationName, session: SessionDep, org: OrgDep) -> None:
    """NotFoundError unless the caller's organisation may see simulation ``name``."""
    sim_owners.check_visible(session, org, name)


OwnsStack = Depends(owned_stack)
OwnsDeployment = Depends(owned_deployment)
SeesSimulation = Depends(visible_simulation)
