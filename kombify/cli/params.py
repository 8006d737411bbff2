"""Command-line arguments that name things: checked by kombify.names before anything runs.

A bad name is a usage error (exit 2) that says what was expected; it never reaches a path, a
container name or a URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

import typer

from kombify.names import (
    InvalidName,
    check_deployment_id,
    check_name,
    check_schedule_name,
    check_simulation_name,
)


def _checked(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    def callback(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check(value)
        except InvalidName as exc:
            raise typer.BadParameter(exc.message) from None

    return callback


_RECORD_ID = re.compile(r"[0-9a-f]{32}")


def record_id_callback(what: str) -> Callable[[str | None], str | None]:
    """A check for an account record's id (a key, a session, a user): 32 hex digits."""

    def check(value: str) -> str:
        if _RECORD_ID.fullmatch(value):
            return value
        shown = value[:40].encode("unicode_escape").decode("ascii")
        raise InvalidName(f"{what} `{shown}` is not valid: expected 32 hexadecimal digits")

    return _checked(check)


org_slug_callback = _checked(lambda v: check_name(v, what="organisation"))
OrgOpt = Annotated[
    str | None,
    typer.Option(
        "--org",
        help="Organisation (slug); default: the one `kombify --org` or KOMBIFY_ORG names, "
        "else your home organisation.",
        callback=org_slug_callback,
    ),
]
stack_name_callback = _checked(lambda v: check_name(v, what="stack name"))
StackArg = Annotated[
    str,
    typer.Argument(
        help="Stack name (metadata.name of its kombination).", callback=stack_name_callback
    ),
]
SimulationArg = Annotated[
    str, typer.Argument(help="Simulation name.", callback=_checked(check_simulation_name))
]
SimulationNameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Simulation name.", callback=_checked(check_simulation_name)),
]
DeploymentArg = Annotated[
    str, typer.Argument(help="Deployment id.", callback=_checked(check_deployment_id))
]
NodeArg = Annotated[
    str,
    typer.Argument(help="Node name.", callback=_checked(lambda v: check_name(v, what="node name"))),
]
ScheduleArg = Annotated[
    str, typer.Argument(help="Schedule name.", callback=_checked(check_schedule_name))
]
