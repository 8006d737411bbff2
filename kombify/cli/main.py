"""The ``kombify`` command: one typer app, one module per command group."""

from __future__ import annotations

from typing import Annotated

import typer

from kombify import __version__
from kombify.cli import (
    account_cmds,
    api_keys_cmds,
    certs_cmds,
    deploy_cmds,
    graph_cmds,
    heal_cmds,
    history_cmds,
    login_cmds,
    nodes_cmds,
    plan_cmds,
    routes_cmds,
    runtime_cmds,
    schedule_cmds,
    service_cmds,
    sessions_cmds,
    sim_cmds,
    stacks_cmds,
    validate_cmds,
    workflow_cmds,
)
from kombify.cli.api_client import choose_org
from kombify.cli.params import org_slug_callback
from kombify.settings import Settings


def _environment_help() -> str:
    lines = ["Settings come from the environment:\n"]
    for name, field in Settings.model_fields.items():
        lines.append(f"KOMBIFY_{name.upper()}: {field.description}\n")
    return "\n".join(lines)


app = typer.Typer(
    name="kombify",
    help="Run a homelab from one file: validate, provision, deploy and heal, durably.",
    epilog=_environment_help(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kombify {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show version."),
    ] = False,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help="Act in this organisation (slug; sent as X-Kombify-Org). Default: "
            "KOMBIFY_ORG, else your home organisation.",
            callback=org_slug_callback,
        ),
    ] = None,
) -> None:
    """Run a homelab from one file: validate, provision, deploy and heal, durably."""
    del version  # acts eagerly, in its callback
    choose_org(org)


runtime_cmds.register(app)
deploy_cmds.register(app)
history_cmds.register(app)
heal_cmds.register(app)
certs_cmds.register(app)
stacks_cmds.register(app)
nodes_cmds.register(app)
sim_cmds.register(app)
validate_cmds.register(app)
routes_cmds.register(app)
graph_cmds.register(app)
login_cmds.register(app)
api_keys_cmds.register(app)
account_cmds.register(app)
sessions_cmds.register(app)
schedule_cmds.register(app)
service_cmds.register(app)
workflow_cmds.register(app)
plan_cmds.register(app)


def main() -> None:
    """Console entry point: kombify errors become one line on stderr and exit code 1."""
    from kombify.cli.output import debug_enabled, fail
    from kombify.errors import KombifyError

    try:
        app()
    except KombifyError as exc:
        if debug_enabled():
            raise
        fail(exc.message)
    except Exception as exc:
        if debug_enabled():
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (run with KOMBIFY_DEBUG=1 for a traceback)")
