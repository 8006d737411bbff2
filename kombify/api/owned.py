"""Checks that run before a route reaches Temporal or the Docker engine.

A route's own dependencies (``TemporalDep``, the simulation engine) are resolved before its
body runs, and before FastAPI reports invalid parameters, so a check in the body comes too
late: a name that is not even valid, or another organisation's object, would make the API dial
Temporal or Docker, and the caller would get a 503 or a 502 instead of the 422 or the 404 a
missing object gets. Route-level dependencies are resolved first (after the router's
``Authorized``), and a dependency that raises stops the rest, so routes that reach a backend
list one of these. Each validates its path value itself (raising the 422 at once) and then
looks the object up in the caller's organisation.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from kombify.api import sim_owners
from kombify.api.deps import SessionDep
from kombify.api.principal import OrgDep
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.names import InvalidName, check_deployment_id, check_name, check_simulation_name


def _path_value(request: Request, param: str, check: Callable[[object], str]) -> str:
    """The path parameter ``param`` if ``check`` accepts it; else the 422 FastAPI would send."""
    value = request.path_params.get(param)
    try:
        return check(value)
    except InvalidName as exc:
        error = {"type": "value_error", "loc": ("path", param), "msg": exc.message, "input": value}
        raise RequestValidationError([error]) from None


def _stack_name(value: object) -> str:
    return check_name(value, what="stack name")


def owned_stack(request: Request, session: SessionDep, org: OrgDep) -> None:
    """NotFoundError unless the caller's organisation has the stack the path names."""
    name = _path_value(request, "name", _stack_name)
    store.get_stack(session, organisation_id=org.id, name=name)


def owned_deployment(request: Request, session: SessionDep, org: OrgDep) -> None:
    """NotFoundError unless the path's deployment is of a stack of the caller's organisation."""
    deployment_id = _path_value(request, "deployment_id", check_deployment_id)
    runs.get_deployment(session, deployment_id=deployment_id, organisation_id=org.id)


def visible_simulation(request: Request, session: SessionDep, org: OrgDep) -> None:
    """NotFoundError unless the caller's organisation may see the path's simulation."""
    name = _path_value(request, "name", check_simulation_name)
    sim_owners.check_visible(session, org, name)


OwnsStack = Depends(owned_stack)
OwnsDeployment = Depends(owned_deployment)
SeesSimulation = Depends(visible_simulation)
