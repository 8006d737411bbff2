"""Command-line arguments that name things: checked by kombify.names before anything runs.

A bad name is a usage error (exit 2) that says what was expected; it never reaches a path, a
container name or a URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from kombify.names import (
    InvalidName,
    check_deployment_id,
    check_name,
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
